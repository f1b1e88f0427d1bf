package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/store"
)

// LocksOf is what serializes the runs of one environment: the store, when
// processes on several machines share it (store.Locker), else the lock
// files in dir, which the kernel drops when their process dies.
func LocksOf(s store.Store, dir string) store.Locker {
	if lk, ok := s.(store.Locker); ok {
		return lk
	}
	return fileLocks{dir}
}

func (l *Lifecycle) locks() store.Locker { return LocksOf(l.Store, l.LockDir) }

// ErrLockLost stops a run whose environment's lock may be another
// process's now.
var ErrLockLost = errors.New("the environment's lock was lost (its store stopped answering for it): this run stops, and whoever holds the lock now carries on")

// fenced is ctx, cancelled with ErrLockLost as its cause when held is
// lost: the run stops at its next safe point. It carries held, so that a
// shared store refuses the run's writes to the record once the lock is no
// longer its own (store.ErrFenced), even before the run notices.
func fenced(ctx context.Context, held store.Lease) (context.Context, func()) {
	ctx = store.WithLease(ctx, held)
	lost := held.Lost()
	if lost == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-lost:
			cancel(ErrLockLost)
		case <-stop:
		}
	}()
	return ctx, func() { close(stop); cancel(nil) }
}

// lockLost is err, said to be ErrLockLost when it came of ctx (fenced)
// ending because the lock was lost, or of the store refusing a write for
// it: a step stopped that way fails with the context's "context
// canceled", which alone would read as a failure of the run's own.
func lockLost(ctx context.Context, err error) error {
	if err != nil && !errors.Is(err, ErrLockLost) && (errors.Is(context.Cause(ctx), ErrLockLost) || errors.Is(err, store.ErrFenced)) {
		return fmt.Errorf("%w (%v)", ErrLockLost, err)
	}
	return err
}

// lockOf is the lock name of an environment.
func lockOf(name string) string { return name + ".lock" }

type fileLocks struct{ dir string }

func (f fileLocks) Lock(ctx context.Context, name string) (store.Lease, error) {
	unlock, err := lock.File(ctx, filepath.Join(f.dir, name))
	if err != nil {
		return nil, err
	}
	return fileLease(unlock), nil
}

func (f fileLocks) Held(_ context.Context, name string) (bool, error) {
	return lock.Held(filepath.Join(f.dir, name)), nil
}

// fileLease is never lost: the kernel holds it for as long as the process
// lives.
type fileLease func()

func (fileLease) Lost() <-chan struct{} { return nil }
func (f fileLease) Release()            { f() }
