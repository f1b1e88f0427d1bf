package lifecycle

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/store"
)

// clock is a test's time, starting now (the store and the memory
// providers stamp real times).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sweepFixture(t *testing.T) (*fixture, *clock, *reports) {
	f := newFixture(t)
	c := &clock{t: time.Now()}
	f.l.Now = c.now
	rep := &reports{}
	f.l.Reporter = rep
	return f, c, rep
}

// reports is a Reporter that remembers what it was told.
type reports struct {
	mu       sync.Mutex
	down     []string    // "pr-1 expired"
	finished []store.Run // the runs Finished was told of
}

func (r *reports) Started(context.Context, store.Env, string) {}
func (r *reports) Finished(_ context.Context, _ store.Env, run store.Run) {
	r.mu.Lock()
	r.finished = append(r.finished, run)
	r.mu.Unlock()
}
func (r *reports) TornDown(_ context.Context, e store.Env, why Why) {
	r.mu.Lock()
	r.down = append(r.down, e.Key.Name()+" "+why.Reason)
	r.mu.Unlock()
}

// pulls lists open pull requests, or fails.
type pulls struct {
	open []OpenPull
	err  error
}

func (p pulls) OpenPulls(context.Context, string) ([]OpenPull, error) { return p.open, p.err }

// inventory is every resource both memory providers see, as they see it.
func inventory(t *testing.T, f *fixture) []env.Resource {
	t.Helper()
	q := env.Query{Owner: "prenv"}
	a, err := f.l.Cloner.(env.Inventory).Resources(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.l.Runtime.(env.Inventory).Resources(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return append(a, b...)
}

func verdicts(p Plan) map[string]string {
	m := map[string]string{}
	for _, it := range p.Items {
		m[it.Provider+"/"+it.Kind+"/"+it.ID] = string(it.Verdict)
	}
	return m
}

func item(t *testing.T, p Plan, kind, id string) Item {
	t.Helper()
	for _, it := range p.Items {
		if it.Kind == kind && it.ID == id {
			return it
		}
	}
	t.Fatalf("no %s %s in the plan: %v", kind, id, verdicts(p))
	return Item{}
}

func TestSweep_DryRunChangesNothing(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 1}, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	f.world.Leak("prenv", env.Key{PR: 2}, env.Labels("prenv", env.Key{PR: 2}, c.now(), time.Hour), c.now())
	c.add(3 * time.Hour)
	before := inventory(t, f)
	p, err := f.l.Sweep(ctx, SweepOptions{Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := verdicts(p); got["memory/database/pr-1"] != "expired" || got["memory/database/pr-2"] != "expired" {
		t.Fatalf("verdicts = %v, want both databases expired", got)
	}
	if after := inventory(t, f); !reflect.DeepEqual(before, after) {
		t.Fatalf("a dry run changed the inventory:\nbefore %v\nafter  %v", before, after)
	}
	if e, _ := f.l.Store.Get(ctx, env.Key{PR: 1}); e.State != env.StateReady {
		t.Fatalf("a dry run changed the record: %s", e.State)
	}
}

func TestSweep_ExpiredEnvironmentGoesThroughDownAndIsReportedExpired(t *testing.T) {
	f, c, rep := sweepFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 1}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Minute)
	// A push renews it: expires one ttl after the last up.
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Minute)
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Pulls: pulls{open: []OpenPull{{Number: 1}}}, DefaultRepo: "acme/shop"})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "database", "pr-1"); it.Verdict != VerdictKeep {
		t.Fatalf("100 minutes after the first up, 50 after the last, pr-1 is %s (%s); want keep: each up renews the expiry", it.Verdict, it.Reason)
	}
	c.add(20 * time.Minute)
	p, err = f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Pulls: pulls{open: []OpenPull{{Number: 1}}}, DefaultRepo: "acme/shop"})
	if err != nil {
		t.Fatal(err)
	}
	it := item(t, p, "database", "pr-1")
	if it.Verdict != VerdictExpired || it.Outcome != "deleted" {
		t.Fatalf("pr-1 = %s (%s), outcome %q; want expired and deleted", it.Verdict, it.Reason, it.Outcome)
	}
	if got := inventory(t, f); len(got) != 0 {
		t.Fatalf("left after the sweep: %v", got)
	}
	e, err := f.l.Store.Get(ctx, k)
	if err != nil || e.State != env.StateDeleted {
		t.Fatalf("record = %s, %v; want deleted (it went through Down)", e.State, err)
	}
	if last, _ := f.l.Store.LastRun(ctx, k); last.Kind != "down" || last.State != store.RunSucceeded {
		t.Fatalf("last run = %s %s; want a succeeded down", last.Kind, last.State)
	}
	if strings.Join(rep.down, ",") != "pr-1 expired" {
		t.Fatalf("reported %v; want pr-1 torn down as expired", rep.down)
	}
}

