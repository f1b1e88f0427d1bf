package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore_RequestsGetIncreasingSequenceNumbersAcrossConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prenv.db")
	a, b := open(t, path), open(t, path)
	k := env.Key{PR: 3}
	ctx := context.Background()
	var wg sync.WaitGroup
	seqs := make(chan int64, 40)
	for i := 0; i < 20; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func(s *Store) {
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
}

func TestStore_SaveNeverOverwritesTheDesiredCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "prenv.db"))
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
	if err := s.Save(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(ctx, k)
	if got.DesiredCommit != "new" || got.Commit != "old" || got.State != env.StateReady || got.Database.URL != "postgres://x" {
		t.Fatalf("got %+v", got)
	}
}

func TestStore_RunsKeepTheirSteps(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "prenv.db"))
	ctx := context.Background()
	k := env.Key{PR: 9}
	if _, err := s.LastRun(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LastRun of nothing = %v", err)
	}
	r := &store.Run{Key: k, Seq: 1, Kind: "up", Commit: "c1", State: "running"}
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Steps = []store.Step{{Name: "clone", Seconds: 0.25}}
	r.State = "succeeded"
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	got, err := s.LastRun(ctx, k)
	if err != nil || got.State != "succeeded" || len(got.Steps) != 1 || got.Steps[0].Name != "clone" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if _, err := s.Get(ctx, env.Key{PR: 77}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of nothing = %v", err)
	}
}

// The schema baseline of an environment's database is kept beside its
// record: Save leaves it alone, and it belongs to one database only.
func TestStore_KeepsTheSchemaBaselineOfTheDatabase(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "prenv.db"))
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
	if err != nil || string(got.Schema) != string(b.Schema) || !got.Of(2, created) {
		t.Fatalf("Baseline = %+v, %v", got, err)
	}
	if got.Of(3, created) || got.Of(2, created.Add(time.Second)) || got.Of(2, time.Time{}) {
		t.Fatal("the baseline belongs to another generation's or another database's clone too")
	}
}
