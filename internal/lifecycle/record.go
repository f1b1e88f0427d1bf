package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// recorders are the Lifecycle's providers that keep environments' status
// on resources other machines see (env.Recorder).
func (l *Lifecycle) recorders() []env.Recorder {
	var out []env.Recorder
	for _, p := range []any{l.Cloner, l.Runtime} {
		if r, ok := p.(env.Recorder); ok {
			out = append(out, r)
		}
	}
	return out
}

// Shared says whether every provider of the Lifecycle keeps its
// environments' status on its resources: then what the resources do not
// show does not exist, whatever a store says.
func (l *Lifecycle) Shared() bool {
	n := 1
	if l.Runtime != nil {
		n = 2
	}
	return len(l.recorders()) == n
}

// recordStatus writes e's status on its resources, for any machine to
// read. A failure is logged: the local record holds it, and the next run
// writes it again.
func (l *Lifecycle) recordStatus(ctx context.Context, e store.Env) {
	s := env.Status{Key: e.Key, State: e.State, Commit: e.Commit, URL: e.URL, ExpiresAt: e.ExpiresAt, UpdatedAt: l.now().UTC()}
	for _, r := range l.recorders() {
		if err := r.Record(context.WithoutCancel(ctx), e.Key, s); err != nil {
			l.log().Warn("cannot record the status on the resources: other machines see the previous one", "env", e.Key.Name(), "err", err)
		}
	}
}

// Recorded is what k's resources say of it, with a request or two per
// provider; false when it has none (or no provider keeps a status).
func (l *Lifecycle) Recorded(ctx context.Context, k env.Key) (env.Status, bool, error) {
	var all []env.Resource
	for _, r := range l.recorders() {
		rs, err := r.Find(ctx, env.Query{Owner: l.Owner, Now: l.now()}, k)
		if err != nil {
			return env.Status{}, false, fmt.Errorf("read %s's resources: %w", k.Name(), err)
		}
		all = append(all, rs...)
	}
	st, ok := env.StatusOf(l.Owner, all)[k]
	return st, ok, nil
}

// Discover is what the resources of this installation say of its
// environments, by key: one list per provider that keeps a status (the
// sweeper's), none when no provider does.
func (l *Lifecycle) Discover(ctx context.Context) (map[env.Key]env.Status, error) {
	var all []env.Resource
	for _, r := range l.recorders() {
		inv, ok := r.(env.Inventory)
		if !ok {
			continue
		}
		rs, err := inv.Resources(ctx, env.Query{Owner: l.Owner, Now: l.now()})
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	return env.StatusOf(l.Owner, all), nil
}

// adopt gives k a record made from its resources when this store has none
// (a CI runner starts with an empty one): the run that follows knows the
// commit served, its URL, its database and when it was made, and does not
// redo what is done (an up of the commit served does not migrate again).
func (l *Lifecycle) adopt(ctx context.Context, k env.Key) error {
	if len(l.recorders()) == 0 {
		return nil
	}
	if _, err := l.Store.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		return err
	}
	st, ok, err := l.Recorded(ctx, k)
	if err != nil || !ok {
		return err
	}
	if _, err := l.Store.Request(ctx, k, k.Name(), st.Commit, false); err != nil {
		return fmt.Errorf("record %s as its resources say: %w", k.Name(), err)
	}
	e, err := l.Store.Get(ctx, k)
	if err != nil {
		return err
	}
	adopted := FromStatus(st, e)
	adopted.Providers, adopted.Database.Provider = l.Providers, l.Providers.Database
	if err := l.Store.Save(ctx, adopted); err != nil {
		return fmt.Errorf("record %s as its resources say: %w", k.Name(), err)
	}
	l.log().Info("adopted the environment its resources describe", "env", k.Name(), "state", st.State, "commit", st.Commit, "resources", strings.Join(st.Resources, ", "))
	return nil
}

// FromStatus is e (a record, or the zero Env) as st says it is: state,
// commit and URL from st, and the rest as fill gives it.
func FromStatus(st env.Status, e store.Env) store.Env {
	e.Key, e.State, e.Commit, e.URL = st.Key, st.State, st.Commit, st.URL
	if e.Name == "" {
		e.Name = st.Key.Name()
	}
	if st.State != env.StateFailed {
		e.Error = ""
	} else if e.Error == "" {
		e.Error = "its last run failed on another machine: see that run's log"
	}
	if st.UpdatedAt.After(e.UpdatedAt) {
		e.UpdatedAt = st.UpdatedAt
	}
	return fill(st, e)
}

// fill completes e with what st knows and e may not: the later expiry, the
// earlier creation, the database's address and generation.
func fill(st env.Status, e store.Env) store.Env {
	if st.ExpiresAt.After(e.ExpiresAt) {
		e.ExpiresAt = st.ExpiresAt
	}
	if !st.CreatedAt.IsZero() && (e.CreatedAt.IsZero() || st.CreatedAt.Before(e.CreatedAt)) {
		e.CreatedAt = st.CreatedAt
	}
	if st.Database != "" && e.Database.Host == "" {
		e.Database.Host, e.Database.Port = splitAddress(st.Database)
	}
	if st.Generation > 0 && e.Database.Generation == 0 {
		e.Database.Generation = st.Generation
	}
	return e
}

// Merged is an environment as ls and status show it: this store's record
// of it, what its resources say, or both.
type Merged struct {
	store.Env
	// Local says this store has a record of it.
	Local bool
	// Resources names the resources that show it ("kubernetes namespace
	// pr-4"); none when no provider keeps a status.
	Resources []string
}

// Merge is an environment as this store and its resources say, for
// Lifecycles whose providers keep a status (otherwise the record is all
// there is): the later of the two says its state, commit and URL. A record
// whose resources are all gone, with every provider listed (listed), is
// shown deleted: it was brought down from another machine.
func (l *Lifecycle) Merge(e store.Env, local bool, st env.Status, found, listed bool) Merged {
	m := Merged{Env: e, Local: local}
	switch {
	case found && !local:
		m.Env = FromStatus(st, store.Env{Providers: l.Providers, Database: store.Database{Provider: l.Providers.Database}})
		m.DesiredCommit = st.Commit
	case found && st.UpdatedAt.After(e.UpdatedAt) && !e.State.Working():
		m.Env = FromStatus(st, e)
	case found:
		m.Env = fill(st, e)
	case local && listed && l.Shared() && e.State != env.StateDeleted && !e.State.Working() && (e.Commit != "" || e.Database.Host != "") &&
		(!e.Providers.Known() || e.Providers.Same(l.Providers)):
		m.State, m.URL, m.Commit = env.StateDeleted, "", ""
		m.Error = "its resources are gone: it was brought down from another machine, or they were removed by hand; 'prenv up' makes it again"
	}
	if found {
		m.Resources = st.Resources
	}
	return m
}

func splitAddress(a string) (string, int) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a, 0
	}
	port := 0
	fmt.Sscan(a[i+1:], &port)
	return strings.Trim(a[:i], "[]"), port
}
