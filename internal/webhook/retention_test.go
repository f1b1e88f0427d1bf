package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/webhook"
)

const fourteenDays = 14 * 24 * time.Hour

// movable is a clock a test moves forward.
type movable struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movable) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *movable) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// bigEvent is an opened pull_request delivery of about 20 KB (a long
// description), as GitHub sends them.
func bigEvent(n int) []byte {
	body, _ := json.Marshal(map[string]any{"action": "opened", "number": n, "repository": map[string]any{"full_name": "acme/shop"},
		"pull_request": map[string]any{"number": n, "state": "open", "updated_at": time.Now().UTC().Format(time.RFC3339),
			"body": strings.Repeat("A long description. ", 1024),
			"head": map[string]any{"sha": fmt.Sprintf("%040d", n), "repo": map[string]any{"full_name": "acme/shop"}},
			"base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}})
	return body
}

// drain carries out every queued delivery.
func (w *world) drain() {
	for deadline := time.Now().Add(60 * time.Second); queued(w.t, w.st) > 0; {
		if time.Now().After(deadline) {
			w.t.Fatal("deliveries still queued after 60s")
		}
		w.w.Drain(context.Background())
	}
}

// size is what the store takes on disk: its file and write-ahead log.
func (w *world) size() int64 {
	var n int64
	for _, f := range []string{"prenv.db", "prenv.db-wal"} {
		if fi, err := os.Stat(filepath.Join(w.dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// until waits for cond, failing after d.
func until(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetention_AFloodOfDeliveriesLeavesTheStoreAtTheSizeOfWhatItMustKeep(t *testing.T) {
	// Deliveries for a repository prenv does not serve: each is stored,
	// then ignored.
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Repos: []string{"acme/api"}})
	clock := &movable{t: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		(&webhook.Retention{Store: w.st, Keep: fourteenDays, Every: 20 * time.Millisecond, Now: clock.Now}).Run(ctx)
		close(stopped)
	}()
	defer func() { cancel(); <-stopped }()
	before := w.size()

	const flood = 2000
	for i := 0; i < flood; i++ {
		body := bigEvent(i + 1)
		if len(body) < 20<<10 {
			t.Fatalf("a delivery of %d bytes", len(body))
		}
		if code := w.deliver(fmt.Sprintf("flood-%d", i), "pull_request", body); code != 202 {
			t.Fatalf("delivery %d: %d", i, code)
		}
	}
	w.drain()
	flooded := w.size()
	if flooded < flood*20<<10 {
		t.Fatalf("the store takes %d bytes after the flood", flooded)
	}
	// Within the retention nothing goes.
	if d, err := w.st.Delivery(context.Background(), "flood-0"); err != nil || d.State != "ignored" {
		t.Fatalf("the first delivery within the retention: %+v %v", d, err)
	}
	// A delivery still queued stays, however old.
	w.deliver("waiting", "pull_request", bigEvent(9999))

	clock.Add(fourteenDays + time.Hour)
	until(t, 30*time.Second, "the flood pruned", func() bool {
		_, err := w.st.Delivery(context.Background(), fmt.Sprintf("flood-%d", flood-1))
		return errors.Is(err, store.ErrNotFound) && w.size() <= before+64<<10
	})
	t.Logf("the store: %d bytes before the flood, %d after it, %d after the prune", before, flooded, w.size())
	if d, err := w.st.Delivery(context.Background(), "waiting"); err != nil || d.State != "queued" {
		t.Fatalf("the queued delivery: %+v %v", d, err)
	}
}

func TestRetention_PrunesAtStart(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Repos: []string{"acme/api"}})
	w.deliver("old", "pull_request", bigEvent(1))
	w.drain()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		// The next tick is an hour away: only the prune at start can do it.
		(&webhook.Retention{Store: w.st, Keep: fourteenDays, Now: func() time.Time { return time.Now().Add(15 * 24 * time.Hour) }}).Run(ctx)
		close(stopped)
	}()
	defer func() { cancel(); <-stopped }()
	until(t, 10*time.Second, "the old delivery pruned at start", func() bool {
		_, err := w.st.Delivery(context.Background(), "old")
		return errors.Is(err, store.ErrNotFound)
	})
}

func TestRetention_WithoutAPositiveRetentionRemovesNothingAndSaysWhy(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Repos: []string{"acme/api"}})
	w.deliver("old", "pull_request", bigEvent(1))
	w.drain()
	_, err := (&webhook.Retention{Store: w.st, Now: func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }}).Prune(context.Background())
	if err == nil || !strings.Contains(err.Error(), "serve.retention") {
		t.Fatalf("Prune with no retention: %v", err)
	}
	if _, err := w.st.Delivery(context.Background(), "old"); err != nil {
		t.Fatalf("the delivery after a refused prune: %v", err)
	}
}
