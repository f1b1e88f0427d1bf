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
			url := server + " search_path=" + schema
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
