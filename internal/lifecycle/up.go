package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
)

// UpOptions says which environment to bring to which commit.
type UpOptions struct {
	Key    env.Key
	Commit string
	OnStep StepFunc
	// Seq, when set, is the request's number as recorded already
	// (store.Claimer.ObserveAndRequest); zero: Up records the request.
	Seq int64
}

// Up brings the environment of opts.Key to opts.Commit: clone its database
// (or adopt it), prepare its home, build, migrate and deploy the commit.
// Up with the commit already served changes nothing; a new commit migrates
// and rolls out on the same database. If the migration fails, the previous
// release keeps serving and the environment is marked failed with the
// migration's output. It returns ErrSuperseded if a newer request arrived.
func (l *Lifecycle) Up(ctx context.Context, opts UpOptions) (_ store.Env, err error) {
	k := opts.Key
	if _, err := env.NewKey(k.Repo, k.PR); err != nil {
		return store.Env{}, err
	}
	if opts.Commit == "" {
		return store.Env{}, errors.New("no commit to deploy: give --sha")
	}
	// Refuse before anything is recorded or created.
	if err := l.checkProviders(ctx, k); err != nil {
		return store.Env{}, err
	}
	if c, ok := l.Cloner.(dbclone.Checker); ok {
		if err := c.Check(ctx, k); err != nil {
			return store.Env{}, err
		}
	}
	if c, ok := l.Runtime.(runtime.Checker); ok {
		if err := c.Check(ctx, k); err != nil {
			return store.Env{}, err
		}
	}
	if err := l.adopt(ctx, k); err != nil {
		return store.Env{}, err
	}
	seq, held, err := l.begin(ctx, k, opts.Commit, false, opts.Seq)
	if err != nil {
		return store.Env{}, err
	}
	defer held.Release()
	ctx, unfence := fenced(ctx, held)
	defer unfence()
	// Whatever step the lost lock cut short says so.
	defer func() { err = lockLost(ctx, err) }()
	newest := func(ctx context.Context) error {
		e, err := l.Store.Get(context.WithoutCancel(ctx), k)
		if err != nil {
			return err
		}
		if e.DesiredSeq != seq {
			if e.Closed {
				return fmt.Errorf("%w (down)", ErrSuperseded)
			}
			return fmt.Errorf("%w (commit %s)", ErrSuperseded, e.DesiredCommit)
		}
		return nil
	}
	if err := newest(ctx); err != nil {
		return store.Env{}, err
	}
	e, err := l.Store.Get(ctx, k)
	if err != nil {
		return e, err
	}
	started := false
	onStep := func(step string, took time.Duration, err error) {
		// The deployment starts with the first step, once the input has
		// passed the checks: a refused up leaves nothing behind in GitHub.
		if !started {
			started = true
			l.reportStarted(ctx, e, opts.Commit)
		}
		if opts.OnStep != nil {
			opts.OnStep(step, took, err)
		}
	}
	r := &run{l: l, k: k, onStep: onStep, checkFn: newest,
		rec: store.Run{Key: k, Seq: seq, Kind: "up", Commit: opts.Commit, State: store.RunRunning, StartedAt: l.now()}}
	if err := l.Store.SaveRun(ctx, &r.rec); err != nil {
		return e, err
	}
	err = lockLost(ctx, l.up(ctx, r, &e, opts.Commit))
	r.finish(ctx, err)
	if errors.Is(err, ErrLockLost) {
		// The lock may be another's now: whoever holds it writes the
		// environment's record and status; this run writes nothing more.
		return e, err
	}
	save := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		e.State, e.Error = env.StateReady, ""
	case errors.Is(err, ErrSuperseded):
		// The newer run carries on from here.
		if e.Commit != "" {
			e.State = env.StateReady
		}
	case errors.Is(err, context.Canceled):
		// The state says what is true now: the previous release still
		// serves, or nothing does; the next run carries on either way.
		if e.Commit != "" {
			e.State = env.StateReady
		} else {
			e.State, e.Error = env.StateInterrupted, "interrupted before its first deploy: run 'prenv up' again"
		}
	default:
		e.State, e.Error = env.StateFailed, err.Error()
	}
	if serr := l.Store.Save(save, e); serr != nil {
		if errors.Is(serr, store.ErrFenced) {
			// The lock is another's now (the deferred lockLost says so):
			// its holder writes the record and the status. The run's own
			// record says how it ended.
			r.lost(ctx, serr)
			return e, serr
		}
		if err == nil {
			err = serr
		} else {
			l.log().Warn("cannot record the failed up", "env", k.Name(), "err", serr)
		}
	}
	if !errors.Is(err, ErrSuperseded) {
		l.recordStatus(ctx, e)
	}
	if started && !errors.Is(err, ErrSuperseded) && ctx.Err() == nil {
		l.reportFinished(ctx, e, r.rec)
	}
	return e, err
}

