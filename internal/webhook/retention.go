package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prenv/prenv/internal/store"
)

// DefaultPruneEvery is how often Retention.Run prunes by default.
const DefaultPruneEvery = time.Hour

// Retention keeps prenv serve's store the size of what it must keep: every
// delivery GitHub makes is stored (20 KB is common, 25 MB allowed) and every
// run is recorded, so without it the store grows with every push. It
// removes the deliveries carried out and the runs finished more than Keep
// ago (serve.retention), keeping what is queued or unfinished and the last
// run of each environment (see store.Pruner).
//
// Keep should stay longer than the 3 days within which GitHub lets a
// delivery be redelivered: a redelivery of a removed delivery is carried
// out again (harmless, since a late delivery never undoes a newer state, but
// not free).
type Retention struct {
	Store store.Pruner
	Keep  time.Duration
	// Every is the time between prunes (default DefaultPruneEvery).
	Every time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

// Prune removes, once, what is older than Keep. It changes nothing and
// says so when Keep is not positive.
func (r *Retention) Prune(ctx context.Context) (store.Pruned, error) {
	if r.Keep <= 0 {
		return store.Pruned{}, fmt.Errorf("retention %v: nothing removed; set serve.retention to a positive duration such as 336h", r.Keep)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	cutoff := now().Add(-r.Keep)
	p, err := r.Store.Prune(ctx, cutoff)
	if err != nil {
		return p, fmt.Errorf("remove the history older than %v (serve.retention): %w; it is tried again in %v", r.Keep, err, r.every())
	}
	return p, nil
}

func (r *Retention) every() time.Duration {
	if r.Every > 0 {
		return r.Every
	}
	return DefaultPruneEvery
}

// Run prunes at once, then every Every, until ctx ends. A failed prune is
// logged and tried again at the next tick.
func (r *Retention) Run(ctx context.Context) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(r.every())
	defer t.Stop()
	for {
		p, err := r.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("prune the store", "error", err)
		case p.Deliveries+p.Runs > 0:
			log.Info("pruned the store", "older_than", r.Keep, "deliveries", p.Deliveries, "runs", p.Runs, "reclaimed_bytes", p.Reclaimed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
