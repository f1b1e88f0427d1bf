package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/storetest"
	"github.com/prenv/prenv/internal/testenv"
)

var schemas atomic.Int64

// openAt opens the store at url for the test's length.
func openAt(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// inSchema makes a schema of its own on server, and returns the URL of a
// store in it, and its name.
func inSchema(t *testing.T, server string) (string, string) {
	t.Helper()
	schema := fmt.Sprintf("t%d", schemas.Add(1))
	admin, err := Open(context.Background(), server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	return server + "&search_path=" + schema, schema
}

// The conformance suite every store passes, on a real PostgreSQL server:
// each test in a schema of its own.
func TestStore_Conformance(t *testing.T) {
	server := testenv.Server(t)
	urls := map[storetest.Store]string{}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store {
			url, _ := inSchema(t, server)
			s, err := Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			urls[s] = url
			return s
		},
		Again: func(t *testing.T, s storetest.Store) storetest.Store {
			again, err := Open(context.Background(), urls[s])
			if err != nil {
				t.Fatal(err)
			}
			return again
		},
		SetClock: func(s storetest.Store, now func() time.Time) { s.(*Store).now = now },
		RunIDs: func(t *testing.T, s storetest.Store) []int64 {
			rows, err := s.(*Store).db.Query(`SELECT id FROM prenv_runs`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var ids []int64
			for rows.Next() {
				var id int64
				rows.Scan(&id)
				ids = append(ids, id)
			}
			return ids
		},
	})
}

// One environment's runs are serialized across replicas: a lock held by
// one is waited on by the other, released when its holder lets it go, and
// when the holder's connection dies (a replica killed outright) the other
// takes it while the holder's lease says it is lost.
func TestLock_OneHolderAcrossReplicasAndLostWithItsConnection(t *testing.T) {
	server := testenv.Server(t)
	ctx := context.Background()
	a, b := openAt(t, server), openAt(t, server)
	LockCheck = 200 * time.Millisecond
	held, err := a.Lock(ctx, "pr-1.lock")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := b.Held(ctx, "pr-1.lock"); !h || err != nil {
		t.Fatalf("Held by the other replica: %v %v", h, err)
	}
	if h, _ := b.Held(ctx, "pr-2.lock"); h {
		t.Fatal("another environment's lock is held too")
	}
	wait, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := b.Lock(wait, "pr-1.lock"); err == nil {
		t.Fatal("two replicas hold one environment's lock")
	}
	cancel()
	other, err := b.Lock(ctx, "pr-2.lock")
	if err != nil {
		t.Fatalf("another environment waits: %v", err)
	}
	other.Release()
	held.Release()
	again, err := b.Lock(ctx, "pr-1.lock")
	if err != nil {
		t.Fatal(err)
	}
	// The holder's connection dies.
	if _, err := a.db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'prenv lock'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-again.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a lock whose connection died is not reported lost")
	}
	taken, err := a.Lock(context.Background(), "pr-1.lock")
	if err != nil {
		t.Fatalf("the lock of a dead connection stays held: %v", err)
	}
	taken.Release()
	again.Release() // after its loss: harmless
	if h, _ := a.Held(ctx, "pr-1.lock"); h {
		t.Fatal("released, and still held")
	}
}

