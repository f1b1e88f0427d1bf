package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/store/storetest"
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

// The conformance suite every store passes.
func TestStore_Conformance(t *testing.T) {
	paths := map[storetest.Store]string{}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) storetest.Store {
			path := filepath.Join(t.TempDir(), "prenv.db")
			s, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			paths[s] = path
			return s
		},
		Again: func(t *testing.T, s storetest.Store) storetest.Store {
			again, err := Open(context.Background(), paths[s])
			if err != nil {
				t.Fatal(err)
			}
			return again
		},
		SetClock: func(s storetest.Store, now func() time.Time) { s.(*Store).now = now },
		RunIDs: func(t *testing.T, s storetest.Store) []int64 {
			rows, err := s.(*Store).db.Query(`SELECT id FROM runs`)
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
