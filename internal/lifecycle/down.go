package lifecycle

import (
	"context"
	"errors"
	"fmt"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// DownOptions says which environment to destroy.
type DownOptions struct {
	Key    env.Key
	OnStep StepFunc
	// Why is told to the Reporter; zero: closed.
	Why Why
	// Seq, when set, is the request's number as recorded already; zero:
	// Down records the request.
	Seq int64
}

// Down destroys the environment: its app, its home and its database. What is
// already gone is success ("like rm -f"); what does not carry prenv's owner
// id is never deleted and is reported. A run in progress for the
// environment stops at its next step boundary.
func (l *Lifecycle) Down(ctx context.Context, opts DownOptions) (store.Env, error) {
	k := opts.Key
	// Refuse before the request is recorded: a teardown with other
	// providers than the environment's would delete only part of it.
	if err := l.checkProviders(ctx, k); err != nil {
		return store.Env{}, err
	}
	if err := l.adopt(ctx, k); err != nil {
		// A teardown needs no record: what cannot be read is removed all
		// the same.
		l.log().Warn("cannot adopt the environment from its resources; tearing it down without", "env", k.Name(), "err", err)
	}
	head := l.head(ctx, k)
	seq, held, err := l.begin(ctx, k, "", true, opts.Seq)
	if err != nil {
		return store.Env{}, err
	}
	defer held.Release()
	if opts.Seq > 0 {
		// Recorded when a replica took its delivery: another replica may
		// have recorded a newer request (a reopen) and run it first.
		if e, err := l.Store.Get(ctx, k); err == nil && e.DesiredSeq != seq {
			return e, fmt.Errorf("%w (commit %s)", ErrSuperseded, e.DesiredCommit)
		}
	}
	ctx, unfence := fenced(ctx, held)
	defer unfence()
	e, err := l.down(ctx, opts, seq, head)
	return e, lockLost(ctx, err)
}

// head is the commit the newest request for k asked for, before a down
// replaces it: what an expired environment was at.
func (l *Lifecycle) head(ctx context.Context, k env.Key) string {
	e, err := l.Store.Get(ctx, k)
	if err != nil {
		return ""
	}
	if e.DesiredCommit != "" && !e.Closed {
		return e.DesiredCommit
	}
	if e.Closed {
		return e.DownCommit
	}
	return e.Commit
}

// down is Down's work, the request recorded as seq and k's lock held.
func (l *Lifecycle) down(ctx context.Context, opts DownOptions, seq int64, head string) (store.Env, error) {
	k := opts.Key
	why := opts.Why
	if why.Reason == "" {
		why.Reason = ReasonClosed
	}
	e, getErr := l.Store.Get(ctx, k)
	recorded := getErr == nil
	if getErr != nil && !errors.Is(getErr, store.ErrNotFound) {
		return e, getErr
	}
	r := &run{l: l, k: k, onStep: opts.OnStep,
		rec: store.Run{Key: k, Seq: seq, Kind: "down", State: store.RunRunning, StartedAt: l.now()}}
	if recorded {
		// Nothing is deleted unless the store knows it is being deleted,
		// and why: a down killed halfway is still known as, say, expired.
		e.State = env.StateDeleting
		e.DownReason, e.DownCommit = why.Reason, head
		if err := l.Store.Save(ctx, e); err != nil {
			return e, fmt.Errorf("record %s as deleting: %w", k.Name(), err)
		}
		if err := l.Store.SaveRun(ctx, &r.rec); err != nil {
			return e, fmt.Errorf("record the down of %s: %w", k.Name(), err)
		}
		// Other machines see it going, not ready.
		l.recordStatus(ctx, e)
	}
	err := func() error {
		if l.Runtime != nil {
			if err := r.step(ctx, "teardown", func(ctx context.Context) error { return l.Runtime.Teardown(ctx, k) }); err != nil {
				return err
			}
		}
		return r.step(ctx, "delete-database", func(ctx context.Context) error { return l.Cloner.Delete(ctx, k) })
	}()
	err = lockLost(ctx, err)
	if !recorded {
		// A CI runner's store starts empty: the teardown is reported all
		// the same.
		gone := store.Env{Key: k, Name: k.Name(), State: env.StateDeleted}
		if err == nil {
			l.reportTornDown(ctx, gone, why)
		}
		return gone, err
	}
	r.finish(ctx, err)
	if errors.Is(err, ErrLockLost) {
		return e, err // the lock's new holder writes the record
	}
	if err != nil {
		e.State, e.Error = env.StateFailed, err.Error()
	} else {
		e.State, e.Error, e.URL, e.Commit, e.Database = env.StateDeleted, "", "", "", store.Database{}
	}
	serr := l.Store.Save(context.WithoutCancel(ctx), e)
	if errors.Is(serr, store.ErrFenced) {
		// The lock is another's now: its holder writes the record and
		// what the resources say.
		r.lost(ctx, serr)
		return e, serr
	}
	if err != nil {
		l.recordStatus(ctx, e) // failed: what is left says so
	}
	if serr != nil {
		if err == nil {
			err = fmt.Errorf("record %s as %s: %w", k.Name(), e.State, serr)
		} else {
			l.log().Warn("cannot record the failed down", "env", k.Name(), "err", serr)
		}
	}
	if err == nil {
		l.reportTornDown(ctx, e, why)
	}
	return e, err
}
