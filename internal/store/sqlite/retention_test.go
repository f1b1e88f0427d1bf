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

func TestStore_PruneRemovesOldHistoryAndKeepsWhatIsQueuedUnfinishedOrNewest(t *testing.T) {
	s, c := withClock(t, filepath.Join(t.TempDir(), "prenv.db"))
	ctx := context.Background()
	start := c.t
	for _, state := range []string{"done", "ignored", "failed", "queued"} {
		addDelivery(t, s, "old-"+state, state, []byte("{}"))
	}
	a, b, d := env.Key{PR: 1}, env.Key{PR: 2}, env.Key{Repo: "acme/api", PR: 3}
	oldA := addRun(t, s, a, start)
	newestA := addRun(t, s, a, start.Add(time.Hour)) // old too, but the newest of pr-1
	oldB := addRun(t, s, b, start)
	runningB := addRun(t, s, b, time.Time{}) // never finished: a crashed or running run
	// Fifteen days later.
	c.t = start.Add(15 * 24 * time.Hour)
	addDelivery(t, s, "recent", "done", []byte("{}"))
	recentD1 := addRun(t, s, d, c.t)
	recentD2 := addRun(t, s, d, c.t.Add(time.Second))
	cutoff := c.t.Add(-retention14d) // one day after start
	// Just inside the retention, to the second: kept.
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
	if q, err := s.Queued(ctx, 10); err != nil || len(q) != 1 {
		t.Errorf("queued after the prune: %v %v", q, err)
	}
	if _, err := s.Delivery(ctx, "recent"); err != nil {
		t.Errorf("the recent delivery: %v", err)
	}
	ids := map[int64]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids[id] = true
	}
	rows.Close()
	want := map[int64]bool{newestA: true, runningB: true, recentD1: true, recentD2: true}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("runs left %v, want %v (removed %d, %d and the old newest of pr-1)", ids, want, oldA, oldB)
	}
	if r, err := s.LastRun(ctx, b); err != nil || r.ID != runningB {
		t.Errorf("the last run of pr-2: %+v %v", r, err)
	}
	// Nothing left to remove: a second prune changes nothing.
	if p, err := s.Prune(ctx, cutoff); err != nil || p != (store.Pruned{}) {
		t.Errorf("second prune: %+v %v", p, err)
	}
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
