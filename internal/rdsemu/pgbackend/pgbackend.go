// Package pgbackend backs the RDS emulator's clusters with real PostgreSQL
// clones (prenv's localpg cloner), so their endpoints answer SQL.
package pgbackend

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

var _ rdsemu.Backend = (*Backend)(nil)

// Backend clones the golden database of a prenv home for each cluster.
type Backend struct {
	cloner *localpg.Cloner

	mu   sync.Mutex
	next int
	dbs  map[string]dbclone.Database
}

// New returns a backend cloning home's golden database, on ports "first-last".
func New(home, ports string, log *slog.Logger) (*Backend, error) {
	c := localpg.New(home, "rdsemu", log)
	a, b, ok := strings.Cut(ports, "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first > last {
		return nil, fmt.Errorf("ports %q: want first-last", ports)
	}
	c.FirstPort, c.LastPort = first, last
	return &Backend{cloner: c, dbs: map[string]dbclone.Database{}}, nil
}

// Create implements rdsemu.Backend.
func (b *Backend) Create(ctx context.Context, id string) (string, int, string, string, error) {
	b.mu.Lock()
	b.next++
	k := env.Key{PR: b.next}
	b.mu.Unlock()
	// The cloner names a database after its key (pr-N): the emulator maps
	// cluster identifiers to keys.
	db, err := b.cloner.Clone(ctx, dbclone.Request{Key: k, Name: k.Name()})
	if err != nil {
		return "", 0, "", "", err
	}
	b.mu.Lock()
	b.dbs[id] = db
	b.mu.Unlock()
	return db.Host, db.Port, db.User, db.Password, nil
}

// SetPassword implements rdsemu.Backend: the master user changes its own
// password, as ModifyDBCluster's MasterUserPassword does.
func (b *Backend) SetPassword(ctx context.Context, id, password string) error {
	b.mu.Lock()
	db, ok := b.dbs[id]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("no database for cluster %s", id)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "ALTER ROLE CURRENT_USER PASSWORD "+quote(password)); err != nil {
		return err
	}
	db.Password = password
	db.URL = dbclone.URL(db.User, password, db.Host, db.Port, db.DBName)
	b.mu.Lock()
	b.dbs[id] = db
	b.mu.Unlock()
	return nil
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Delete implements rdsemu.Backend.
func (b *Backend) Delete(ctx context.Context, id string) error {
	b.mu.Lock()
	db, ok := b.dbs[id]
	delete(b.dbs, id)
	b.mu.Unlock()
	if !ok {
		return nil
	}
	return b.cloner.Delete(ctx, db.Key)
}

// Close removes every database the backend made.
func (b *Backend) Close() error {
	b.mu.Lock()
	ids := make([]string, 0, len(b.dbs))
	for id := range b.dbs {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	var first error
	for _, id := range ids {
		if err := b.Delete(context.Background(), id); err != nil && first == nil {
			first = err
		}
	}
	return first
}
