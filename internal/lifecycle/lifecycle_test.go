package lifecycle

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	rtmemory "github.com/prenv/prenv/internal/runtime/memory"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
)

type fixture struct {
	l     *Lifecycle
	world *dbmemory.World
	rt    *rtmemory.Runtime
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	rt := rtmemory.New("prenv")
	return &fixture{
		l:     &Lifecycle{Store: s, Cloner: &dbmemory.Cloner{World: world, Owner: "prenv"}, Runtime: rt, LockDir: dir, Owner: "prenv", TTL: time.Hour},
		world: world, rt: rt,
	}
}

func steps(t *testing.T, s store.Store, k env.Key) []string {
	r, err := s.LastRun(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range r.Steps {
		out = append(out, st.Name)
	}
	return out
}

func TestUp_TwiceWithTheSameCommitChangesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	a, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Database.URL != b.Database.URL || b.State != env.StateReady || b.Commit != "c1" {
		t.Fatalf("second up: %+v", b)
	}
	if len(f.rt.Migrations) != 1 {
		t.Fatalf("migrations run: %v, want one", f.rt.Migrations)
	}
	if got := strings.Join(steps(t, f.l.Store, k), ","); strings.Contains(got, "migrate") {
		t.Fatalf("second up ran steps %s", got)
	}
}

func TestUp_NewCommitMigratesAndRedeploysOnTheSameDatabase(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	a, _ := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	b, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Database.URL != b.Database.URL {
		t.Fatalf("database changed: %s -> %s", a.Database.URL, b.Database.URL)
	}
	if b.Commit != "c2" || strings.Join(f.rt.Migrations, ",") != "pr-1@c1,pr-1@c2" {
		t.Fatalf("commit %s, migrations %v", b.Commit, f.rt.Migrations)
	}
	if got := strings.Join(steps(t, f.l.Store, k), ","); got != "clone,prepare,migrate,deploy" {
		t.Fatalf("steps %s", got)
	}
}

func TestUp_AFailedMigrationKeepsThePreviousCommitAndRecordsTheOutput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	f.rt.FailMigration["c2"] = `ERROR: column "status" already exists`
	f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	e, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"})
	if err == nil {
		t.Fatal("up with a failing migration succeeded")
	}
	if e.State != env.StateFailed || e.Commit != "c1" {
		t.Fatalf("state %s commit %s, want failed at c1", e.State, e.Commit)
	}
	if cur, _ := f.rt.Current(ctx, k); cur.Commit != "c1" {
		t.Fatalf("serving %s, want c1", cur.Commit)
	}
	r, _ := f.l.Store.LastRun(ctx, k)
	if r.State != "failed" || !strings.Contains(r.Output, "already exists") {
		t.Fatalf("run %+v", r)
	}
}

func TestUp_BeforeAnyGoldenSourceIsRefusedAndRecordsNothing(t *testing.T) {
	f := newFixture(t)
	f.world.SetGolden(0)
	_, err := f.l.Up(context.Background(), UpOptions{Key: env.Key{PR: 1}, Commit: "c1"})
	if !errors.Is(err, dbclone.ErrNoSource) || !strings.Contains(err.Error(), "prenv golden build") {
		t.Fatalf("err = %v", err)
	}
	if list, _ := f.l.Store.List(context.Background()); len(list) != 0 {
		t.Fatalf("store has %v", list)
	}
}

func TestUp_TwoAtOnceEndAtTheNewerCommit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	var wg sync.WaitGroup
	var olderErr error
	second := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, olderErr = f.l.Up(ctx, UpOptions{Key: k, Commit: "old", OnStep: func(step string, took time.Duration, err error) {
			if step == "clone" && took >= 0 {
				// The newer request arrives while the older run is cloning.
				go func() {
					defer close(second)
					if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "new"}); err != nil {
						t.Error(err)
					}
				}()
				for {
					e, _ := f.l.Store.Get(ctx, k)
					if e.DesiredCommit == "new" {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		}})
	}()
	wg.Wait()
	<-second
	if !errors.Is(olderErr, ErrSuperseded) {
		t.Fatalf("older run: %v, want ErrSuperseded", olderErr)
	}
	e, _ := f.l.Store.Get(ctx, k)
	if e.Commit != "new" || e.State != env.StateReady {
		t.Fatalf("ended at %s (%s), want new (ready)", e.Commit, e.State)
	}
	if cur, _ := f.rt.Current(ctx, k); cur.Commit != "new" {
		t.Fatalf("serving %s", cur.Commit)
	}
	if dbs, _ := f.l.Cloner.List(ctx); len(dbs) != 1 {
		t.Fatalf("%d databases, want 1", len(dbs))
	}
}