func TestSweep_ResourcesWithoutARecordAreOrphanedAfterGraceAndForeignOnesAreNeverTouched(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	far := c.now().Add(1000 * time.Hour) // not expired: orphaned is the reason
	leak := func(owner string, pr int) {
		k := env.Key{PR: pr}
		labels := env.Labels(owner, k, c.now(), 0)
		labels[env.LabelExpiresAt] = far.Format(time.RFC3339)
		f.world.Leak(owner, k, labels, c.now())
	}
	leak("prenv", 7)
	leak("someone-else", 8)
	f.rt.Foreign(env.Key{PR: 9})
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "database", "pr-7"); it.Verdict != VerdictKeep || !strings.Contains(it.Reason, "sweep.grace") {
		t.Fatalf("a fresh leak = %s (%s); want kept by the grace", it.Verdict, it.Reason)
	}
	c.add(2 * time.Hour)
	p, err = f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "database", "pr-7"); it.Verdict != VerdictOrphaned || it.Outcome != "deleted" {
		t.Fatalf("pr-7 = %s (%s) %q; want orphaned and deleted", it.Verdict, it.Reason, it.Outcome)
	}
	for _, id := range []string{"database/pr-8", "home/pr-9"} {
		kind, name, _ := strings.Cut(id, "/")
		if it := item(t, p, kind, name); it.Verdict != VerdictForeign || it.Outcome != "" {
			t.Fatalf("%s = %s (%s) %q; want foreign and untouched", id, it.Verdict, it.Reason, it.Outcome)
		}
	}
	got := inventory(t, f)
	if len(got) != 2 {
		t.Fatalf("left = %v; want the two foreign resources", got)
	}
}

func TestSweep_NoOrphanIsDeletedWhenTheOpenPullRequestsAreUnknown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pulls pulls
		why   string
	}{
		{"the list fails", pulls{err: errors.New("502 bad gateway")}, "could not be listed"},
		{"the list is empty while environments are open", pulls{}, "lists no open pull request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c, _ := sweepFixture(t)
			ctx := context.Background()
			if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 1}, Commit: "c1"}); err != nil {
				t.Fatal(err)
			}
			f.l.TTL = 1000 * time.Hour
			if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 3}, Commit: "c1"}); err != nil {
				t.Fatal(err)
			}
			far := env.Labels("prenv", env.Key{PR: 2}, c.now(), 1000*time.Hour)
			f.world.Leak("prenv", env.Key{PR: 2}, far, c.now())
			c.add(2 * time.Hour) // pr-1 expired; pr-2 orphaned but for the guard; pr-3 open
			p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Pulls: tc.pulls, DefaultRepo: "acme/shop"})
			if err != nil {
				t.Fatal(err)
			}
			if it := item(t, p, "database", "pr-2"); it.Verdict != VerdictKeep || !strings.Contains(it.Reason, tc.why) {
				t.Fatalf("pr-2 = %s (%s); want kept, saying the list %s", it.Verdict, it.Reason, tc.why)
			}
			if it := item(t, p, "database", "pr-1"); it.Verdict != VerdictExpired || it.Outcome != "deleted" {
				t.Fatalf("pr-1 = %s (%s) %q; want expired and deleted: expiry still applies", it.Verdict, it.Reason, it.Outcome)
			}
			if len(p.Notes) == 0 || !strings.Contains(strings.Join(p.Notes, "\n"), "nothing is deleted as orphaned") {
				t.Fatalf("notes = %q; want the guard said", p.Notes)
			}
		})
	}
}

