// Package memory is an in-memory Cloner: a real provider for fast tests and
// --dry-run that keeps its databases in a map. Cloners made from one World
// share their databases, as cloners sharing a PRENV_HOME do.
package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

var (
	_ dbclone.Cloner  = (*Cloner)(nil)
	_ dbclone.Checker = (*Cloner)(nil)
)

// World is the shared state of memory cloners.
type World struct {
	mu         sync.Mutex
	generation int
	dbs        map[string]record
	nextPort   int
}

type record struct {
	owner string
	db    dbclone.Database
}

// NewWorld returns an empty world with no golden source.
func NewWorld() *World { return &World{dbs: map[string]record{}, nextPort: 60000} }

// SetGolden makes generation n the golden source.
func (w *World) SetGolden(n int) { w.mu.Lock(); w.generation = n; w.mu.Unlock() }

// Cloner is a memory cloner acting for one owner.
type Cloner struct {
	World *World
	Owner string
}

// Clone implements dbclone.Cloner.
func (c *Cloner) Clone(ctx context.Context, req dbclone.Request) (dbclone.Database, error) {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	if r, ok := c.World.dbs[req.Name]; ok {
		if r.owner != c.Owner || r.db.Key != req.Key {
			return dbclone.Database{}, fmt.Errorf("clone %s: %w", req.Name, dbclone.ErrNotOurs)
		}
		return r.db, nil
	}
	if c.World.generation == 0 {
		return dbclone.Database{}, fmt.Errorf("clone %s: %w", req.Name, dbclone.ErrNoSource)
	}
	c.World.nextPort++
	port := c.World.nextPort
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	db := dbcloneDatabase(req.Key, labels, time.Now().UTC(), port, c.World.generation)
	c.World.dbs[req.Name] = record{owner: c.Owner, db: db}
	db.Created = true
	return db, nil
}

func dbcloneDatabase(k env.Key, labels map[string]string, created time.Time, port, generation int) dbclone.Database {
	return dbclone.Database{
		Key: k, Name: k.Name(), Provider: "memory",
		URL:  dbclone.URL("app", "memory", "memory.invalid", port, "app"),
		Host: "memory.invalid", Port: port, DBName: "app", User: "app", Password: "memory",
		Generation: generation, Labels: labels, CreatedAt: created, Ready: "in memory",
	}
}

// Check implements dbclone.Checker.
func (c *Cloner) Check(ctx context.Context, k env.Key) error {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	if r, ok := c.World.dbs[k.Name()]; ok {
		if r.owner != c.Owner || r.db.Key != k {
			return fmt.Errorf("clone %s: %w", k.Name(), dbclone.ErrNotOurs)
		}
		return nil
	}
	if c.World.generation == 0 {
		return dbclone.ErrNoSource
	}
	return nil
}

// Get implements dbclone.Cloner.
func (c *Cloner) Get(ctx context.Context, k env.Key) (dbclone.Database, error) {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[k.Name()]
	if !ok || r.owner != c.Owner {
		return dbclone.Database{}, fmt.Errorf("%s: %w", k.Name(), dbclone.ErrNotFound)
	}
	return r.db, nil
}

// Delete implements dbclone.Cloner.
func (c *Cloner) Delete(ctx context.Context, k env.Key) error {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[k.Name()]
	if !ok {
		return nil
	}
	if r.owner != c.Owner {
		return fmt.Errorf("delete %s: %w", k.Name(), dbclone.ErrNotOurs)
	}
	delete(c.World.dbs, k.Name())
	return nil
}

// List implements dbclone.Cloner.
func (c *Cloner) List(ctx context.Context) ([]dbclone.Database, error) {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	var out []dbclone.Database
	for _, r := range c.World.dbs {
		if r.owner == c.Owner {
			out = append(out, r.db)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
