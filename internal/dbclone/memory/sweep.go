package memory

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/prenv/prenv/internal/env"
)

var (
	_ env.Inventory = (*Cloner)(nil)
	_ env.Renewer   = (*Cloner)(nil)
)

// Resources implements env.Inventory: every database of the world, ours
// and others'.
func (c *Cloner) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	var out []env.Resource
	for name, r := range c.World.dbs {
		labels := map[string]string{}
		for k, v := range r.db.Labels {
			labels[k] = v
		}
		labels[env.LabelOwner] = r.owner
		out = append(out, env.Resource{Provider: "memory", Kind: "database", ID: name, Labels: labels, Key: r.db.Key, CreatedAt: r.db.CreatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove implements env.Inventory.
func (c *Cloner) Remove(ctx context.Context, q env.Query, res env.Resource) error {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[res.ID]
	if !ok {
		return nil
	}
	if r.owner != q.Owner {
		return fmt.Errorf("remove database %s: %w", res.ID, env.ErrNotOurs)
	}
	delete(c.World.dbs, res.ID)
	return nil
}

// Renew implements env.Renewer.
func (c *Cloner) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	return c.label(k, "renew", map[string]string{env.LabelExpiresAt: expiresAt.UTC().Format(time.RFC3339)})
}

// label sets m on k's database, ours only; nothing if it has none.
func (c *Cloner) label(k env.Key, what string, m map[string]string) error {
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[k.Name()]
	if !ok {
		return nil
	}
	if r.owner != c.Owner || r.db.Key != k {
		return fmt.Errorf("%s database %s: %w", what, k.Name(), env.ErrNotOurs)
	}
	labels := maps.Clone(r.db.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, m)
	r.db.Labels = labels
	c.World.dbs[k.Name()] = r
	return nil
}

// Leak puts a database of k carrying labels into the world without a
// record anywhere, as a run killed after its clone leaves it.
func (w *World) Leak(owner string, k env.Key, labels map[string]string, created time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextPort++
	w.dbs[k.Name()] = record{owner: owner, db: dbcloneDatabase(k, labels, created, w.nextPort, w.generation)}
}

var _ env.Recorder = (*Cloner)(nil)

// Record implements env.Recorder: s goes on k's database as labels.
func (c *Cloner) Record(ctx context.Context, k env.Key, s env.Status) error {
	return c.label(k, "record on", env.StatusLabels(s))
}

// Find implements env.Recorder.
func (c *Cloner) Find(ctx context.Context, q env.Query, k env.Key) ([]env.Resource, error) {
	all, err := c.Resources(ctx, q)
	return env.Of(all, k), err
}