func TestSweep_MaxDeletionsTakesTheOldestFirstAndZeroReportsOnly(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	start := c.now()
	for pr := 1; pr <= 3; pr++ {
		k := env.Key{PR: pr}
		created := start.Add(time.Duration(pr) * time.Minute) // pr-1 is the oldest
		labels := env.Labels("prenv", k, created, 1000*time.Hour)
		f.world.Leak("prenv", k, labels, created)
	}
	c.add(3 * time.Hour)
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 0})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(inventory(t, f)); n != 3 {
		t.Fatalf("max_deletions 0 deleted something: %d left", n)
	}
	if it := item(t, p, "database", "pr-1"); !strings.Contains(it.Outcome, "report only") {
		t.Fatalf("outcome %q; want report only", it.Outcome)
	}
	p, err = f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, id := range []string{"pr-1", "pr-2", "pr-3"} {
		got[id] = item(t, p, "database", id).Outcome
	}
	if got["pr-1"] != "deleted" || got["pr-2"] != "deleted" || !strings.HasPrefix(got["pr-3"], "deferred") {
		t.Fatalf("outcomes = %v; want the two oldest deleted and pr-3 deferred", got)
	}
	left := inventory(t, f)
	if len(left) != 1 || left[0].ID != "pr-3" {
		t.Fatalf("left = %v; want pr-3", left)
	}
}

func TestSweep_KeepLabelPinsAnExpiredEnvironment(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 4}, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	c.add(5 * time.Hour)
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, KeepLabel: "prenv:keep",
		Pulls: pulls{open: []OpenPull{{Number: 4, Labels: []string{"bug", "prenv:keep"}}}}, DefaultRepo: "acme/shop"})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "database", "pr-4"); it.Verdict != VerdictKeep || !strings.Contains(it.Reason, "prenv:keep") {
		t.Fatalf("pr-4 = %s (%s); want pinned by the label", it.Verdict, it.Reason)
	}
	if n := len(inventory(t, f)); n != 2 {
		t.Fatalf("%d resources left; want the database and the home", n)
	}
}

func TestSweep_UnreadableLabelsAreKept(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 5}
	labels := env.Labels("prenv", k, c.now(), time.Hour)
	labels[env.LabelExpiresAt] = "next tuesday"
	f.world.Leak("prenv", k, labels, c.now())
	c.add(100 * time.Hour)
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "database", "pr-5"); it.Verdict != VerdictKeep || !strings.Contains(it.Reason, "next tuesday") {
		t.Fatalf("pr-5 = %s (%s); want kept, naming the unreadable expiry", it.Verdict, it.Reason)
	}
	if n := len(inventory(t, f)); n != 1 {
		t.Fatal("an unreadable resource was deleted")
	}
}

func TestSweep_StaleLockFilesGoHeldOnesStay(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	stale := filepath.Join(f.l.LockDir, "pr-77.lock")
	held := filepath.Join(f.l.LockDir, "pr-78.lock")
	for _, p := range []string{stale, held} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		old := c.now().Add(-2 * time.Hour)
		os.Chtimes(p, old, old)
	}
	unlock, err := lock.File(ctx, held)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "lock", "pr-77.lock"); it.Verdict != VerdictOrphaned || it.Outcome != "deleted" {
		t.Fatalf("stale lock = %s (%s) %q", it.Verdict, it.Reason, it.Outcome)
	}
	if it := item(t, p, "lock", "pr-78.lock"); it.Verdict != VerdictKeep {
		t.Fatalf("held lock = %s (%s)", it.Verdict, it.Reason)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("the stale lock file is still there")
	}
	if _, err := os.Stat(held); err != nil {
		t.Fatal("the held lock file is gone")
	}
}

