package aurora_test

import (
	"context"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// keeper holds one password, as the Kubernetes runtime's Secret does.
type keeper struct{ pw string }

func (k *keeper) Password(context.Context, env.Key) (string, error) { return k.pw, nil }

func TestClone_AFreshRunnerReadsThePasswordBackInsteadOfSettingANewOne(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	ctx := context.Background()
	k := env.Key{Repo: "acme/shop", PR: 31}
	first := w.cloner("prenv")
	db1, err := first.Clone(ctx, dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	modifies := func() int { return w.emu.Stats().ByAction["ModifyDBCluster"] }
	set := modifies()
	// runner is a machine with an empty home, reading passwords back from
	// what kept says.
	runner := func(kept string) (string, int) {
		t.Helper()
		c := w.cloner("prenv")
		c.Home = t.TempDir()
		c.Keeper = &keeper{pw: kept}
		before := modifies()
		db, err := c.Clone(ctx, dbclonetest.Request(k))
		if err != nil {
			t.Fatal(err)
		}
		if g, err := c.Get(ctx, k); err != nil || g.Password != db.Password {
			t.Fatalf("Get after the clone: password %q, err %v; want the clone's %q", g.Password, err, db.Password)
		}
		return db.Password, modifies() - before
	}
	if pw, n := runner(db1.Password); pw != db1.Password || n != 0 {
		t.Fatalf("a runner that reads the current password back got %q with %d ModifyDBCluster: want %q and none (the app still uses it)", pw, n, db1.Password)
	}
	// What is kept is not the cluster's password (a run killed between
	// setting it and updating the Secret): a new one is set, not trusted.
	pw2, n := runner("0123456789abcdef0123456789abcdef")
	if pw2 == db1.Password || pw2 == "0123456789abcdef0123456789abcdef" || n != 1 {
		t.Fatalf("a runner given a password that is not the cluster's got %q with %d ModifyDBCluster: want a new one, set once", pw2, n)
	}
	// The first runner's home still has the first password: the tag says
	// it is no longer the cluster's.
	db, err := first.Clone(ctx, dbclonetest.Request(k))
	if err != nil || db.Password == db1.Password {
		t.Fatalf("the first runner trusts its stale home: %q (err %v)", db.Password, err)
	}
	if set != 1 {
		t.Fatalf("the first clone set the password %d times", set)
	}
}

func TestRecord_TheStatusIsReadBackFromTheClusterTags(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	ctx := context.Background()
	k := env.Key{Repo: "acme/shop", PR: 32}
	c := w.cloner("prenv")
	req := dbclonetest.Request(k)
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	req.Labels = env.Labels("prenv", k, created, 2*time.Hour)
	db, err := c.Clone(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Second)
	s := env.Status{State: env.StateReady, Commit: "0123abcd", URL: "https://pr-32.preview.example.com", ExpiresAt: at.Add(48 * time.Hour), UpdatedAt: at}
	if err := c.Record(ctx, k, s); err != nil {
		t.Fatal(err)
	}
	// Nothing to record on: no error, nothing made.
	if err := c.Record(ctx, env.Key{PR: 99}, s); err != nil {
		t.Fatalf("Record of an environment without a cluster: %v", err)
	}
	found, err := c.Find(ctx, env.Query{Owner: "prenv"}, k)
	if err != nil || len(found) != 2 {
		t.Fatalf("Find = %d resources, %v: want the cluster and its writer", len(found), err)
	}
	all, err := c.Resources(ctx, env.Query{Owner: "prenv"})
	if err != nil {
		t.Fatal(err)
	}
	for name, rs := range map[string][]env.Resource{"Find": found, "Resources": all} {
		got := env.StatusOf("prenv", rs)[k]
		want := env.Status{Key: k, State: env.StateReady, Commit: "0123abcd", URL: s.URL, ExpiresAt: s.ExpiresAt, UpdatedAt: at, CreatedAt: created,
			Database: db.Host + ":5432", Generation: 1, Resources: []string{"aurora cluster " + db.Name, "aurora instance " + db.Name + "-writer"}}
		if !equalStatus(got, want) {
			t.Fatalf("%s: the status read back is\n %+v\nwant\n %+v", name, got, want)
		}
	}
	// Another installation reads nothing of it.
	if got := env.StatusOf("team-b", all); len(got) != 0 {
		t.Fatalf("another owner reads %+v", got)
	}
}

func equalStatus(a, b env.Status) bool {
	if len(a.Resources) != len(b.Resources) {
		return false
	}
	for i := range a.Resources {
		if a.Resources[i] != b.Resources[i] {
			return false
		}
	}
	a.Resources, b.Resources = nil, nil
	return a.Key == b.Key && a.State == b.State && a.Commit == b.Commit && a.URL == b.URL && a.Database == b.Database && a.Generation == b.Generation &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}
