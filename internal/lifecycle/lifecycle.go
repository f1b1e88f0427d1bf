package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
)

// ErrSuperseded is returned by a run that stopped because a newer request
// for the same environment arrived.
var ErrSuperseded = errors.New("superseded by a newer request for the same environment")

// Lifecycle carries what every use case needs.
type Lifecycle struct {
	Store   store.Store
	Cloner  dbclone.Cloner
	Runtime runtime.Runtime // nil: environments are database-only
	// Providers names Cloner and Runtime as the configuration chose them.
	// Up records them with the environment and on its resources; Up and
	// Down refuse an environment recorded with other providers. Zero:
	// nothing is recorded or checked.
	Providers store.Providers
	// LockDir holds the per-environment lock files.
	LockDir string
	Owner   string
	// TTL is how long an environment lives after its last up: each up
	// renews its expiry to now + TTL, on its record and its resources.
	TTL time.Duration
	// Reporter, if set, is told of every run (see Reporter).
	Reporter Reporter
	// Rehearsal, if set, watches each migration on the environment's
	// database (localpg and aurora) and records its report on the run.
	Rehearsal *rehearsal.Options
	Log       *slog.Logger
	Now       func() time.Time
	// OnRun, if set, is told of every run that ends, however it ended
	// (prenv serve's metrics).
	OnRun func(r store.Run, providers store.Providers)
}

// StepFunc is told of each step as it starts (took < 0) and ends.
type StepFunc func(step string, took time.Duration, err error)

func (l *Lifecycle) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Lifecycle) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.New(slog.DiscardHandler)
}

// begin records the request (up at commit, or down), takes the
// environment's lock and closes a run that a dead process left open. It
// returns the request's sequence number and the lock held.
//
// A request recorded already (seq > 0: a replica recorded it in GitHub's
// order with the delivery's observation, store.Claimer) is not recorded
// again.
func (l *Lifecycle) begin(ctx context.Context, k env.Key, commit string, down bool, seq int64) (int64, store.Lease, error) {
	if _, err := env.NewKey(k.Repo, k.PR); err != nil {
		return 0, nil, err
	}
	if seq <= 0 {
		var err error
		if seq, err = l.Store.Request(ctx, k, k.Name(), commit, down); err != nil {
			return 0, nil, err
		}
	}
	// Runs of one environment are serialized across processes; the lock of
	// a process that dies goes with it.
	held, err := l.locks().Lock(ctx, lockOf(k.Name()))
	if err != nil {
		return 0, nil, err
	}
	l.markInterrupted(ctx, k)
	return seq, held, nil
}

// run records one execution and its steps.
type run struct {
	l       *Lifecycle
	rec     store.Run
	onStep  StepFunc
	k       env.Key
	checkFn func(ctx context.Context) error
}

// step runs fn as a named, timed step, after checking that the run is still
// the newest.
func (r *run) step(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	if r.checkFn != nil {
		if err := r.checkFn(ctx); err != nil {
			return err
		}
	}
	if r.onStep != nil {
		r.onStep(name, -1, nil)
	}
	t0 := time.Now()
	err := fn(ctx)
	took := time.Since(t0)
	r.rec.Steps = append(r.rec.Steps, store.Step{Name: name, Seconds: round(took.Seconds())})
	if r.onStep != nil {
		r.onStep(name, took, err)
	}
	r.l.log().Debug("step", "env", r.k.Name(), "step", name, "took", took, "err", err)
	r.l.saveRun(ctx, &r.rec)
	return err
}

func round(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }

// finish closes the run record.
func (r *run) finish(ctx context.Context, err error) {
	r.rec.FinishedAt = r.l.now()
	switch {
	case err == nil:
		r.rec.State = store.RunSucceeded
	case errors.Is(err, ErrSuperseded):
		r.rec.State = store.RunSuperseded
		r.rec.Error = err.Error()
	case errors.Is(err, ErrLockLost):
		r.rec.State = store.RunCancelled
		r.rec.Error = err.Error()
	case errors.Is(err, context.Canceled):
		r.rec.State = store.RunCancelled
		r.rec.Error = "cancelled: what was made is adopted by the next run"
	default:
		r.rec.State = store.RunFailed
		r.rec.Error = err.Error()
		var se *runtime.StepError
		if errors.As(err, &se) {
			r.rec.Output = se.Output
		}
	}
	r.l.saveRun(ctx, &r.rec)
	if r.l.OnRun != nil {
		r.l.OnRun(r.rec, r.l.Providers)
	}
}