func TestExtend_MovesTheExpiryOnTheRecordAndTheResources(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 6}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	e, err := f.l.Extend(ctx, k, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := c.now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	if !e.ExpiresAt.Equal(want) {
		t.Fatalf("record expires %s, want %s", e.ExpiresAt, want)
	}
	for _, r := range inventory(t, f) {
		if r.Labels[env.LabelExpiresAt] != want.Format(time.RFC3339) {
			t.Fatalf("%s %s expires-at = %q, want %s", r.Kind, r.ID, r.Labels[env.LabelExpiresAt], want.Format(time.RFC3339))
		}
	}
	c.add(10 * time.Hour)
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "home", "pr-6"); it.Verdict != VerdictKeep {
		t.Fatalf("an extended environment = %s (%s)", it.Verdict, it.Reason)
	}
	if _, err := f.l.Extend(ctx, k, -time.Hour); err == nil {
		t.Fatal("a negative ttl was accepted")
	}
}

// protectedHome wraps the memory runtime so that its home of pr-N reports
// deletion protection, as a namespace annotated so does.
type protectedHome struct {
	*fixture
	pr int
}

func (p protectedHome) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	rs, err := p.rt.Resources(ctx, q)
	for i := range rs {
		if rs[i].Key.PR == p.pr {
			rs[i].Protected = "prenv.dev/deletion-protection is set"
		}
	}
	return rs, err
}

func (p protectedHome) Remove(ctx context.Context, q env.Query, r env.Resource) error {
	return p.rt.Remove(ctx, q, r)
}

