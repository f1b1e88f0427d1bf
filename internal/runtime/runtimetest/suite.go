// Package runtimetest is the conformance suite every runtime.Runtime passes.
package runtimetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

// Commits the suite deploys. BadMigration's migration fails; BadDeploy's
// app never becomes ready.
const (
	First        = "c1aaaaaa"
	Second       = "c2bbbbbb"
	BadMigration = "bad-migration"
	BadDeploy    = "bad-deploy"
)

// Harness adapts one provider to the suite.
type Harness struct {
	// New returns a runtime acting for owner "suite".
	New func(t *testing.T) runtime.Runtime
	// Spec returns the spec of k at commit, with a usable database.
	Spec func(t *testing.T, rt runtime.Runtime, k env.Key, commit string) runtime.Spec
	// Fetch returns the body served at url, when the provider's URLs can
	// be reached from the test; nil otherwise.
	Fetch func(t *testing.T, url string) (string, error)
	// Foreign puts a home not carrying the owner id where k's would go.
	Foreign func(t *testing.T, rt runtime.Runtime, k env.Key)
}

// Roll runs build (if any), migrate and deploy, as the lifecycle does.
func Roll(ctx context.Context, rt runtime.Runtime, spec runtime.Spec) (runtime.Release, error) {
	if err := rt.Prepare(ctx, spec); err != nil {
		return runtime.Release{}, err
	}
	if b, ok := rt.(runtime.Builder); ok {
		if err := b.Build(ctx, spec); err != nil {
			return runtime.Release{}, err
		}
	}
	if err := rt.Migrate(ctx, spec); err != nil {
		return runtime.Release{}, err
	}
	return rt.Deploy(ctx, spec)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	ctx := context.Background()
	serves := func(t *testing.T, rel runtime.Release, commit string) {
		t.Helper()
		if h.Fetch == nil {
			return
		}
		body, err := h.Fetch(t, rel.URL)
		if err != nil {
			t.Fatalf("GET %s: %v", rel.URL, err)
		}
		if !strings.Contains(body, commit) {
			t.Fatalf("GET %s does not show commit %s:\n%s", rel.URL, commit, body)
		}
	}

	t.Run("DeployServesTheCommitAtItsURL", func(t *testing.T) {
		rt := h.New(t)
		k := env.Key{PR: 1}
		rel, err := Roll(ctx, rt, h.Spec(t, rt, k, First))
		if err != nil {
			t.Fatal(err)
		}
		if rel.Commit != First || rel.URL == "" {
			t.Fatalf("release = %+v", rel)
		}
		serves(t, rel, First)
		cur, err := rt.Current(ctx, k)
		if err != nil || cur.Commit != First {
			t.Fatalf("Current = %+v, %v", cur, err)
		}
	})

	t.Run("ANewCommitReplacesTheOldOne", func(t *testing.T) {
		rt := h.New(t)
		k := env.Key{PR: 2}
		if _, err := Roll(ctx, rt, h.Spec(t, rt, k, First)); err != nil {
			t.Fatal(err)
		}
		rel, err := Roll(ctx, rt, h.Spec(t, rt, k, Second))
		if err != nil {
			t.Fatal(err)
		}
		serves(t, rel, Second)
		if cur, _ := rt.Current(ctx, k); cur.Commit != Second {
			t.Fatalf("Current = %+v, want %s", cur, Second)
		}
	})

	t.Run("AFailedMigrationKeepsThePreviousReleaseServing", func(t *testing.T) {
		rt := h.New(t)
		k := env.Key{PR: 3}
		first, err := Roll(ctx, rt, h.Spec(t, rt, k, First))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Roll(ctx, rt, h.Spec(t, rt, k, BadMigration))
		var se *runtime.StepError
		if !errors.As(err, &se) || se.Step != "migrate" || se.Output == "" {
			t.Fatalf("err = %v, want a migrate StepError with output", err)
		}
		if cur, _ := rt.Current(ctx, k); cur.Commit != First {
			t.Fatalf("after a failed migration Current = %+v, want %s", cur, First)
		}
		serves(t, first, First)
	})

	t.Run("AReleaseThatNeverGetsReadyKeepsThePreviousOneServing", func(t *testing.T) {
		rt := h.New(t)
		k := env.Key{PR: 4}
		first, err := Roll(ctx, rt, h.Spec(t, rt, k, First))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Roll(ctx, rt, h.Spec(t, rt, k, BadDeploy))
		var se *runtime.StepError
		if !errors.As(err, &se) || se.Step != "deploy" {
			t.Fatalf("err = %v, want a deploy StepError", err)
		}
		if cur, _ := rt.Current(ctx, k); cur.Commit != First {
			t.Fatalf("after a failed rollout Current = %+v, want %s", cur, First)
		}
		serves(t, first, First)
	})

	t.Run("TeardownTwiceSucceedsAndLeavesNothing", func(t *testing.T) {
		rt := h.New(t)
		k := env.Key{PR: 5}
		rel, err := Roll(ctx, rt, h.Spec(t, rt, k, First))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := rt.Teardown(ctx, k); err != nil {
				t.Fatalf("Teardown #%d = %v", i+1, err)
			}
		}
		if _, err := rt.Current(ctx, k); !errors.Is(err, runtime.ErrNotFound) {
			t.Fatalf("Current after teardown = %v", err)
		}
		if list, _ := rt.List(ctx); len(list) != 0 {
			t.Fatalf("List after teardown = %v", list)
		}
		if h.Fetch != nil {
			if body, err := h.Fetch(t, rel.URL); err == nil && strings.Contains(body, First) {
				t.Fatalf("%s still serves after teardown", rel.URL)
			}
		}
	})

	t.Run("ListShowsOurHomesWithTheirLabels", func(t *testing.T) {
		rt := h.New(t)
		for _, pr := range []int{6, 7} {
			spec := h.Spec(t, rt, env.Key{PR: pr}, First)
			if err := rt.Prepare(ctx, spec); err != nil {
				t.Fatal(err)
			}
		}
		list, err := rt.List(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("List = %v, %v", list, err)
		}
		for _, in := range list {
			if in.Labels[env.LabelOwner] != "suite" || in.Labels[env.LabelKey] != in.Key.String() {
				t.Errorf("%s labels %v", in.Name, in.Labels)
			}
		}
	})

	if h.Foreign != nil {
		t.Run("AHomeNotOursIsRefusedAndKept", func(t *testing.T) {
			rt := h.New(t)
			k := env.Key{PR: 8}
			h.Foreign(t, rt, k)
			if c, ok := rt.(runtime.Checker); ok {
				if err := c.Check(ctx, k); !errors.Is(err, runtime.ErrNotOurs) {
					t.Fatalf("Check = %v, want ErrNotOurs", err)
				}
				if err := c.Check(ctx, env.Key{PR: 9}); err != nil {
					t.Fatalf("Check of a free name = %v", err)
				}
			}
			if err := rt.Prepare(ctx, h.Spec(t, rt, k, First)); !errors.Is(err, runtime.ErrNotOurs) {
				t.Fatalf("Prepare = %v, want ErrNotOurs", err)
			}
			if err := rt.Teardown(ctx, k); !errors.Is(err, runtime.ErrNotOurs) {
				t.Fatalf("Teardown = %v, want ErrNotOurs", err)
			}
		})
	}
}
