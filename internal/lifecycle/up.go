package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
)

// UpOptions says which environment to bring to which commit.
type UpOptions struct {
	Key    env.Key
	Commit string
	OnStep StepFunc
}

// Up brings the environment of opts.Key to opts.Commit: clone its database
// (or adopt it), prepare its home, build, migrate and deploy the commit.
// Up with the commit already served changes nothing; a new commit migrates
// and rolls out on the same database. If the migration fails, the previous
// release keeps serving and the environment is marked failed with the
// migration's output. It returns ErrSuperseded if a newer request arrived.
func (l *Lifecycle) Up(ctx context.Context, opts UpOptions) (store.Env, error) {
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
	seq, unlock, err := l.begin(ctx, k, opts.Commit, false)
	if err != nil {
		return store.Env{}, err
	}
	defer unlock()
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
	err = l.up(ctx, r, &e, opts.Commit)
	r.finish(ctx, err)
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
		if err == nil {
			err = serr
		} else {
			l.log().Warn("cannot record the failed up", "env", k.Name(), "err", serr)
		}
	}
	if started && !errors.Is(err, ErrSuperseded) && ctx.Err() == nil {
		l.reportFinished(ctx, e, r.rec)
	}
	return e, err
}

func (l *Lifecycle) up(ctx context.Context, r *run, e *store.Env, commit string) error {
	k := e.Key
	save := func(state env.State) {
		e.State = state
		if err := l.Store.Save(context.WithoutCancel(ctx), *e); err != nil {
			l.log().Warn("cannot record the state", "env", k.Name(), "state", state, "err", err)
		}
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
	sameCommit := curErr == nil && cur.Commit == commit && e.Commit == commit
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
		save(env.StateMigrating)
		var watch *rehearsal.Watch
		if !inDeploy {
			watch = l.watchMigration(ctx, k, db)
		}
		ran := false
		err := r.step(ctx, "migrate", func(ctx context.Context) error { ran = true; return l.Runtime.Migrate(ctx, spec) })
		switch {
		case watch == nil:
		case ran:
			r.rec.Migration = l.finishWatch(ctx, k, watch, err, nil)
		default:
			watch.Close() // superseded or cancelled before the migration started
		}
		if err != nil {
			return err
		}
	}
	save(env.StateDeploying)
	var watch *rehearsal.Watch
	if inDeploy && !sameCommit {
		watch = l.watchMigration(ctx, k, db)
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
			watch.Close() // superseded or cancelled before the deploy started
		case errors.As(err, &se) && se.Step == "migrate":
			r.rec.Migration = l.finishWatch(ctx, k, watch, err, nil)
		case err == nil && rel.Migrated != nil:
			r.rec.Migration = l.finishWatch(ctx, k, watch, nil, rel.Migrated)
		default:
			watch.Close() // no hook migrated (none, or the deploy failed before them)
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

// watchMigration starts the rehearsal's watch of k's migration on db, or
// returns nil when rehearsals are off, the database is not one prenv can
// watch, or its endpoint does not answer from here (a warning says so: the
// migration runs unwatched).
func (l *Lifecycle) watchMigration(ctx context.Context, k env.Key, db dbclone.Database) *rehearsal.Watch {
	if l.Rehearsal == nil || db.Password == "" || (db.Provider != "localpg" && db.Provider != "aurora") {
		return nil
	}
	opts := *l.Rehearsal
	opts.ApplicationName = runtime.MigrationApplicationName
	opts.Golden = rehearsal.Golden{Generation: strconv.Itoa(db.Generation)}
	// The schema diff starts from the golden generation's schema: read
	// just before the first migration of a database this run cloned, and
	// kept with the environment for the migrations of later pushes.
	if b, err := l.Store.Baseline(ctx, k); err == nil && b.Of(db.Generation, db.CreatedAt) {
		var s rehearsal.Schema
		if err := json.Unmarshal(b.Schema, &s); err == nil {
			opts.Baseline = &s
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := rehearsal.Begin(bctx, db.URL, opts)
	if err != nil {
		l.log().Warn("the migration runs unwatched: no rehearsal report", "env", k.Name(), "err", err)
		return nil
	}
	if opts.Baseline == nil && db.Created {
		w.BeganOnGolden()
		data, err := json.Marshal(w.Schema())
		if err == nil {
			err = l.Store.SaveBaseline(context.WithoutCancel(ctx), k, store.Baseline{Generation: db.Generation, DatabaseCreated: db.CreatedAt, Schema: data})
		}
		if err != nil {
			l.log().Warn("cannot keep the golden schema: later migrations' schema diffs start from the schema before each", "env", k.Name(), "err", err)
		}
	}
	return w
}

// finishWatch ends the watch and returns its report as JSON (nil, with a
// warning, if it cannot be made). hooks, when the migration ran in the
// deploy's hooks, is when: the report's duration is theirs.
func (l *Lifecycle) finishWatch(ctx context.Context, k env.Key, w *rehearsal.Watch, migrateErr error, hooks *runtime.Span) []byte {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rep, err := w.Finish(fctx, migrateErr)
	if err != nil {
		l.log().Warn("no rehearsal report for the migration", "env", k.Name(), "err", err)
		return nil
	}
	if hooks != nil {
		rep.Seconds = hooks.End.Sub(hooks.Start).Seconds()
		rep.Notes = append(rep.Notes, "the migration ran in the chart's pre-install/pre-upgrade hooks: the watch covered the whole deploy, so rows the new release wrote as it started count too")
	}
	data, err := json.Marshal(rep)
	if err != nil {
		l.log().Warn("no rehearsal report for the migration", "env", k.Name(), "err", err)
		return nil
	}
	return data
}