func (l *Lifecycle) up(ctx context.Context, r *run, e *store.Env, commit string) error {
	k := e.Key
	// save records the state a step starts in; only a store that refuses
	// it because the lock is no longer this run's (store.ErrFenced) stops
	// the run.
	save := func(state env.State) error {
		e.State = state
		if err := l.Store.Save(context.WithoutCancel(ctx), *e); errors.Is(err, store.ErrFenced) {
			return err
		} else if err != nil {
			l.log().Warn("cannot record the state", "env", k.Name(), "state", state, "err", err)
		}
		return nil
	}
	// Activity renews the expiry: each up moves it to now + ttl, on the
	// record first and then on the resources (the sweeper trusts the later
	// of the two).
	e.ExpiresAt = l.now().Add(l.TTL).UTC().Truncate(time.Second)
	labels := l.labels(*e)
	// The providers are recorded before anything is made with them: a
	// down that cannot know them would leave part of the environment.
	if l.Providers.Known() {
		e.Providers = l.Providers
	}
	e.State = env.StateCloning
	if err := l.Store.Save(context.WithoutCancel(ctx), *e); err != nil {
		return fmt.Errorf("record %s's providers before cloning: %w", k.Name(), err)
	}
	var db dbclone.Database
	// A clone that has started is allowed to finish: the step is not
	// interrupted by a newer request, only by cancellation.
	if err := r.step(ctx, "clone", func(ctx context.Context) error {
		var err error
		db, err = l.Cloner.Clone(ctx, dbclone.Request{Key: k, Name: k.Name(), Labels: labels, ExpiresAt: e.ExpiresAt})
		return err
	}); err != nil {
		return err
	}
	l.renew(ctx, l.Cloner, k, e.ExpiresAt)
	e.Database = toStoreDB(db)
	if l.Runtime == nil {
		e.Commit = commit // a database-only environment is at the requested commit
		return nil
	}
	spec := runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Database: db, Labels: labels}
	if err := r.step(ctx, "prepare", func(ctx context.Context) error { return l.Runtime.Prepare(ctx, spec) }); err != nil {
		return err
	}
	l.renew(ctx, l.Runtime, k, e.ExpiresAt)
	cur, curErr := l.Runtime.Current(ctx, k)
	// A database made by this run (a first up, or one re-cloned after its
	// cluster went) is migrated whatever was served before.
	sameCommit := curErr == nil && cur.Commit == commit && e.Commit == commit && !db.Created
	if b, ok := l.Runtime.(runtime.Builder); ok {
		if err := r.step(ctx, "build", func(ctx context.Context) error { return b.Build(ctx, spec) }); err != nil {
			return err
		}
	}
	// A chart's hooks migrate inside the deploy: the rehearsal watches the
	// deploy then, and the migrate step does nothing.
	dm, ok := l.Runtime.(runtime.DeployMigrator)
	inDeploy := ok && dm.MigratesInDeploy(spec)
	if !sameCommit {
		if err := save(env.StateMigrating); err != nil {
			return err
		}
		var watch *watching
		if !inDeploy {
			watch = l.watchMigration(ctx, k, db, commit)
		}
		ran := false
		err := r.step(ctx, "migrate", func(ctx context.Context) error { ran = true; return l.Runtime.Migrate(ctx, spec) })
		switch {
		case watch == nil:
		case ran:
			r.rec.Migration = watch.finish(ctx, err, nil)
		default:
			watch.close() // superseded or cancelled before the migration started
		}
		if err != nil {
			return err
		}
	}
	if err := save(env.StateDeploying); err != nil {
		return err
	}
	var watch *watching
	if inDeploy && !sameCommit {
		watch = l.watchMigration(ctx, k, db, commit)
	}
	var rel runtime.Release
	ran := false
	err := r.step(ctx, "deploy", func(ctx context.Context) error {
		var err error
		ran = true
		rel, err = l.Runtime.Deploy(ctx, spec)
		return err
	})
	if watch != nil {
		var se *runtime.StepError
		switch {
		case !ran:
			watch.close() // superseded or cancelled before the deploy started
		case errors.As(err, &se) && se.Step == "migrate":
			r.rec.Migration = watch.finish(ctx, err, nil)
		case err == nil && rel.Migrated != nil:
			r.rec.Migration = watch.finish(ctx, nil, rel.Migrated)
		case errors.As(err, &se) && se.Migrated != nil:
			// The hooks migrated; the rollout after them failed.
			r.rec.Migration = watch.finish(ctx, nil, se.Migrated)
		default:
			watch.close() // no hook migrated (none, or the deploy failed before them)
		}
	}
	if err != nil {
		return err
	}
	e.Commit, e.URL = rel.Commit, rel.URL
	return nil
}

// renew moves the expiry written on p's resources of k (an adopted
// resource still carries the one of its last up). A failure is logged, not
// fatal: the record carries the new expiry, and the sweeper trusts the
// later of the record's and the labels'.
func (l *Lifecycle) renew(ctx context.Context, p any, k env.Key, at time.Time) {
	r, ok := p.(env.Renewer)
	if !ok {
		return
	}
	if err := r.Renew(ctx, k, at); err != nil {
		l.log().Warn("cannot renew the expiry on the resources", "env", k.Name(), "expires", at, "err", err)
	}
}

// labels are the labels of e's resources: owner, key, created-at, its
// expiry and the providers it is made with.
func (l *Lifecycle) labels(e store.Env) map[string]string {
	labels := env.Labels(l.Owner, e.Key, e.CreatedAt, l.TTL)
	if !e.ExpiresAt.IsZero() {
		labels[env.LabelExpiresAt] = e.ExpiresAt.UTC().Format(time.RFC3339)
	}
	for name, v := range providerLabels(l.Providers) {
		labels[name] = v
	}
	return labels
}
