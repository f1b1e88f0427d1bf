package memory

import (
	"context"
	"fmt"
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
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[k.Name()]
	if !ok {
		return nil
	}
	if r.owner != c.Owner || r.db.Key != k {
		return fmt.Errorf("renew database %s: %w", k.Name(), env.ErrNotOurs)
	}
	labels := map[string]string{}
	for name, v := range r.db.Labels {
		labels[name] = v
	}
	labels[env.LabelExpiresAt] = expiresAt.UTC().Format(time.RFC3339)
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
	c.World.mu.Lock()
	defer c.World.mu.Unlock()
	r, ok := c.World.dbs[k.Name()]
	if !ok {
		return nil
	}
	if r.owner != c.Owner || r.db.Key != k {
		return fmt.Errorf("record on database %s: %w", k.Name(), env.ErrNotOurs)
	}
	labels := map[string]string{}
	for name, v := range r.db.Labels {
		labels[name] = v
	}
	for name, v := range env.StatusLabels(s) {
		labels[name] = v
	}
	r.db.Labels = labels
	c.World.dbs[k.Name()] = r
	return nil
}

// Find implements env.Recorder.
func (c *Cloner) Find(ctx context.Context, q env.Query, k env.Key) ([]env.Resource, error) {
	all, err := c.Resources(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []env.Resource
	for _, res := range all {
		if res.Key == k {
			out = append(out, res)
		}
	}
	return out, nil
}