// lost closes the run's record again, as stopped by its lost lock, when
// the store refused the write that would have recorded its outcome (err,
// store.ErrFenced): finish recorded what the run did, not that it did not
// count.
func (r *run) lost(ctx context.Context, err error) {
	r.rec.State, r.rec.Error = store.RunCancelled, lockLost(ctx, err).Error()
	r.l.saveRun(ctx, &r.rec)
}

// saveRun records r; a run's record is history, so a failure to write it
// does not stop the run, but it is never dropped silently.
func (l *Lifecycle) saveRun(ctx context.Context, r *store.Run) {
	if err := l.Store.SaveRun(context.WithoutCancel(ctx), r); err != nil {
		l.log().Warn("cannot record the run", "env", r.Key.Name(), "kind", r.Kind, "state", r.State, "err", err)
	}
}

// markInterrupted closes a previous run left "running" by a process that
// died (we hold the lock, so nobody else is running).
func (l *Lifecycle) markInterrupted(ctx context.Context, k env.Key) {
	last, err := l.Store.LastRun(ctx, k)
	if err == nil && last.State == store.RunRunning {
		last.State = store.RunInterrupted
		last.Error = "the process running it stopped before it finished"
		last.FinishedAt = l.now()
		l.saveRun(ctx, &last)
	}
}

func toStoreDB(db dbclone.Database) store.Database {
	return store.Database{Provider: db.Provider, URL: db.URL, Host: db.Host, Port: db.Port, Name: db.DBName, User: db.User, Generation: db.Generation, SecretRef: db.SecretRef, Ready: db.Ready, Pool: db.FromPool}
}

// Supersede records a newer request for k (up at commit, or down) so that
// a run in progress stops at its next step boundary, before the newer
// request's own Up or Down waits for the environment's lock.
func (l *Lifecycle) Supersede(ctx context.Context, k env.Key, commit string, down bool) error {
	if _, err := env.NewKey(k.Repo, k.PR); err != nil {
		return err
	}
	if _, err := l.Store.Request(ctx, k, k.Name(), commit, down); err != nil {
		return fmt.Errorf("record a newer request for %s: %w", k.Name(), err)
	}
	return nil
}

// Extend moves k's expiry to now + ttl, on its record and on its
// resources, under its lock (an up in progress renews it at its start and
// would write over it). It returns the environment as recorded.
func (l *Lifecycle) Extend(ctx context.Context, k env.Key, ttl time.Duration) (store.Env, error) {
	if ttl <= 0 {
		return store.Env{}, fmt.Errorf("--ttl %s: want a positive duration, for example 72h", ttl)
	}
	if err := l.adopt(ctx, k); err != nil {
		return store.Env{}, err
	}
	e, err := l.Store.Get(ctx, k)
	if err != nil {
		return e, err
	}
	if e.Closed || e.State == env.StateDeleted {
		return e, fmt.Errorf("%s is not open (it is %s): there is nothing to extend; 'prenv up' brings it back", k.Name(), e.State)
	}
	held, err := l.locks().Lock(ctx, lockOf(k.Name()))
	if err != nil {
		return e, err
	}
	defer held.Release()
	ctx = store.WithLease(ctx, held)
	if e, err = l.Store.Get(ctx, k); err != nil {
		return e, err
	}
	e.ExpiresAt = l.now().Add(ttl).UTC().Truncate(time.Second)
	if err := l.Store.Save(ctx, e); err != nil {
		return e, fmt.Errorf("record the new expiry of %s: %w", k.Name(), err)
	}
	var errs []error
	for _, p := range []any{l.Cloner, l.Runtime} {
		if r, ok := p.(env.Renewer); ok {
			if err := r.Renew(ctx, k, e.ExpiresAt); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return e, fmt.Errorf("the record of %s expires at %s, but its resources could not all be told (a sweep from another machine reads them): %w", k.Name(), e.ExpiresAt.Format(time.RFC3339), err)
	}
	return e, nil
}
