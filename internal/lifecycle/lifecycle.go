package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
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
	TTL     time.Duration
	Log     *slog.Logger
	Now     func() time.Time
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
// returns the request's sequence number and the unlock function.
func (l *Lifecycle) begin(ctx context.Context, k env.Key, commit string, down bool) (int64, func(), error) {
	if _, err := env.NewKey(k.Repo, k.PR); err != nil {
		return 0, nil, err
	}
	seq, err := l.Store.Request(ctx, k, k.Name(), commit, down)
	if err != nil {
		return 0, nil, err
	}
	// Runs of one environment are serialized across processes; the kernel
	// drops the lock of a process that dies.
	unlock, err := lock.File(ctx, filepath.Join(l.LockDir, k.Name()+".lock"))
	if err != nil {
		return 0, nil, err
	}
	l.markInterrupted(ctx, k)
	return seq, unlock, nil
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
	_ = r.l.Store.SaveRun(context.WithoutCancel(ctx), &r.rec)
	return err
}

func round(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }

// finish closes the run record.
func (r *run) finish(ctx context.Context, err error) {
	r.rec.FinishedAt = r.l.now()
	switch {
	case err == nil:
		r.rec.State = "succeeded"
	case errors.Is(err, ErrSuperseded):
		r.rec.State = "superseded"
		r.rec.Error = err.Error()
	case errors.Is(err, context.Canceled):
		r.rec.State = "cancelled"
		r.rec.Error = "cancelled: what was made is adopted by the next run"
	default:
		r.rec.State = "failed"
		r.rec.Error = err.Error()
		var se *runtime.StepError
		if errors.As(err, &se) {
			r.rec.Output = se.Output
		}
	}
	_ = r.l.Store.SaveRun(context.WithoutCancel(ctx), &r.rec)
}

// markInterrupted closes a previous run left "running" by a process that
// died (we hold the lock, so nobody else is running).
func (l *Lifecycle) markInterrupted(ctx context.Context, k env.Key) {
	last, err := l.Store.LastRun(ctx, k)
	if err == nil && last.State == "running" {
		last.State = "interrupted"
		last.Error = "the process running it stopped before it finished"
		last.FinishedAt = l.now()
		_ = l.Store.SaveRun(ctx, &last)
	}
}

func toStoreDB(db dbclone.Database) store.Database {
	return store.Database{Provider: db.Provider, URL: db.URL, Host: db.Host, Port: db.Port, Name: db.DBName, User: db.User, Generation: db.Generation, SecretRef: db.SecretRef, Ready: db.Ready}
}
