package postgres

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/store/storetest"
	"github.com/prenv/prenv/internal/testenv"
)

var schemas atomic.Int64

// The conformance suite every store passes, on a real PostgreSQL server:
// each test in a schema of its own.
func TestStore_Conformance(t *testing.T) {
	server := testenv.Server(t)
	urls := map[storetest.Store]string{}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store {
			schema := fmt.Sprintf("t%d", schemas.Add(1))
			admin, err := Open(context.Background(), server)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := admin.db.Exec(`CREATE SCHEMA ` + schema); err != nil {
				t.Fatal(err)
			}
			admin.Close()
			url := server + "&search_path=" + schema
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
	open := func() *Store {
		s, err := Open(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
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