func TestDown_TwiceSucceedsAndRemovesEverything(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"})
	for i := 0; i < 2; i++ {
		e, err := f.l.Down(ctx, DownOptions{Key: k})
		if err != nil || e.State != env.StateDeleted {
			t.Fatalf("down #%d: %+v, %v", i+1, e, err)
		}
	}
	if dbs, _ := f.l.Cloner.List(ctx); len(dbs) != 0 {
		t.Fatalf("databases left: %v", dbs)
	}
	if homes, _ := f.rt.List(ctx); len(homes) != 0 {
		t.Fatalf("homes left: %v", homes)
	}
	if _, err := f.l.Down(ctx, DownOptions{Key: env.Key{PR: 42}}); err != nil {
		t.Fatalf("down of what never existed: %v", err)
	}
}

func TestDown_RefusesWhatIsNotOurs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 3}
	theirs := &dbmemory.Cloner{World: f.world, Owner: "other-team"}
	if _, err := theirs.Clone(ctx, dbclone.Request{Key: k, Name: k.Name()}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.l.Down(ctx, DownOptions{Key: k}); !errors.Is(err, dbclone.ErrNotOurs) {
		t.Fatalf("down = %v, want ErrNotOurs", err)
	}
	if _, err := theirs.Get(ctx, k); err != nil {
		t.Fatalf("their database was deleted: %v", err)
	}
}

func TestUp_DatabaseOnlyEnvironmentHasNoURL(t *testing.T) {
	f := newFixture(t)
	f.l.Runtime = nil
	e, err := f.l.Up(context.Background(), UpOptions{Key: env.Key{PR: 5}, Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if e.URL != "" || e.Database.URL == "" || e.State != env.StateReady {
		t.Fatalf("env %+v", e)
	}
}

func TestUp_AHomeNotOursIsRefusedBeforeTheDatabaseIsCloned(t *testing.T) {
	f := newFixture(t)
	k := env.Key{PR: 8}
	f.rt.Foreign(k)
	if _, err := f.l.Up(context.Background(), UpOptions{Key: k, Commit: "c1"}); !errors.Is(err, runtime.ErrNotOurs) {
		t.Fatalf("up = %v, want ErrNotOurs", err)
	}
	if dbs, _ := f.l.Cloner.List(context.Background()); len(dbs) != 0 {
		t.Fatalf("a database was cloned: %v", dbs)
	}
	if list, _ := f.l.Store.List(context.Background()); len(list) != 0 {
		t.Fatalf("the refused environment was recorded: %v", list)
	}
}

// A run that did not migrate (its commit was migrated by an earlier run)
// is reported with that run's rehearsal report; a run that migrated
// without a report (unwatched) is reported with none, never an older one.
func TestReportFinished_CarriesTheCommitsReportOnlyWhenTheRunDidNotMigrate(t *testing.T) {
	f, _, rep := sweepFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 4}
	// An earlier, watched migration of c1 and of c2 (the memory database
	// is not watched: the report is recorded as prenv up records it).
	for _, c := range []string{"c1", "c2"} {
		seq, err := f.l.Store.Request(ctx, k, k.Name(), c, false)
		if err != nil {
			t.Fatal(err)
		}
		run := &store.Run{Key: k, Seq: seq, Kind: "up", Commit: c, State: store.RunFailed, StartedAt: time.Now(), FinishedAt: time.Now(),
			Migration: []byte(`{"seconds":1,"diff_base":"golden","failed":"an earlier attempt of ` + c + `","interval":0.05}`)}
		if err := f.l.Store.SaveRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil { // migrates c2 unwatched
		t.Fatal(err)
	}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil { // c2 again: no migrate step
		t.Fatal(err)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.finished) != 2 {
		t.Fatalf("%d runs reported", len(rep.finished))
	}
	if m := rep.finished[0].Migration; m != nil {
		t.Fatalf("the run that migrated unwatched was reported with %s", m)
	}
	if m := string(rep.finished[1].Migration); !strings.Contains(m, "an earlier attempt of c2") {
		t.Fatalf("the run that did not migrate was reported with %q; want c2's report", m)
	}
}
