package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

// Restore brings back the database of every open environment (a local
// clone stops with its machine), adopting each with the labels and expiry
// an up gives it; it changes no record and runs no migration. prenv serve
// calls it at start, before its apps come back. It returns what could not
// be restored, joined.
func (l *Lifecycle) Restore(ctx context.Context) error {
	envs, err := l.Store.List(ctx)
	if err != nil {
		return fmt.Errorf("restore: read the environments: %w", err)
	}
	var errs []error
	for _, e := range envs {
		if e.Closed || e.State == env.StateDeleted || e.Database.URL == "" {
			continue
		}
		if e.Providers.Known() && l.Providers.Known() && !e.Providers.Same(l.Providers) {
			continue // made with other providers: not this server's to bring back
		}
		req := dbclone.Request{Key: e.Key, Name: e.Key.Name(), Labels: l.labels(e), ExpiresAt: e.ExpiresAt}
		if _, err := l.Cloner.Clone(ctx, req); err != nil {
			errs = append(errs, fmt.Errorf("restore the database of %s: %w", e.Key.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// DatabaseURL is the URL of k's database as its app reaches it;
// dbclone.ErrNotFound when it has none.
func (l *Lifecycle) DatabaseURL(ctx context.Context, k env.Key) (string, error) {
	db, err := l.Cloner.Get(ctx, k)
	if err != nil {
		return "", err
	}
	return db.URL, nil
}
