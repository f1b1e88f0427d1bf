package lifecycle

import (
	"context"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// Observed returns e as it is now. A state that says a run is at work
// (cloning, migrating, ...) while no process holds the environment's lock
// was left by a run that was killed before it could say otherwise: it is
// shown as interrupted, with what to do, and the next run records it so.
func Observed(locks store.Locker, e store.Env) store.Env {
	if e.State.Working() && !held(locks, e.Key) {
		e.State = env.StateInterrupted
		e.Error = "its last run stopped before it finished (the process running it was killed): run 'prenv up' again, or 'prenv down'"
	}
	return e
}

// ObservedRun is Observed for a run record left running.
func ObservedRun(locks store.Locker, k env.Key, r store.Run) store.Run {
	if r.State == store.RunRunning && !held(locks, k) {
		r.State = store.RunInterrupted
		r.Error = "the process running it stopped before it finished"
	}
	return r
}

// held says whether k's lock is held; a lock that cannot be read may be.
func held(locks store.Locker, k env.Key) bool {
	h, err := locks.Held(context.Background(), lockOf(k.Name()))
	return h || err != nil
}
