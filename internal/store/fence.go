package store

import (
	"context"
	"errors"
)

// ErrFenced is what a store answers to a write it refuses because the run
// making it no longer holds its environment's lock: the lock's session
// ended (its replica was cut off from the database, or the server closed
// it) and another process may hold the lock now.
var ErrFenced = errors.New("refused by the store: this run's lock on the environment is no longer its own")

type leaseKey struct{}

// WithLease is ctx carrying held, the lock a run holds on its
// environment. A store whose Locker gave held refuses the run's writes to
// the environment's record (Save, SaveBaseline) and new run records with
// ErrFenced once held's session no longer holds the lock, checked by the
// statement that writes (with the record's row already held): a run cut
// off from the database cannot overwrite what the lock's next holder
// writes, however late it notices its loss.
// Other stores ignore it (their locks end only with their process).
func WithLease(ctx context.Context, held Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, held)
}

// LeaseOf is the lock ctx carries (WithLease), or nil.
func LeaseOf(ctx context.Context) Lease {
	l, _ := ctx.Value(leaseKey{}).(Lease)
	return l
}
