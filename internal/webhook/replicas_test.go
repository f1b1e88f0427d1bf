package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	rtmemory "github.com/prenv/prenv/internal/runtime/memory"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/postgres"
	"github.com/prenv/prenv/internal/store/storetest"
	"github.com/prenv/prenv/internal/testenv"
	"github.com/prenv/prenv/internal/webhook"
)

// Two replicas of prenv serve share one PostgreSQL store and one cluster
// (the memory providers, whose migrations and deploys take 20ms): 200
// deliveries for 20 pull requests, queued in a shuffled order as two
// receivers would, are split between them; every environment ends at its
// pull request's last commit, no two runs of one environment overlap (read
// from the run records, and from the runtime itself), and both replicas
// did some of the work. Each replica has lock files of its own: only the
// store's locks keep them apart.
func TestReplicas_ShareTheQueueAndNeverRunOneEnvironmentTwiceAtOnce(t *testing.T) {
	server := testenv.Server(t)
	ctx := context.Background()
	rt := rtmemory.New("prenv")
	rt.Delay = 20 * time.Millisecond
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	policy := webhook.Policy{DefaultRepo: "acme/shop"}
	var workers []*webhook.Worker
	var stores []*postgres.Store
	for i := 0; i < 2; i++ {
		st, err := postgres.Open(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
		workers = append(workers, &webhook.Worker{Store: st, Policy: policy, ID: fmt.Sprintf("replica-%d", i), Concurrency: 4,
			Lifecycle: &lifecycle.Lifecycle{Store: st, Cloner: &dbmemory.Cloner{World: world, Owner: "prenv"}, Runtime: rt,
				LockDir: filepath.Join(t.TempDir(), "locks"), Owner: "prenv", TTL: time.Hour}})
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	type delivery struct {
		id   string
		body []byte
	}
	var all []delivery
	last := map[int]string{}
	for pr := 1; pr <= 20; pr++ {
		for push := 1; push <= 10; push++ {
			sha := fmt.Sprintf("%02d%02d", pr, push)
			action := "synchronize"
			if push == 1 {
				action = "opened"
			}
			all = append(all, delivery{fmt.Sprintf("d-%d-%d", pr, push), pullEvent(action, pr, sha, start.Add(time.Duration(push)*time.Second))})
			last[pr] = sha
		}
	}
	rand.New(rand.NewSource(7)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for i, d := range all {
		if _, err := stores[i%2].Enqueue(ctx, store.Delivery{ID: d.id, Event: "pull_request", Body: d.body}); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	for _, wk := range workers {
		go func(wk *webhook.Worker) { wk.Run(runCtx); done <- struct{}{} }(wk)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		converged := true
		for pr, sha := range last {
			e, err := stores[0].Get(ctx, env.Key{PR: pr})
			if err != nil || e.State != env.StateReady || e.Commit != sha {
				converged = false
				break
			}
		}
		q, _ := stores[0].Queued(ctx, 1)
		if converged && len(q) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged within a minute (queued: %d)", len(q))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	<-done
	<-done

	if rt.Overlaps != 0 {
		t.Errorf("the runtime saw %d migrations or deploys of one environment overlap", rt.Overlaps)
	}
	// From the run records: per environment, each run starts after the
	// one before it finished.
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT key, started_at, finished_at FROM prenv_runs ORDER BY key, started_at`)
	if err != nil {
		t.Fatal(err)
	}
	var spans []storetest.Span
	envs := map[string]bool{}
	for rows.Next() {
		var s storetest.Span
		var fin *time.Time
		if err := rows.Scan(&s.Key, &s.From, &fin); err != nil {
			t.Fatal(err)
		}
		if fin == nil {
			t.Errorf("a run of %s never finished", s.Key)
			continue
		}
		s.To = *fin
		spans = append(spans, s)
		envs[s.Key] = true
	}
	rows.Close()
	for _, o := range storetest.Overlapping(spans) {
		t.Error(o)
	}
	total := len(spans)
	if len(envs) != 20 {
		t.Errorf("runs of %d environments, want 20", len(envs))
	}
	// Both replicas took deliveries.
	var taken [2]int
	for i, wk := range workers {
		taken[i] = wk.Carried()
	}
	if taken[0] == 0 || taken[1] == 0 {
		t.Errorf("the deliveries were not split: %v", taken)
	}
	t.Logf("%d runs for 200 deliveries; deliveries carried out by each replica: %v", total, taken)
}

// pullEvent is a pull_request delivery's body in GitHub's shape.
func pullEvent(action string, n int, sha string, at time.Time) []byte {
	body, _ := json.Marshal(map[string]any{"action": action, "number": n, "pull_request": map[string]any{
		"number": n, "state": "open", "updated_at": at.Format(time.RFC3339), "labels": []any{},
		"head": map[string]any{"sha": sha, "ref": "feature", "repo": map[string]any{"full_name": "acme/shop"}},
		"base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}},
		"repository": map[string]any{"full_name": "acme/shop"}})
	return body
}

// A run whose environment's lock is lost (the server ended the lock's
// session) stops and hands its delivery back; the same replica, alone,
// claims it again and carries it out: the environment ends ready at the
// commit, the delivery done.
func TestReplicas_ARunThatLostItsLockIsCarriedOutAgain(t *testing.T) {
	server := testenv.Server(t)
	ctx := context.Background()
	check := postgres.LockCheck
	postgres.LockCheck = 500 * time.Millisecond
	t.Cleanup(func() { postgres.LockCheck = check })
	rt := rtmemory.New("prenv")
	rt.Delay = 2 * time.Second
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	st, err := postgres.Open(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	wk := &webhook.Worker{Store: st, Policy: webhook.Policy{DefaultRepo: "acme/shop"}, ID: "replica-0", ClaimTTL: time.Minute,
		Lifecycle: &lifecycle.Lifecycle{Store: st, Cloner: &dbmemory.Cloner{World: world, Owner: "prenv"}, Runtime: rt,
			LockDir: filepath.Join(t.TempDir(), "locks"), Owner: "prenv", TTL: time.Hour}}
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	if _, err := st.Enqueue(ctx, store.Delivery{ID: "d-1", Event: "pull_request", Body: pullEvent("opened", 1, "c1", at), Subject: "acme/shop#1"}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { wk.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 30s: %s", what)
			}
		}
	}
	// The run holds pr-1's lock: end that session, as a failover of the
	// database or a cut connection would.
	var ended bool
	until("the run holding the environment's lock, which is then lost", func() bool {
		_ = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity WHERE application_name = 'prenv lock'`).Scan(&ended)
		return ended
	})
	until("pr-1 ready at c1", func() bool {
		e, err := st.Get(ctx, env.Key{PR: 1})
		return err == nil && e.State == env.StateReady && e.Commit == "c1"
	})
	until("the delivery done", func() bool {
		d, err := st.Delivery(ctx, "d-1")
		return err == nil && d.State == "done"
	})
	var cancelled, succeeded int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'cancelled'), count(*) FILTER (WHERE state = 'succeeded') FROM prenv_runs`).Scan(&cancelled, &succeeded); err != nil {
		t.Fatal(err)
	}
	if cancelled != 1 || succeeded != 1 {
		t.Errorf("runs: %d stopped by the lost lock, %d succeeded; want one each", cancelled, succeeded)
	}
}

// A replica cut off from the database keeps running for a moment before
// it notices (here, for the whole test: its lock check is a minute away).
// Meanwhile the server ends its lock's session, another replica brings
// the environment up at a newer commit, and the first run, when its slow
// deploy ends, tries to record the environment as it saw it: the store
// refuses (store.ErrFenced), the run ends with ErrLockLost, and the record
// stays the new holder's. Without fencing, the stale run's write would be
// the record's last word.
func TestReplicas_ARunCutOffFromTheStoreCannotOverwriteTheNextHoldersRecord(t *testing.T) {
	server := testenv.Server(t)
	ctx := context.Background()
	check := postgres.LockCheck
	postgres.LockCheck = time.Minute
	t.Cleanup(func() { postgres.LockCheck = check })
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	replica := func(delay time.Duration) *lifecycle.Lifecycle {
		st, err := postgres.Open(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		rt := rtmemory.New("prenv")
		rt.Delay = delay
		return &lifecycle.Lifecycle{Store: st, Cloner: &dbmemory.Cloner{World: world, Owner: "prenv"}, Runtime: rt,
			LockDir: filepath.Join(t.TempDir(), "locks"), Owner: "prenv", TTL: time.Hour}
	}
	slow, fast := replica(3*time.Second), replica(0)
	k := env.Key{PR: 41}
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	ended := make(chan error, 1)
	go func() {
		_, err := slow.Up(ctx, lifecycle.UpOptions{Key: k, Commit: "c1"})
		ended <- err
	}()
	until := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 30s: %s", what)
			}
		}
	}
	until("the slow run in its migration or deploy", func() bool {
		e, err := slow.Store.Get(ctx, k)
		return err == nil && (e.State == env.StateMigrating || e.State == env.StateDeploying)
	})
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'prenv lock'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ending the slow run's lock session: %d %v", n, err)
	}
	if e, err := fast.Up(ctx, lifecycle.UpOptions{Key: k, Commit: "c2"}); err != nil || e.State != env.StateReady || e.Commit != "c2" {
		t.Fatalf("the other replica's up: %+v %v", e, err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, lifecycle.ErrLockLost) {
			t.Errorf("the cut-off run ended with %v, want ErrLockLost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cut-off run did not end")
	}
	if e, err := fast.Store.Get(ctx, k); err != nil || e.State != env.StateReady || e.Commit != "c2" || e.Error != "" {
		t.Errorf("the record after the cut-off run ended: %+v %v; want ready at c2", e, err)
	}
}
