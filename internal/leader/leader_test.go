package leader_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/leader"
	"github.com/prenv/prenv/internal/store/postgres"
	"github.com/prenv/prenv/internal/testenv"
)

// Leading records who leads, and how many lead at once.
type Leading struct {
	mu      sync.Mutex
	now     map[string]bool
	most    int
	changes chan string
}

func NewLeading() *Leading { return &Leading{now: map[string]bool{}, changes: make(chan string, 16)} }

// As is lead for the replica called name.
func (l *Leading) As(name string) func(ctx context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.now[name] = true
		l.most = max(l.most, len(l.now))
		l.mu.Unlock()
		l.changes <- name
		<-ctx.Done()
		l.mu.Lock()
		delete(l.now, name)
		l.mu.Unlock()
	}
}

// Next waits for the next replica to lead.
func (l *Leading) Next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case name := <-l.changes:
		return name
	case <-time.After(within):
		t.Fatalf("no replica leads within %v", within)
		return ""
	}
}

func (l *Leading) Most() int { l.mu.Lock(); defer l.mu.Unlock(); return l.most }

// On a store's lock: one replica leads; when it stops, or its connection
// to the store dies, the other leads, and never two at once.
func TestStoreLock_OneLeaderAndTheOtherTakesOver(t *testing.T) {
	server := testenv.Server(t)
	postgres.LockCheck = 200 * time.Millisecond
	ctx := context.Background()
	leading := NewLeading()
	cancels := map[string]context.CancelFunc{}
	for _, name := range []string{"a", "b"} {
		st, err := postgres.Open(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c, cancel := context.WithCancel(ctx)
		cancels[name] = cancel
		t.Cleanup(cancel)
		go leader.StoreLock{Locker: st, Grace: 3 * postgres.LockCheck}.Run(c, leading.As(name))
	}
	first := leading.Next(t, 5*time.Second)
	cancels[first]() // the leader stops
	second := leading.Next(t, 5*time.Second)
	if second == first {
		t.Fatalf("%s leads again after it stopped", first)
	}
	// The new leader's connection to the store dies: it stops leading;
	// with the old one gone, nobody else is left to lead, so start one.
	third, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	st, err := postgres.Open(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	go leader.StoreLock{Locker: st, Grace: 3 * postgres.LockCheck}.Run(third, leading.As("c"))
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'prenv lock'
		AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)`); err != nil {
		t.Fatal(err)
	}
	for name := leading.Next(t, 10*time.Second); name != "c"; name = leading.Next(t, 10*time.Second) {
		// second may win the lock again once its connection is back
	}
	if leading.Most() != 1 {
		t.Fatalf("%d replicas led at once", leading.Most())
	}
}
