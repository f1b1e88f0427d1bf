// Package dbclonetest is the conformance suite every dbclone.Cloner passes.
package dbclonetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

// Harness adapts one provider to the suite.
type Harness struct {
	// New returns a cloner with no golden source, owned by owner.
	New func(t *testing.T, owner string) dbclone.Cloner
	// Golden gives c a golden source (for cloners that share state, it is
	// enough that later cloners see it).
	Golden func(t *testing.T, c dbclone.Cloner)
	// Foreign places, where c would put the database of k, something that
	// does not carry the owner id; nil when the provider cannot.
	Foreign func(t *testing.T, c dbclone.Cloner, k env.Key)
}

// Request is a clone request for k as the lifecycle makes it.
func Request(k env.Key) dbclone.Request {
	now := time.Now()
	return dbclone.Request{Key: k, Name: k.Name(), Labels: env.Labels("suite", k, now, time.Hour), ExpiresAt: now.Add(time.Hour)}
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()

	t.Run("CloneBeforeAnyGoldenSourceSaysSoAndCreatesNothing", func(t *testing.T) {
		c := h.New(t, "suite")
		_, err := c.Clone(ctx, Request(env.Key{PR: 1}))
		if !errors.Is(err, dbclone.ErrNoSource) {
			t.Fatalf("Clone = %v, want ErrNoSource", err)
		}
		if list, _ := c.List(ctx); len(list) != 0 {
			t.Fatalf("List after a refused clone = %v", list)
		}
	})

	t.Run("CloneTwiceAdoptsTheSameDatabase", func(t *testing.T) {
		c := h.New(t, "suite")
		h.Golden(t, c)
		k := env.Key{Repo: "acme/shop", PR: 7}
		a, err := c.Clone(ctx, Request(k))
		if err != nil {
			t.Fatal(err)
		}
		if a.URL == "" || a.Generation == 0 || a.Key != k {
			t.Fatalf("clone = %+v: want a URL, a generation and the key", a)
		}
		b, err := c.Clone(ctx, Request(k))
		if err != nil {
			t.Fatal(err)
		}
		if b.URL != a.URL || !b.CreatedAt.Equal(a.CreatedAt) {
			t.Fatalf("second clone %v (%v) differs from the first %v (%v)", b.URL, b.CreatedAt, a.URL, a.CreatedAt)
		}
		got, err := c.Get(ctx, k)
		if err != nil || got.URL != a.URL {
			t.Fatalf("Get = %+v, %v", got, err)
		}
	})

	t.Run("EnvironmentsGetDistinctDatabasesAndListShowsThem", func(t *testing.T) {
		c := h.New(t, "suite")
		h.Golden(t, c)
		a, err := c.Clone(ctx, Request(env.Key{PR: 1}))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Clone(ctx, Request(env.Key{PR: 2}))
		if err != nil {
			t.Fatal(err)
		}
		if a.URL == b.URL {
			t.Fatalf("two environments share %s", a.URL)
		}
		list, err := c.List(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %v, %v; want 2", list, err)
		}
		for _, d := range list {
			if d.Labels[env.LabelOwner] != "suite" || d.Labels[env.LabelKey] != d.Key.String() {
				t.Errorf("%s carries labels %v", d.Name, d.Labels)
			}
		}
	})

	t.Run("DeleteTwiceSucceedsAndGetThenSaysNotFound", func(t *testing.T) {
		c := h.New(t, "suite")
		h.Golden(t, c)
		k := env.Key{PR: 3}
		if _, err := c.Clone(ctx, Request(k)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := c.Delete(ctx, k); err != nil {
				t.Fatalf("Delete #%d = %v", i+1, err)
			}
		}
		if _, err := c.Get(ctx, k); !errors.Is(err, dbclone.ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := c.Delete(ctx, env.Key{PR: 999}); err != nil {
			t.Fatalf("Delete of what never existed = %v", err)
		}
	})

	t.Run("AnotherOwnersDatabasesAreNeitherListedNorDeleted", func(t *testing.T) {
		ours := h.New(t, "suite")
		h.Golden(t, ours)
		theirs := h.New(t, "someone-else")
		h.Golden(t, theirs)
		k := env.Key{PR: 4}
		if _, err := theirs.Clone(ctx, Request(k)); err != nil {
			t.Fatal(err)
		}
		if list, _ := ours.List(ctx); len(list) != 0 {
			t.Fatalf("our List shows %v", list)
		}
		if err := ours.Delete(ctx, k); !errors.Is(err, dbclone.ErrNotOurs) {
			t.Fatalf("Delete of theirs = %v, want ErrNotOurs", err)
		}
		if _, err := theirs.Get(ctx, k); err != nil {
			t.Fatalf("their database is gone after our refused delete: %v", err)
		}
	})

	if h.Foreign != nil {
		t.Run("SomethingNotOursInTheWayIsRefusedNotDeleted", func(t *testing.T) {
			c := h.New(t, "suite")
			h.Golden(t, c)
			k := env.Key{PR: 5}
			h.Foreign(t, c, k)
			if _, err := c.Clone(ctx, Request(k)); !errors.Is(err, dbclone.ErrNotOurs) {
				t.Fatalf("Clone over something foreign = %v, want ErrNotOurs", err)
			}
			if err := c.Delete(ctx, k); !errors.Is(err, dbclone.ErrNotOurs) {
				t.Fatalf("Delete of something foreign = %v, want ErrNotOurs", err)
			}
		})
	}
}
