// Package storetest is the conformance suite of store.Store and the
// interfaces beside it (the webhook queue, pruning, readiness): every
// store prenv has passes the same tests.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// Store is what a store implements: the record, the webhook queue,
// pruning and readiness.
type Store interface {
	store.Store
	store.Queue
	store.Pruner
	store.Pinger
}

// Harness makes stores for the suite.
type Harness struct {
	// Open returns a new, empty store; the suite closes it.
	Open func(t *testing.T) Store
	// Again opens a second connection to the store s (another process's).
	Again func(t *testing.T, s Store) Store
	// SetClock makes now the store's clock.
	SetClock func(s Store, now func() time.Time)
	// RunIDs lists the ids of every run the store keeps.
	RunIDs func(t *testing.T, s Store) []int64
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T) Store {
		s := h.Open(t)
		t.Cleanup(func() { s.Close() })
		return s
	}
	t.Run("RequestsGetIncreasingSequenceNumbersAcrossConnections", func(t *testing.T) {
		a := open(t)
		b := h.Again(t, a)
		t.Cleanup(func() { b.Close() })
		k := env.Key{PR: 3}
		ctx := context.Background()
		var wg sync.WaitGroup
		seqs := make(chan int64, 40)
		for i := 0; i < 20; i++ {
			for _, s := range []Store{a, b} {
				wg.Add(1)
				go func(s Store) {
					defer wg.Done()
					n, err := s.Request(ctx, k, "pr-3", "abc", false)
					if err != nil {
						t.Error(err)
					}
					seqs <- n
				}(s)
			}
		}
		wg.Wait()
		close(seqs)
		seen := map[int64]bool{}
		for n := range seqs {
			if seen[n] {
				t.Fatalf("sequence %d handed out twice", n)
			}
			seen[n] = true
		}
		e, err := a.Get(ctx, k)
		if err != nil || e.DesiredSeq != 40 || e.State != env.StatePending {
			t.Fatalf("env = %+v, %v", e, err)
		}
		if n, err := a.Request(ctx, env.Key{PR: 99}, "pr-99", "", true); err != nil || n != 0 {
			t.Fatalf("a down of nothing recorded something: %d %v", n, err)
		}
		if _, err := a.Get(ctx, env.Key{PR: 99}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a down of nothing made a record: %v", err)
		}
	})
	t.Run("SaveNeverOverwritesTheDesiredCommit", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		k := env.Key{Repo: "acme/shop", PR: 1}
		if _, err := s.Request(ctx, k, "pr-1", "old", false); err != nil {
			t.Fatal(err)
		}
		e, _ := s.Get(ctx, k)
		if _, err := s.Request(ctx, k, "pr-1", "new", false); err != nil {
			t.Fatal(err)
		}
		e.State, e.Commit, e.Database.URL = env.StateReady, "old", "postgres://x"
		e.ExpiresAt = time.Date(2026, 12, 1, 2, 3, 4, 500000, time.UTC) // stores keep times to the microsecond
		e.DownReason, e.DownCommit = "expired", "old"
		if err := s.Save(ctx, e); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, k)
		if got.DesiredCommit != "new" || got.Commit != "old" || got.State != env.StateReady || got.Database.URL != "postgres://x" ||
			!got.ExpiresAt.Equal(e.ExpiresAt) || got.DownReason != "expired" || got.DownCommit != "old" || got.Key != k || got.Name != "pr-1" {
			t.Fatalf("got %+v", got)
		}
		if _, err := s.Request(ctx, k, "pr-1", "", true); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, k); !got.Closed || got.DesiredSeq != 3 {
			t.Fatalf("after a down request: %+v", got)
		}
		if err := s.Save(ctx, store.Env{Key: env.Key{PR: 404}, State: env.StateReady}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Save without a record: %v", err)
		}
	})
	t.Run("ListsEveryEnvironmentByKey", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		for _, k := range []env.Key{{PR: 2}, {Repo: "acme/api", PR: 1}, {PR: 10}} {
			if _, err := s.Request(ctx, k, k.Name(), "c", false); err != nil {
				t.Fatal(err)
			}
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != 3 {
			t.Fatalf("List: %v %v", list, err)
		}
		for i := 1; i < len(list); i++ {
			if list[i-1].Key.String() >= list[i].Key.String() {
				t.Fatalf("List is not in key order: %v", list)
			}
		}
	})
	t.Run("RunsKeepTheirSteps", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		k := env.Key{PR: 9}
		if _, err := s.LastRun(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LastRun of nothing = %v", err)
		}
		started := time.Date(2026, 11, 27, 10, 0, 0, 123000, time.UTC)
		r := &store.Run{Key: k, Seq: 1, Kind: "up", Commit: "c1", State: "running", StartedAt: started}
		if err := s.SaveRun(ctx, r); err != nil || r.ID == 0 {
			t.Fatal(r.ID, err)
		}
		r.Steps = []store.Step{{Name: "clone", Seconds: 0.25}}
		r.State, r.Error, r.Output, r.FinishedAt = "failed", "boom", "line 1\nline 2", started.Add(time.Minute)
		r.Migration = json.RawMessage(`{"statements":1}`)
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.LastRun(ctx, k)
		if err != nil || got.State != "failed" || len(got.Steps) != 1 || got.Steps[0].Name != "clone" || got.Error != "boom" ||
			got.Output != r.Output || !got.StartedAt.Equal(started) || !got.FinishedAt.Equal(r.FinishedAt) || got.ID != r.ID {
			t.Fatalf("got %+v, %v", got, err)
		}
		later := &store.Run{Key: k, Seq: 2, Kind: "down", State: "succeeded", StartedAt: started.Add(time.Hour)}
		if err := s.SaveRun(ctx, later); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.LastRun(ctx, k); got.ID != later.ID {
			t.Fatalf("LastRun is %d, not the newest %d", got.ID, later.ID)
		}
		if m, err := s.LastMigration(ctx, k); err != nil || m.ID != r.ID || string(m.Migration) != `{"statements":1}` {
			t.Fatalf("LastMigration: %+v %v", m, err)
		}
		if _, err := s.Get(ctx, env.Key{PR: 77}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get of nothing = %v", err)
		}
	})
	t.Run("KeepsTheSchemaBaselineOfTheDatabase", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		k := env.Key{PR: 4}
		created := time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC)
		b := store.Baseline{Generation: 2, DatabaseCreated: created, Schema: json.RawMessage(`{"tables":[{"name":"public.orders","columns":[]}]}`)}
		if err := s.SaveBaseline(ctx, k, b); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SaveBaseline without a record: %v; want ErrNotFound", err)
		}
		if _, err := s.Request(ctx, k, "pr-4", "abc", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Baseline(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Baseline before any: %v; want ErrNotFound", err)
		}
		if err := s.SaveBaseline(ctx, k, b); err != nil {
			t.Fatal(err)
		}
		e, _ := s.Get(ctx, k)
		e.State = env.StateReady
		if err := s.Save(ctx, e); err != nil {
			t.Fatal(err)
		}
		got, err := s.Baseline(ctx, k)
		if err != nil || !got.Of(2, created) {
			t.Fatalf("Baseline = %+v, %v", got, err)
		}
		var schema map[string]any
		if json.Unmarshal(got.Schema, &schema) != nil || fmt.Sprint(schema) != "map[tables:[map[columns:[] name:public.orders]]]" {
			t.Fatalf("the baseline's schema came back as %s", got.Schema)
		}
	})
	t.Run("KeepsTheProvidersAnEnvironmentWasMadeWith", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		k := env.Key{PR: 2}
		if _, err := s.Request(ctx, k, "pr-2", "c1", false); err != nil {
			t.Fatal(err)
		}
		e, err := s.Get(ctx, k)
		if err != nil || e.Providers.Known() {
			t.Fatalf("a new record: providers %+v, %v", e.Providers, err)
		}
		want := store.Providers{
			Database: "aurora", DatabaseSettings: map[string]string{"region": "eu-west-1", "prefix": "prenv-"},
			Runtime: "local", RuntimeSettings: map[string]string{"listen": "127.0.0.1:8080"},
			Config: "/src/shop/prenv.yaml", Home: "/var/lib/prenv",
		}
		e.Providers, e.State = want, env.StateReady
		if err := s.Save(ctx, e); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, k)
		if err != nil || !got.Providers.Same(want) || got.Providers.Config != want.Config || got.Providers.Home != want.Home {
			t.Fatalf("Get: providers %+v, %v", got.Providers, err)
		}
	})
	t.Run("QueuesEachDeliveryOnceInOrder", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		for _, id := range []string{"d1", "d2", "d3"} {
			if ok, err := s.Enqueue(ctx, store.Delivery{ID: id, Event: "pull_request", Body: []byte(`{"n":"` + id + `"}`)}); !ok || err != nil {
				t.Fatalf("enqueue %s: %v %v", id, ok, err)
			}
		}
		if ok, err := s.Enqueue(ctx, store.Delivery{ID: "d2", Event: "pull_request", Body: []byte("{}")}); ok || err != nil {
			t.Fatalf("a redelivery was queued again: %v %v", ok, err)
		}
		q, err := s.Queued(ctx, 10)
		if err != nil || len(q) != 3 || q[0].ID != "d1" || q[2].ID != "d3" || string(q[1].Body) != `{"n":"d2"}` || q[0].ReceivedAt.IsZero() {
			t.Fatalf("Queued: %+v %v", q, err)
		}
		if q, _ := s.Queued(ctx, 2); len(q) != 2 {
			t.Fatalf("Queued(2) gave %d", len(q))
		}
		if err := s.Finish(ctx, "d1", "queued", "retry"); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "d2", "done", "ok"); err != nil {
			t.Fatal(err)
		}
		d, err := s.Delivery(ctx, "d1")
		if err != nil || d.State != "queued" || d.Attempts != 1 || d.Note != "retry" {
			t.Fatalf("d1: %+v %v", d, err)
		}
		if q, _ := s.Queued(ctx, 10); len(q) != 2 || q[0].ID != "d1" || q[1].ID != "d3" {
			t.Fatalf("Queued after finishing d2: %+v", q)
		}
		if _, err := s.Delivery(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delivery of nothing: %v", err)
		}
		if qs, ok := s.(store.QueueStats); ok {
			depth, oldest, err := qs.QueueStats(ctx)
			d1, _ := s.Delivery(ctx, "d1")
			if err != nil || depth != 2 || !oldest.Equal(d1.ReceivedAt) {
				t.Fatalf("QueueStats: %d %v %v; want 2 and d1's %v", depth, oldest, err, d1.ReceivedAt)
			}
		}
	})
	t.Run("ObservesPullRequestsInGitHubsOrder", func(t *testing.T) {
		s := open(t)
		ctx := context.Background()
		k := env.Key{Repo: "acme/shop", PR: 5}
		t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
		for _, c := range []struct {
			state string
			at    time.Time
			news  bool
		}{
			{"open", t0, true},
			{"open", t0.Add(-time.Second), false}, // late
			{"closed", t0.Add(time.Minute), true},
			{"open", t0.Add(time.Minute), false}, // a close is not undone at the same time
			{"open", t0.Add(2 * time.Minute), true},
		} {
			news, err := s.ObservePull(ctx, k, c.state, c.at)
			if err != nil || news != c.news {
				t.Fatalf("%s at %v: news %v %v, want %v", c.state, c.at, news, err, c.news)
			}
		}
	})
	t.Run("PruneRemovesOldHistoryAndKeepsWhatIsQueuedUnfinishedOrNewest", func(t *testing.T) {
		s := open(t)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		h.SetClock(s, func() time.Time { return now })
		ctx := context.Background()
		start := now
		for _, state := range []string{"done", "ignored", "failed", "queued"} {
			if _, err := s.Enqueue(ctx, store.Delivery{ID: "old-" + state, Event: "pull_request", Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
			if state != "queued" {
				if err := s.Finish(ctx, "old-"+state, state, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		run := func(k env.Key, finished time.Time) int64 {
			r := &store.Run{Key: k, Seq: 1, Kind: "up", Commit: "c1", State: "succeeded", StartedAt: finished.Add(-time.Minute), FinishedAt: finished}
			if finished.IsZero() {
				r.State, r.StartedAt = "running", start
			}
			if err := s.SaveRun(ctx, r); err != nil {
				t.Fatal(err)
			}
			return r.ID
		}
		a, b, d := env.Key{PR: 1}, env.Key{PR: 2}, env.Key{Repo: "acme/api", PR: 3}
		run(a, start)
		newestA := run(a, start.Add(time.Hour))
		run(b, start)
		runningB := run(b, time.Time{})
		now = start.Add(15 * 24 * time.Hour)
		if _, err := s.Enqueue(ctx, store.Delivery{ID: "recent", Event: "pull_request", Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "recent", "done", ""); err != nil {
			t.Fatal(err)
		}
		recentD1, recentD2 := run(d, now), run(d, now.Add(time.Second))
		cutoff := now.Add(-14 * 24 * time.Hour)
		edge := &store.Run{Key: a, Seq: 2, Kind: "up", State: "failed", StartedAt: cutoff, FinishedAt: cutoff.Add(time.Second)}
		if err := s.SaveRun(ctx, edge); err != nil {
			t.Fatal(err)
		}
		newestA = edge.ID
		p, err := s.Prune(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if p.Deliveries != 3 || p.Runs != 3 {
			t.Errorf("pruned %+v, want the 3 old deliveries carried out and 3 old runs", p)
		}
		for _, id := range []string{"old-done", "old-ignored", "old-failed"} {
			if _, err := s.Delivery(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("delivery %s: %v, want it gone", id, err)
			}
		}
		if q, err := s.Delivery(ctx, "old-queued"); err != nil || q.State != "queued" {
			t.Errorf("the old delivery still queued: %+v %v", q, err)
		}
		if _, err := s.Delivery(ctx, "recent"); err != nil {
			t.Errorf("the recent delivery: %v", err)
		}
		got := map[int64]bool{}
		for _, id := range h.RunIDs(t, s) {
			got[id] = true
		}
		want := map[int64]bool{newestA: true, runningB: true, recentD1: true, recentD2: true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("runs left %v, want %v", got, want)
		}
		if p, err := s.Prune(ctx, cutoff); err != nil || p.Deliveries+p.Runs != 0 {
			t.Errorf("second prune: %+v %v", p, err)
		}
	})
	t.Run("PingsWhileOpenOnly", func(t *testing.T) {
		s := h.Open(t)
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := s.Ping(context.Background()); err == nil {
			t.Fatal("a closed store answers")
		}
	})
}

// Span is when one run of an environment ran (key as the store keeps it).
type Span struct {
	Key      string
	From, To time.Time
}

// Overlapping says, for runs read from a store's records, each run that
// started before the run of its environment before it had finished: what
// one run per environment at a time forbids.
func Overlapping(spans []Span) []string {
	by := map[string][]Span{}
	for _, s := range spans {
		by[s.Key] = append(by[s.Key], s)
	}
	var out []string
	for k, ss := range by {
		sort.Slice(ss, func(i, j int) bool { return ss[i].From.Before(ss[j].From) })
		for i := 1; i < len(ss); i++ {
			if ss[i].From.Before(ss[i-1].To) {
				out = append(out, fmt.Sprintf("%s: a run started at %v while the one before ran until %v", k, ss[i].From, ss[i-1].To))
			}
		}
	}
	sort.Strings(out)
	return out
}
