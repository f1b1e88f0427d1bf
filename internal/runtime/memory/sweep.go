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
	_ env.Inventory = (*Runtime)(nil)
	_ env.Renewer   = (*Runtime)(nil)
)

// Resources implements env.Inventory: every home, ours and others'.
func (r *Runtime) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []env.Resource
	for name, h := range r.homes {
		labels := map[string]string{}
		for k, v := range h.labels {
			labels[k] = v
		}
		labels[env.LabelOwner] = h.owner
		res := env.Resource{Provider: "memory", Kind: "home", ID: name, Labels: labels, Key: h.key}
		if h.release == nil {
			res.HalfMade = "prepared, never deployed"
		}
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Remove implements env.Inventory.
func (r *Runtime) Remove(ctx context.Context, q env.Query, res env.Resource) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.homes[res.ID]
	if !ok {
		return nil
	}
	if h.owner != q.Owner {
		return fmt.Errorf("remove home %s: %w", res.ID, env.ErrNotOurs)
	}
	delete(r.homes, res.ID)
	return nil
}

// Renew implements env.Renewer.
func (r *Runtime) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	return r.label(k, "renew", map[string]string{env.LabelExpiresAt: expiresAt.UTC().Format(time.RFC3339)})
}

// label sets m on k's home, ours only; nothing if it has none.
func (r *Runtime) label(k env.Key, what string, m map[string]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.homes[k.Name()]
	if !ok {
		return nil
	}
	if h.owner != r.Owner || h.key != k {
		return fmt.Errorf("%s home %s: %w", what, k.Name(), env.ErrNotOurs)
	}
	labels := maps.Clone(h.labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, m)
	h.labels = labels
	r.homes[k.Name()] = h
	return nil
}

var _ env.Recorder = (*Runtime)(nil)

// Record implements env.Recorder: s goes on k's home as labels.
func (r *Runtime) Record(ctx context.Context, k env.Key, s env.Status) error {
	return r.label(k, "record on", env.StatusLabels(s))
}

// Find implements env.Recorder.
func (r *Runtime) Find(ctx context.Context, q env.Query, k env.Key) ([]env.Resource, error) {
	all, err := r.Resources(ctx, q)
	return env.Of(all, k), err
}