// Replicas claim deliveries: claimers at once take different ones; a
// claim that runs out goes to another replica, and then only that replica
// records the outcome; each claim counts as an attempt.
func TestClaim_OneReplicaAtATimeAndTheOutcomeIsTheHoldersAlone(t *testing.T) {
	s, err := Open(context.Background(), testenv.Server(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if _, err := s.Enqueue(ctx, store.Delivery{ID: fmt.Sprintf("d%d", i), Event: "pull_request", Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Claim(ctx, "a", 2, 200*time.Millisecond)
	if err != nil || len(a) != 2 || a[0].ID != "d1" || a[1].ID != "d2" || a[0].Attempts != 1 {
		t.Fatalf("a's claim: %+v %v", a, err)
	}
	b, err := s.Claim(ctx, "b", 5, time.Minute)
	if err != nil || len(b) != 1 || b[0].ID != "d3" {
		t.Fatalf("b's claim while a holds two: %+v %v", b, err)
	}
	if lost, err := s.Renew(ctx, "a", []string{"d1"}, 200*time.Millisecond); err != nil || len(lost) != 0 {
		t.Fatalf("a renews d1: lost %v %v", lost, err)
	}
	time.Sleep(300 * time.Millisecond) // a's claims run out
	b, err = s.Claim(ctx, "b", 5, time.Minute)
	if err != nil || len(b) != 2 || b[0].Attempts != 2 {
		t.Fatalf("b takes what a let run out: %+v %v", b, err)
	}
	if lost, _ := s.Renew(ctx, "a", []string{"d1", "d2"}, time.Minute); len(lost) != 2 {
		t.Fatalf("a renewed claims that are b's: lost only %v", lost)
	}
	if held, err := s.FinishClaimed(ctx, "a", "d1", "done", "by a"); err != nil || held {
		t.Fatalf("a finished a delivery b holds: %v %v", held, err)
	}
	if held, err := s.FinishClaimed(ctx, "b", "d1", "done", "by b"); err != nil || !held {
		t.Fatalf("b, the holder, could not finish it: %v %v", held, err)
	}
	if d, _ := s.Delivery(ctx, "d1"); d.State != "done" || d.Note != "by b" {
		t.Fatalf("d1: %+v", d)
	}
}

// A claim takes the oldest deliveries and, with them, every other queued
// for the same pull request, so that a burst of pushes reaches one replica
// at once and only the newest is carried out; another replica takes other
// pull requests' deliveries meanwhile.
func TestClaim_TakesTheOldestWithEveryDeliveryForTheSamePullRequest(t *testing.T) {
	s, err := Open(context.Background(), testenv.Server(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for i, subject := range []string{"acme/shop#1", "acme/shop#2", "acme/shop#1", "", "acme/shop#2", "acme/shop#1", ""} {
		if _, err := s.Enqueue(ctx, store.Delivery{ID: fmt.Sprintf("d%d", i+1), Event: "pull_request", Body: []byte("{}"), Subject: subject}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(ds []store.Delivery) (out []string) {
		for _, d := range ds {
			out = append(out, d.ID+"="+d.Subject)
		}
		return out
	}
	a, err := s.Claim(ctx, "a", 1, time.Minute)
	if got := fmt.Sprint(ids(a)); err != nil || got != "[d1=acme/shop#1 d3=acme/shop#1 d6=acme/shop#1]" {
		t.Fatalf("a's claim of one: %s %v", got, err)
	}
	b, err := s.Claim(ctx, "b", 2, time.Minute)
	if got := fmt.Sprint(ids(b)); err != nil || got != "[d2=acme/shop#2 d4= d5=acme/shop#2]" {
		t.Fatalf("b's claim of two while a holds #1's: %s %v", got, err)
	}
	// A delivery for #1 that arrives while a holds #1's goes to whoever
	// claims next: a's run learns of it from the request it records.
	s.Enqueue(ctx, store.Delivery{ID: "d8", Event: "pull_request", Body: []byte("{}"), Subject: "acme/shop#1"})
	b, err = s.Claim(ctx, "b", 5, time.Minute)
	if got := fmt.Sprint(ids(b)); err != nil || got != "[d7= d8=acme/shop#1]" {
		t.Fatalf("b's second claim: %s %v", got, err)
	}
}

// A replica's claims stand while it is present (its presence lock's
// session lives) and until they run out; once the server has closed the
// session of a replica that died, another takes its claims at once, not a
// claim's time later. A claim made without presence (by a replica of an
// earlier version) lasts its time.
func TestClaim_AReplicasClaimsEndWithItsSession(t *testing.T) {
	url := testenv.Server(t)
	a, b, other := openAt(t, url), openAt(t, url), openAt(t, url)
	ctx := context.Background()
	for _, id := range []string{"d1", "d2"} {
		if _, err := a.Enqueue(ctx, store.Delivery{ID: id, Event: "pull_request", Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := a.Claim(ctx, "a", 1, time.Hour); err != nil || len(got) != 1 || got[0].ID != "d1" {
		t.Fatalf("a's claim: %+v %v", got, err)
	}
	// A replica of an earlier version claims d2: it knows nothing of
	// presence.
	if _, err := other.db.Exec(`UPDATE prenv_deliveries SET claimed_by = 'old', claimed_until = now() + interval '1 hour', attempts = 1 WHERE id = 'd2'`); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Claim(ctx, "b", 5, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("b claimed while a and the old replica hold every delivery: %+v %v", got, err)
	}
	// a's process dies: the server ends its sessions.
	a.presentMu.Lock()
	pid := a.present["a"].PgConn().PID()
	a.presentMu.Unlock()
	if _, err := other.db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	var got []store.Delivery
	for deadline := time.Now().Add(10 * time.Second); len(got) == 0; time.Sleep(20 * time.Millisecond) {
		var err error
		if got, err = b.Claim(ctx, "b", 5, time.Hour); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a's claim, an hour long, not taken over after a's session ended")
		}
	}
	if len(got) != 1 || got[0].ID != "d1" || got[0].Attempts != 2 {
		t.Fatalf("b took %+v; want d1 alone (the old replica's claim lasts its hour)", got)
	}
	if lost, err := a.Renew(ctx, "a", []string{"d1"}, time.Hour); err != nil || len(lost) != 1 {
		t.Fatalf("a, back, renewed a claim that is b's now: lost %v %v", lost, err)
	}
}

// Opening a store whose tables are current takes no lock on them: a
// replica's transaction on the queue does not hold up 'prenv status', and
// 'prenv status' does not hold up the replicas. (Before versions were
// recorded, every open ran ALTER TABLE ... ADD COLUMN IF NOT EXISTS, which
// waits for ACCESS EXCLUSIVE on prenv_deliveries.) A store made before
// versions were recorded gets what it lacks, once.
func TestOpen_TakesNoLockOnPrenvsTablesOnceTheyAreCurrent(t *testing.T) {
	server := testenv.Server(t)
	ctx := context.Background()
	url, schema := inSchema(t, server)
	first := openAt(t, url)

	// A replica in the middle of queueing a delivery: ROW EXCLUSIVE on
	// prenv_deliveries until it commits.
	tx, err := first.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO prenv_deliveries (id, event, body, received_at) VALUES ('d-1', 'ping', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := Open(octx, url)
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	if err := <-opened; err != nil {
		t.Fatalf("open while a replica writes the queue: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// A store from before versions: no version, a column missing.
	if _, err := first.db.Exec(`DROP TABLE prenv_schema; ALTER TABLE prenv_deliveries DROP COLUMN claimed_present`); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var v, cols int
	if err := again.db.QueryRow(`SELECT max(version), (SELECT count(*) FROM information_schema.columns WHERE table_schema = $1
		AND table_name = 'prenv_deliveries' AND column_name = 'claimed_present') FROM prenv_schema`, schema).Scan(&v, &cols); err != nil {
		t.Fatal(err)
	}
	if v != schemaVersion || cols != 1 {
		t.Fatalf("after opening an old store: version %d, claimed_present columns %d; want %d and 1", v, cols, schemaVersion)
	}
}

// cutOff is two replicas on a store of their own, pull request pr's
// record, and the first replica holding its environment's lock, which it
// will not check within the test (LockCheck is a minute): what a replica
// about to be cut off from the database has.
func cutOff(t *testing.T, pr int) (a, b *Store, k env.Key, held store.Lease, e store.Env) {
	t.Helper()
	ctx := context.Background()
	check := LockCheck
	LockCheck = time.Minute
	t.Cleanup(func() { LockCheck = check })
	url, _ := inSchema(t, testenv.Server(t))
	a, b = openAt(t, url), openAt(t, url)
	k = env.Key{PR: pr}
	if _, err := b.Request(ctx, k, k.Name(), "c1", false); err != nil {
		t.Fatal(err)
	}
	held, err := a.Lock(ctx, k.Name()+".lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Release)
	if e, err = a.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	return a, b, k, held, e
}

// The attack: a replica cut off from the database (its lock's session
// ended by the server) keeps running for a moment before it notices, while
// another replica takes the environment's lock and writes its record. The
// late writes of the first run are refused in the statement that would
// make them (store.ErrFenced): the record is the new holder's. The first
// run may still close its own run record; writes without a lock, and
// writes to a record that is not there, are as before.
func TestFence_ARunWhoseLockWasTakenOverCannotWriteTheRecord(t *testing.T) {
	ctx := context.Background()
	a, b, k, held, e := cutOff(t, 31)
	first := store.WithLease(ctx, held)
	e.State = env.StateCloning
	if err := a.Save(first, e); err != nil {
		t.Fatalf("the holder's write: %v", err)
	}
	run := store.Run{Key: k, Seq: 1, Kind: "up", Commit: "c1", State: store.RunRunning, StartedAt: time.Now()}
	if err := a.SaveRun(first, &run); err != nil || run.ID == 0 {
		t.Fatalf("the holder's run record: %v (id %d)", err, run.ID)
	}

	// The server ends the holder's session; the other replica takes the
	// lock and writes the record.
	if _, err := b.db.Exec(`SELECT pg_terminate_backend($1)`, held.(*lease).pid); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	taken, err := b.Lock(wait, k.Name()+".lock")
	if err != nil {
		t.Fatalf("the lock of an ended session: %v", err)
	}
	defer taken.Release()
	now := e
	now.State, now.Commit = env.StateReady, "c2"
	if err := b.Save(store.WithLease(ctx, taken), now); err != nil {
		t.Fatalf("the new holder's write: %v", err)
	}

	// The first run has not noticed, and writes late.
	select {
	case <-held.Lost():
		t.Fatal("the first replica noticed its loss: the test shows nothing")
	default:
	}
	late := e
	late.State, late.Error = env.StateFailed, "a late write"
	if err := a.Save(first, late); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a late Save: %v, want ErrFenced", err)
	}
	another := store.Run{Key: k, Seq: 2, Kind: "down", State: store.RunRunning, StartedAt: time.Now()}
	if err := a.SaveRun(first, &another); !errors.Is(err, store.ErrFenced) || another.ID != 0 {
		t.Errorf("a late new run: %v (id %d), want ErrFenced", err, another.ID)
	}
	if err := a.SaveBaseline(first, k, store.Baseline{Generation: 9, Schema: []byte(`{}`)}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("a late SaveBaseline: %v, want ErrFenced", err)
	}
	// Refused once, the run's lock is lost: the run stops at its next step.
	select {
	case <-held.Lost():
	default:
		t.Error("a refused write leaves the run's lock reported held")
	}
	got, err := b.Get(ctx, k)
	if err != nil || got.State != env.StateReady || got.Commit != "c2" || got.Error != "" {
		t.Errorf("the record after the late writes: %+v %v; want the new holder's (ready at c2)", got, err)
	}
	if _, err := b.Baseline(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a baseline was saved by the late run: %v", err)
	}
	var runs int
	if err := b.db.QueryRow(`SELECT count(*) FROM prenv_runs`).Scan(&runs); err != nil || runs != 1 {
		t.Errorf("runs recorded: %d %v; want the first run's only", runs, err)
	}

	// The new holder marks the first run interrupted; a step of the first
	// run that has not noticed does not open its record again.
	marked := run
	marked.State, marked.FinishedAt = store.RunInterrupted, time.Now()
	if err := b.SaveRun(ctx, &marked); err != nil {
		t.Fatal(err)
	}
	stepped := run
	stepped.Steps = append(stepped.Steps, store.Step{Name: "deploy"})
	if err := a.SaveRun(first, &stepped); err != nil {
		t.Errorf("a step of the first run: %v", err)
	}
	var state string
	if err := b.db.QueryRow(`SELECT state FROM prenv_runs WHERE id = $1`, run.ID).Scan(&state); err != nil || state != string(store.RunInterrupted) {
		t.Errorf("the first run's record after a late step: %q %v; want interrupted", state, err)
	}
	// It may close its own run record.
	run.State, run.FinishedAt = store.RunCancelled, time.Now()
	if err := a.SaveRun(first, &run); err != nil {
		t.Errorf("closing its own run: %v", err)
	}
	// Without a lock, writes are as before; a record that is not there is
	// not there, whoever asks.
	if err := a.Save(ctx, now); err != nil {
		t.Errorf("a write without a lock: %v", err)
	}
	if err := b.Save(store.WithLease(ctx, taken), store.Env{Key: env.Key{PR: 99}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing record: %v, want ErrNotFound", err)
	}
}

// A lock the store's other connections do not see held (they reach
// another server, as through a pooler in transaction mode or a
// misconfigured proxy) is refused when it is taken, with what to do:
// otherwise every fenced write of its run would be refused.
func TestLock_RefusedWhenTheStoresOtherConnectionsDoNotSeeItHeld(t *testing.T) {
	ctx := context.Background()
	one, other := testenv.Server(t), testenv.Server(t)
	s := openAt(t, one)
	s.url = other // the lock's own connection reaches another server
	held, err := s.Lock(ctx, "pr-5.lock")
	if err == nil {
		held.Release()
		t.Fatal("a lock that the store's queries cannot see was taken")
	}
	if !strings.Contains(err.Error(), "pooler in session mode") {
		t.Errorf("the error does not say what to do: %v", err)
	}
	if h, err := openAt(t, other).Held(ctx, "pr-5.lock"); h || err != nil {
		t.Errorf("the refused lock is still held where it was taken: %v %v", h, err)
	}
}

// A write that passed the fence and then waited for the record's row
// (another transaction held it) is checked again once it gets the row:
// the lock lost while it waited, the write is refused.
func TestFence_AWriteThatWaitedForTheRowIsCheckedWhenItGetsIt(t *testing.T) {
	ctx := context.Background()
	a, b, k, held, e := cutOff(t, 32)
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`SELECT 1 FROM prenv_envs WHERE key = $1 FOR UPDATE`, k.String()); err != nil {
		t.Fatal(err)
	}
	saved := make(chan error, 1)
	go func() {
		late := e
		late.State, late.Error = env.StateFailed, "a late write"
		saved <- a.Save(store.WithLease(ctx, held), late)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var waiting int
		if err := b.db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%prenv_envs%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never waited for the row")
		}
	}
	if _, err := b.db.Exec(`SELECT pg_terminate_backend($1)`, held.(*lease).pid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-saved; !errors.Is(err, store.ErrFenced) {
		t.Errorf("the write that waited: %v, want ErrFenced", err)
	}
	if got, err := b.Get(ctx, k); err != nil || got.State == env.StateFailed {
		t.Errorf("the record: %+v %v; the late write landed", got, err)
	}
}