func TestSweep_OneProtectedResourceKeepsItsWholeEnvironment(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	k := env.Key{PR: 3}
	if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
		t.Fatal(err)
	}
	c.add(5 * time.Hour)
	// The runtime's inventory is the protected one; the database expired
	// unprotected.
	sweeper := *f.l
	sweeper.Runtime = nil
	sweeper.Cloner = f.l.Cloner
	p, err := sweeper.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10,
		Inventories: []env.Inventory{protectedHome{f, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	db := item(t, p, "database", "pr-3")
	if db.Verdict != VerdictExpired || !strings.Contains(db.Outcome, "is protected") {
		t.Fatalf("database = %s %q; want expired and kept for its protected home", db.Verdict, db.Outcome)
	}
	if n := len(inventory(t, f)); n != 2 {
		t.Fatalf("%d resources left; want the database and the protected home", n)
	}
	if e, _ := f.l.Store.Get(ctx, k); e.State != env.StateReady {
		t.Fatalf("the environment was brought down: %s", e.State)
	}
}

// hook is an inventory that lists nothing and runs fn as the sweep lists:
// after the records are read, before anything is judged or applied.
type hook struct{ fn func() }

func (h hook) Resources(context.Context, env.Query) ([]env.Resource, error) { h.fn(); return nil, nil }
func (h hook) Remove(context.Context, env.Query, env.Resource) error        { return nil }

// failing is an inventory that cannot be listed.
type failing struct{}

func (failing) Resources(context.Context, env.Query) ([]env.Resource, error) {
	return nil, errors.New("namespaces is forbidden: list")
}
func (failing) Remove(context.Context, env.Query, env.Resource) error { return nil }

func TestSweep_WhatTheReviewFound(t *testing.T) {
	ctx := context.Background()
	t.Run("the keep label is not ignored when the open pull requests cannot be listed", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 4}, Commit: "c1"}); err != nil {
			t.Fatal(err)
		}
		c.add(5 * time.Hour)
		p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, KeepLabel: "prenv:keep",
			Pulls: pulls{err: errors.New("403 rate limited")}, DefaultRepo: "acme/shop"})
		if err != nil {
			t.Fatal(err)
		}
		if it := item(t, p, "database", "pr-4"); it.Verdict != VerdictKeep || !strings.Contains(it.Reason, "labels could not be read") {
			t.Fatalf("pr-4 = %s (%s); want kept: its keep label cannot be seen", it.Verdict, it.Reason)
		}
	})
	t.Run("an empty list while this installation's resources have not expired deletes nothing as orphaned", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		for pr := 1; pr <= 3; pr++ {
			k := env.Key{PR: pr}
			f.world.Leak("prenv", k, env.Labels("prenv", k, c.now(), 1000*time.Hour), c.now()) // made by a CI runner: no record here
		}
		c.add(2 * time.Hour)
		p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Pulls: pulls{}, DefaultRepo: "acme/shop"})
		if err != nil {
			t.Fatal(err)
		}
		if c := p.Counts(); c[VerdictOrphaned] != 0 || len(inventory(t, f)) != 3 {
			t.Fatalf("GitHub listed no open pull request with 3 live environments: %v", verdicts(p))
		}
	})
	t.Run("a resource the plan keeps keeps its whole environment", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		k := env.Key{PR: 5}
		if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
			t.Fatal(err)
		}
		c.add(5 * time.Hour) // expired on the record and the database's label
		// The home's expiry cannot be read: it is kept, and so is all of pr-5.
		if err := f.rt.Renew(ctx, k, time.Time{}); err != nil {
			t.Fatal(err)
		}
		sweeper := *f.l
		sweeper.Runtime = nil
		unreadable := protectedHomeLabel{f}
		p, err := sweeper.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Inventories: []env.Inventory{unreadable}})
		if err != nil {
			t.Fatal(err)
		}
		if db := item(t, p, "database", "pr-5"); db.Verdict != VerdictExpired || !strings.Contains(db.Outcome, "is kept") {
			t.Fatalf("database = %s %q; want expired and left for its kept home", db.Verdict, db.Outcome)
		}
		if n := len(inventory(t, f)); n != 2 {
			t.Fatalf("%d resources left; want both", n)
		}
	})
	t.Run("no environment is brought down while a provider cannot be listed", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		if _, err := f.l.Up(ctx, UpOptions{Key: env.Key{PR: 6}, Commit: "c1"}); err != nil {
			t.Fatal(err)
		}
		c.add(5 * time.Hour)
		p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Inventories: []env.Inventory{failing{}}})
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Fatalf("Sweep = %v; want the listing's failure", err)
		}
		if it := item(t, p, "database", "pr-6"); !strings.Contains(it.Outcome, "could not be listed") {
			t.Fatalf("pr-6 outcome %q; want left", it.Outcome)
		}
		if e, _ := f.l.Store.Get(ctx, env.Key{PR: 6}); e.State != env.StateReady {
			t.Fatalf("pr-6 was brought down: %s", e.State)
		}
	})
	t.Run("a push between the plan and its down wins", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		k := env.Key{PR: 7}
		if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
			t.Fatal(err)
		}
		c.add(5 * time.Hour)
		push := hook{func() {
			if err := f.l.Supersede(ctx, k, "c2", false); err != nil {
				t.Error(err)
			}
		}}
		p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Inventories: []env.Inventory{push}})
		if err != nil {
			t.Fatal(err)
		}
		if it := item(t, p, "database", "pr-7"); it.Verdict != VerdictExpired || !strings.Contains(it.Outcome, "newer request") {
			t.Fatalf("pr-7 = %s %q; want planned expired and left for the newer request", it.Verdict, it.Outcome)
		}
		if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err != nil {
			t.Fatalf("the push's up after the sweep: %v", err)
		}
	})
	t.Run("an expired environment records the head it expired at, not the last commit served", func(t *testing.T) {
		f, c, _ := sweepFixture(t)
		k := env.Key{PR: 8}
		if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c1"}); err != nil {
			t.Fatal(err)
		}
		f.rt.FailMigration["c2"] = "relation already exists"
		if _, err := f.l.Up(ctx, UpOptions{Key: k, Commit: "c2"}); err == nil {
			t.Fatal("the failing migration passed")
		}
		c.add(5 * time.Hour)
		if _, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10}); err != nil {
			t.Fatal(err)
		}
		e, _ := f.l.Store.Get(ctx, k)
		if e.State != env.StateDeleted || e.DownReason != ReasonExpired || e.DownCommit != "c2" {
			t.Fatalf("record %s, down %q at %q; want deleted, expired at c2 (the head)", e.State, e.DownReason, e.DownCommit)
		}
	})
}

