package lifecycle

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
)

// watching is the rehearsal's watch of one migration of an environment.
type watching struct {
	l      *Lifecycle
	k      env.Key
	commit string
	w      *rehearsal.Watch
	// base is the schema baseline of the database being migrated, with
	// the warnings of its earlier migrations; nil when prenv has none for
	// this database.
	base *store.Baseline
}

// watchMigration starts the rehearsal's watch of k's migration to commit
// on db, or returns nil when rehearsals are off, the database is not one
// prenv can watch, or its endpoint does not answer from here (a warning
// says so: the migration runs unwatched).
func (l *Lifecycle) watchMigration(ctx context.Context, k env.Key, db dbclone.Database, commit string) *watching {
	if l.Rehearsal == nil || db.Password == "" || (db.Provider != "localpg" && db.Provider != "aurora") {
		return nil
	}
	opts := *l.Rehearsal
	opts.ApplicationName = runtime.MigrationApplicationName
	opts.Golden = rehearsal.Golden{Generation: strconv.Itoa(db.Generation)}
	wt := &watching{l: l, k: k, commit: commit}
	// The schema diff starts from the golden generation's schema: read
	// just before the first migration of a database this run cloned, and
	// kept with the environment for the migrations of later pushes.
	if b, err := l.Store.Baseline(ctx, k); err == nil && b.Of(db.Generation, db.CreatedAt) {
		var s rehearsal.Schema
		if err := json.Unmarshal(b.Schema, &s); err == nil {
			opts.Baseline, wt.base = &s, &b
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := rehearsal.Begin(bctx, db.URL, opts)
	if err != nil {
		l.log().Warn("the migration runs unwatched: no rehearsal report", "env", k.Name(), "err", err)
		return nil
	}
	wt.w = w
	if wt.base == nil && db.Created {
		w.BeganOnGolden()
		data, err := json.Marshal(w.Schema())
		if err == nil {
			b := store.Baseline{Generation: db.Generation, DatabaseCreated: db.CreatedAt, Schema: data}
			if err = l.Store.SaveBaseline(context.WithoutCancel(ctx), k, b); err == nil {
				wt.base = &b
			}
		}
		if err != nil {
			l.log().Warn("cannot keep the golden schema: later migrations' schema diffs start from the schema before each", "env", k.Name(), "err", err)
		}
	}
	return wt
}

// close ends the watch without a report: the migration never started.
func (wt *watching) close() { _ = wt.w.Close() }

// finish ends the watch and returns its report as JSON (nil, with a
// warning, if it cannot be made). hooks, when the migration ran in the
// deploy's hooks, is when: the report's duration is theirs. The report
// carries the warnings of the database's earlier migrations, and a
// migration that succeeded adds its own to them.
func (wt *watching) finish(ctx context.Context, migrateErr error, hooks *runtime.Span) []byte {
	l, k := wt.l, wt.k
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rep, err := wt.w.Finish(fctx, migrateErr)
	if err != nil {
		l.log().Warn("no rehearsal report for the migration", "env", k.Name(), "err", err)
		return nil
	}
	if hooks != nil {
		rep.Seconds = hooks.End.Sub(hooks.Start).Seconds()
		rep.Notes = append(rep.Notes, "the migration ran in the chart's pre-install/pre-upgrade hook Jobs: the watch covered the whole deploy, so rows the new release wrote as it started count too")
	}
	if wt.base != nil {
		var earlier []rehearsal.Earlier
		_ = json.Unmarshal(wt.base.Warnings, &earlier)
		for _, e := range earlier {
			if e.Commit != wt.commit { // a retry of this commit reports its own
				rep.Earlier = append(rep.Earlier, e)
			}
		}
		if migrateErr == nil && len(rep.Warnings) > 0 {
			carried := append([]rehearsal.Earlier(nil), rep.Earlier...)
			for _, w := range rep.Warnings {
				carried = append(carried, rehearsal.Earlier{Commit: wt.commit, Warning: w})
			}
			b := *wt.base
			b.Warnings, _ = json.Marshal(carried)
			if err := l.Store.SaveBaseline(fctx, k, b); err != nil {
				l.log().Warn("cannot keep the migration's warnings for the next pushes' reports", "env", k.Name(), "err", err)
			}
		}
	}
	data, err := json.Marshal(rep)
	if err != nil {
		l.log().Warn("no rehearsal report for the migration", "env", k.Name(), "err", err)
		return nil
	}
	return data
}
