package lifecycle

import (
	"context"
	"errors"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// DownOptions says which environment to destroy.
type DownOptions struct {
	Key    env.Key
	OnStep StepFunc
}

// Down destroys the environment: its app, its home and its database. What is
// already gone is success ("like rm -f"); what does not carry prenv's owner
// id is never deleted and is reported. A run in progress for the
// environment stops at its next step boundary.
func (l *Lifecycle) Down(ctx context.Context, opts DownOptions) (store.Env, error) {
	k := opts.Key
	seq, unlock, err := l.begin(ctx, k, "", true)
	if err != nil {
		return store.Env{}, err
	}
	defer unlock()
	e, getErr := l.Store.Get(ctx, k)
	recorded := getErr == nil
	if getErr != nil && !errors.Is(getErr, store.ErrNotFound) {
		return e, getErr
	}
	r := &run{l: l, k: k, onStep: opts.OnStep,
		rec: store.Run{Key: k, Seq: seq, Kind: "down", State: "running", StartedAt: l.now()}}
	if recorded {
		e.State = env.StateDeleting
		_ = l.Store.Save(ctx, e)
		_ = l.Store.SaveRun(ctx, &r.rec)
	}
	err = func() error {
		if l.Runtime != nil {
			if err := r.step(ctx, "teardown", func(ctx context.Context) error { return l.Runtime.Teardown(ctx, k) }); err != nil {
				return err
			}
		}
		return r.step(ctx, "delete-database", func(ctx context.Context) error { return l.Cloner.Delete(ctx, k) })
	}()
	if !recorded {
		return store.Env{Key: k, Name: k.Name(), State: env.StateDeleted}, err
	}
	r.finish(ctx, err)
	if err != nil {
		e.State, e.Error = env.StateFailed, err.Error()
	} else {
		e.State, e.Error, e.URL, e.Commit, e.Database = env.StateDeleted, "", "", "", store.Database{}
	}
	_ = l.Store.Save(context.WithoutCancel(ctx), e)
	return e, err
}
