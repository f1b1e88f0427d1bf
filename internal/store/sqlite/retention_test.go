package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

const retention14d = 14 * 24 * time.Hour

// pruneClock is the store's time, moved by the test.
type pruneClock struct{ t time.Time }

func (c *pruneClock) now() time.Time { return c.t }

func withClock(t *testing.T, path string) (*Store, *pruneClock) {
	s := open(t, path)
	c := &pruneClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.now = c.now
	return s, c
}

func addDelivery(t *testing.T, s *Store, id, state string, body []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Enqueue(ctx, store.Delivery{ID: id, Event: "pull_request", Body: body}); err != nil {
		t.Fatal(err)
	}
	if state != "queued" {
		if err := s.Finish(ctx, id, state, ""); err != nil {
			t.Fatal(err)
		}
	}
}

func addRun(t *testing.T, s *Store, k env.Key, finished time.Time) int64 {
	t.Helper()
	r := &store.Run{Key: k, Seq: 1, Kind: "up", Commit: "c1", State: "succeeded", StartedAt: finished.Add(-time.Minute), FinishedAt: finished}
	if finished.IsZero() {
		r.State, r.StartedAt = "running", time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	}
	if err := s.SaveRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// storeSize is what the store takes on disk: the file and its write-ahead log.
func storeSize(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err == nil {
			n += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return n
}

func TestStore_AFloodOfDeliveriesLeavesTheFileAtTheSizeOfWhatItKeeps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prenv.db")
	s, c := withClock(t, path)
	ctx := context.Background()
	// What must be kept: an environment, its last run, a delivery queued.
	k := env.Key{PR: 1}
	if _, err := s.Request(ctx, k, "pr-1", "c1", false); err != nil {
		t.Fatal(err)
	}
	addRun(t, s, k, c.t)
	addDelivery(t, s, "waiting", "queued", []byte(strings.Repeat("q", 20<<10)))
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	before := storeSize(t, path)

	body := []byte(strings.Repeat("x", 20<<10))
	for i := 0; i < 2000; i++ {
		addDelivery(t, s, fmt.Sprintf("flood-%d", i), "done", body)
	}
	flooded := storeSize(t, path)
	if flooded < 2000*20<<10 {
		t.Fatalf("the flood took %d bytes: it did not reach the file", flooded)
	}
	c.t = c.t.Add(retention14d + time.Hour)
	p, err := s.Prune(ctx, c.t.Add(-retention14d))
	if err != nil {
		t.Fatal(err)
	}
	after := storeSize(t, path)
	t.Logf("before the flood %d bytes, after it %d, after the prune %d (%+v)", before, flooded, after, p)
	if p.Deliveries != 2000 || p.Reclaimed < 2000*20<<10 {
		t.Errorf("pruned %+v, want the 2000 deliveries and their 40 MB", p)
	}
	if after > before+64<<10 {
		t.Errorf("the store takes %d bytes after the prune, %d before the flood", after, before)
	}
	if d, err := s.Delivery(ctx, "waiting"); err != nil || len(d.Body) != 20<<10 {
		t.Errorf("the queued delivery: %v", err)
	}
	if _, err := s.LastRun(ctx, k); err != nil {
		t.Errorf("the last run: %v", err)
	}
}