// protectedHomeLabel lists the memory runtime's homes with an expiry that
// cannot be read.
type protectedHomeLabel struct{ *fixture }

func (p protectedHomeLabel) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	rs, err := p.rt.Resources(ctx, q)
	for i := range rs {
		rs[i].Labels[env.LabelExpiresAt] = "soon"
	}
	return rs, err
}

func (p protectedHomeLabel) Remove(ctx context.Context, q env.Query, r env.Resource) error {
	return p.rt.Remove(ctx, q, r)
}

func TestSweep_OneAppliesAtATime(t *testing.T) {
	f, _, _ := sweepFixture(t)
	ctx := context.Background()
	unlock, err := lock.File(ctx, filepath.Join(f.l.LockDir, ".sweep.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := f.l.Sweep(ctx, SweepOptions{Apply: true, MaxDeletions: 10}); err == nil || !strings.Contains(err.Error(), "another sweep") {
		t.Fatalf("a second sweep applying at once: %v", err)
	}
	if _, err := f.l.Sweep(ctx, SweepOptions{MaxDeletions: 10}); err != nil {
		t.Fatalf("a dry run while another sweep applies: %v", err)
	}
}

// leftovers is an inventory of resources of no environment, as a golden
// build's staging cluster is; Remove records what it was asked.
type leftovers struct {
	mu      sync.Mutex
	rs      []env.Resource
	removed []string
}

func (l *leftovers) Resources(context.Context, env.Query) ([]env.Resource, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]env.Resource(nil), l.rs...), nil
}

func (l *leftovers) Remove(_ context.Context, _ env.Query, r env.Resource) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.removed = append(l.removed, r.ID)
	return nil
}

// Issue 11: a golden build's staging cluster belongs to no environment and
// carries the deadline its build gave it; past it, it is half-made (what a
// killed build left), not "expired: no up renewed it"; before it, a build
// may still be at work on it and it is kept.
func TestSweep_AKeylessHalfMadeResourcePastItsDeadlineIsHalfMade(t *testing.T) {
	f, c, _ := sweepFixture(t)
	ctx := context.Background()
	built := c.now().Add(-7 * time.Hour)
	staging := func(id string, deadline time.Time) env.Resource {
		return env.Resource{Provider: "aurora", Kind: "cluster", ID: id, Shared: true, CreatedAt: built,
			Labels:   map[string]string{env.LabelOwner: "prenv", env.LabelCreatedAt: built.Format(time.RFC3339), env.LabelExpiresAt: deadline.Format(time.RFC3339)},
			HalfMade: "a golden build was interrupted"}
	}
	inv := &leftovers{rs: []env.Resource{staging("prenv-golden-4", c.now().Add(-time.Hour)), staging("prenv-golden-5", c.now().Add(time.Hour))}}
	p, err := f.l.Sweep(ctx, SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, Inventories: []env.Inventory{inv}})
	if err != nil {
		t.Fatal(err)
	}
	if it := item(t, p, "cluster", "prenv-golden-4"); it.Verdict != VerdictHalfMade || !strings.Contains(it.Reason, "golden build was interrupted") || it.Outcome != "deleted" {
		t.Fatalf("the timed-out build = %s (%s) %q; want half-made and deleted", it.Verdict, it.Reason, it.Outcome)
	}
	if it := item(t, p, "cluster", "prenv-golden-5"); it.Verdict == VerdictHalfMade || it.Outcome != "" {
		t.Fatalf("a build within its time = %s (%s) %q; want it left to its builder", it.Verdict, it.Reason, it.Outcome)
	}
	if !reflect.DeepEqual(inv.removed, []string{"prenv-golden-4"}) {
		t.Fatalf("removed %v", inv.removed)
	}
}
