package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

func TestStore_OpensAStoreMadeBeforeProvidersWereRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prenv.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(`CREATE TABLE envs (
		key TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL,
		desired_commit TEXT NOT NULL DEFAULT '', desired_seq INTEGER NOT NULL DEFAULT 0, closed INTEGER NOT NULL DEFAULT 0,
		commit_sha TEXT NOT NULL DEFAULT '', url TEXT NOT NULL DEFAULT '', database TEXT NOT NULL DEFAULT '{}',
		error TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
		INSERT INTO envs (key, name, state, created_at, updated_at) VALUES ('#7', 'pr-7', 'ready', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z');`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	ctx := context.Background()
	s := open(t, path)
	open(t, path) // a second process opening it changes nothing
	e, err := s.Get(ctx, env.Key{PR: 7})
	if err != nil || e.State != env.StateReady || e.Providers.Known() {
		t.Fatalf("old record: %+v, %v", e, err)
	}
	e.Providers = store.Providers{Database: "localpg"}
	if err := s.Save(ctx, e); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Get(ctx, env.Key{PR: 7}); err != nil || e.Providers.Database != "localpg" {
		t.Fatalf("after Save: %+v, %v", e.Providers, err)
	}
}

func TestProviders_SameComparesProvidersAndSettingsNotWhereTheConfigLives(t *testing.T) {
	local := store.Providers{Database: "localpg", Runtime: "local", RuntimeSettings: map[string]string{"listen": "127.0.0.1:8080"}, Config: "/a/prenv.yaml"}
	for _, tc := range []struct {
		name string
		q    store.Providers
		same bool
	}{
		{"the same from another copy of the file", store.Providers{Database: "localpg", Runtime: "local", RuntimeSettings: map[string]string{"listen": "127.0.0.1:8080"}, Config: "/b/prenv.yaml"}, true},
		{"database-only", store.Providers{Database: "localpg"}, false},
		{"another runtime", store.Providers{Database: "localpg", Runtime: "kubernetes"}, false},
		{"another prenv serve", store.Providers{Database: "localpg", Runtime: "local", RuntimeSettings: map[string]string{"listen": "127.0.0.1:9090"}}, false},
		{"another database provider", store.Providers{Database: "aurora", Runtime: "local", RuntimeSettings: map[string]string{"listen": "127.0.0.1:8080"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := local.Same(tc.q); got != tc.same {
				t.Fatalf("Same(%v) = %v, want %v", tc.q, got, tc.same)
			}
		})
	}
	if s := (store.Providers{Database: "localpg"}).String(); s != "database localpg, no app (database-only)" {
		t.Fatalf("String() = %q", s)
	}
}
