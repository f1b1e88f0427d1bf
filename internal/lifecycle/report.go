package lifecycle

import (
	"context"

	"github.com/prenv/prenv/internal/store"
)

// Reporter is told what the lifecycle did to an environment, so that the
// people who asked see it where they asked (GitHub: a deployment per
// commit and one sticky comment per pull request). Every caller of Up and
// Down (the CLI, the webhook worker, the sweeper) reports the same way
// because the lifecycle reports, not the caller. A report never fails or
// holds up a run: an implementation logs or retries its own failures.
type Reporter interface {
	// Started: a run of Up passed its checks and begins its first step
	// towards commit.
	Started(ctx context.Context, e store.Env, commit string)
	// Finished: that run ended, e as it is now and r its record. A run
	// superseded by a newer request, or stopped by a shutdown, reports
	// nothing: the newer run, or the next one, does.
	Finished(ctx context.Context, e store.Env, r store.Run)
	// TornDown: Down removed e, for why.
	TornDown(ctx context.Context, e store.Env, why Why)
}

// Why says why an environment was brought down.
type Why struct {
	// Reason is closed (its pull request closed, or asked by hand),
	// expired or orphaned.
	Reason string
	// Detail says it to a person: "no push for 168h (ttl)".
	Detail string
	// Back says how to bring it back, when it can come back.
	Back string
}

// Reasons for a Down.
const (
	ReasonClosed   = "closed"
	ReasonExpired  = "expired"
	ReasonOrphaned = "orphaned"
)

func (l *Lifecycle) reportStarted(ctx context.Context, e store.Env, commit string) {
	if l.Reporter != nil {
		l.Reporter.Started(context.WithoutCancel(ctx), e, commit)
	}
}

// reportFinished reports run r. A run that had no migrate step (its commit
// was already migrated by an earlier run) carries that run's rehearsal
// report, so the comment keeps showing what the commit's migration did; a
// run that migrated without a report carries none.
func (l *Lifecycle) reportFinished(ctx context.Context, e store.Env, r store.Run) {
	if l.Reporter == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if len(r.Migration) == 0 && r.Kind == "up" && !r.Ran("migrate") {
		if m, err := l.Store.LastMigration(ctx, e.Key); err == nil && m.Commit == r.Commit {
			r.Migration = m.Migration
		}
	}
	l.Reporter.Finished(ctx, e, r)
}

func (l *Lifecycle) reportTornDown(ctx context.Context, e store.Env, why Why) {
	if l.Reporter != nil {
		l.Reporter.TornDown(context.WithoutCancel(ctx), e, why)
	}
}
