package lifecycle

import (
	"path/filepath"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/store"
)

// Observed returns e as it is now. A state that says a run is at work
// (cloning, migrating, ...) while no process holds the environment's lock
// was left by a run that was killed before it could say otherwise: it is
// shown as interrupted, with what to do, and the next run records it so.
func Observed(lockDir string, e store.Env) store.Env {
	if e.State.Working() && !lock.Held(filepath.Join(lockDir, e.Key.Name()+".lock")) {
		e.State = env.StateInterrupted
		e.Error = "its last run stopped before it finished (the process running it was killed): run 'prenv up' again, or 'prenv down'"
	}
	return e
}

// ObservedRun is Observed for a run record left running.
func ObservedRun(lockDir string, k env.Key, r store.Run) store.Run {
	if r.State == store.RunRunning && !lock.Held(filepath.Join(lockDir, k.Name()+".lock")) {
		r.State = store.RunInterrupted
		r.Error = "the process running it stopped before it finished"
	}
	return r
}
