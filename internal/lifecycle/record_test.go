package lifecycle

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	rtmemory "github.com/prenv/prenv/internal/runtime/memory"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
)

// runnerOn is another machine on f's providers: its own store and locks,
// the same cluster and account.
func runnerOn(t *testing.T, f *fixture) *Lifecycle {
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	l := *f.l
	l.Store, l.LockDir = s, dir
	return &l
}

func TestResourcesAreTheRecord_ASecondRunnerSeesAdoptsAndBringsDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{Repo: "acme/shop", PR: 7}
	first, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	second := runnerOn(t, f)
	if !second.Shared() {
		t.Fatal("memory providers keep a status on their resources: Shared should be true")
	}
	found, err := second.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := found[k]
	if !ok || st.State != env.StateReady || st.Commit != "c1" || st.URL != first.URL || st.ExpiresAt.Before(first.ExpiresAt.Add(-time.Second)) || len(st.Resources) != 2 {
		t.Fatalf("the second runner reads %+v (found %v): want ready at c1, %s, with both resources", st, ok, first.URL)
	}
	m := second.Merge(store.Env{}, false, st, true, true)
	if m.Local || m.State != env.StateReady || m.Commit != "c1" || m.URL != first.URL {
		t.Fatalf("merged without a record: %+v", m)
	}
	// An up of the commit served adopts, and does not migrate again.
	again, err := second.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.rt.Migrations) != 1 || again.Database.URL != first.Database.URL || again.Commit != "c1" {
		t.Fatalf("the second runner's up of the served commit: migrations %v, %+v", f.rt.Migrations, again)
	}
	if got := strings.Join(steps(t, second.Store, k), ","); strings.Contains(got, "migrate") {
		t.Fatalf("the adopting up ran %s", got)
	}
	// A new commit from the second runner: the first one's record is older
	// than what the resources say, which wins.
	if _, err := second.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil {
		t.Fatal(err)
	}
	mine, _ := f.l.Store.Get(ctx, k)
	st, ok, err = f.l.Recorded(ctx, k)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if m := f.l.Merge(mine, true, st, true, true); m.Commit != "c2" || m.State != env.StateReady || !m.Local {
		t.Fatalf("the first runner shows %s at %s: want c2, which the second runner deployed", m.State, m.Commit)
	}
	if _, err := second.Down(ctx, DownOptions{Key: k}); err != nil {
		t.Fatal(err)
	}
	if left, _ := f.rt.Resources(ctx, env.Query{Owner: "prenv"}); len(left) != 0 {
		t.Fatalf("left after the second runner's down: %+v", left)
	}
	found, err = f.l.Discover(ctx)
	if err != nil || len(found) != 0 {
		t.Fatalf("after down the resources show %v, %v", found, err)
	}
	m = f.l.Merge(mine, true, env.Status{}, false, true)
	if m.State != env.StateDeleted || !strings.Contains(m.Error, "another machine") {
		t.Fatalf("the first runner's record of an environment whose resources are gone shows %s (%q)", m.State, m.Error)
	}
	// Not listed (the cluster could not be read): the record is shown as is.
	if m := f.l.Merge(mine, true, env.Status{}, false, false); m.State != env.StateReady {
		t.Fatalf("unlisted: %s", m.State)
	}
}

func TestResourcesAreTheRecord_AnotherOwnerAndLocalProvidersShowNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 8}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	other := runnerOn(t, f)
	other.Owner = "team-b"
	other.Cloner = &dbmemory.Cloner{World: f.world, Owner: "team-b"}
	other.Runtime = rtmemory.New("team-b")
	if found, err := other.Discover(ctx); err != nil || len(found) != 0 {
		t.Fatalf("another installation discovers %v, %v", found, err)
	}
	// A Lifecycle whose providers keep no status elsewhere (localpg, the
	// local runtime) discovers nothing and never calls a record gone.
	local := runnerOn(t, f)
	local.Cloner, local.Runtime = plainCloner{local.Cloner}, nil
	if local.Shared() {
		t.Fatal("a cloner without a status on its resources is Shared")
	}
	e, _ := f.l.Store.Get(ctx, k)
	if m := local.Merge(e, true, env.Status{}, false, true); m.State != env.StateReady {
		t.Fatalf("a record of local providers shown %s", m.State)
	}
}

// plainCloner is a cloner that keeps no status on its resources, as
// localpg's live under one machine's PRENV_HOME.
type plainCloner struct{ dbclone.Cloner }
