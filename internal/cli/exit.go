package cli

import (
	"context"
	"errors"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
)

// Exit codes, documented in prenv --help and the README.
const (
	ExitOK          = 0   // success
	ExitFailed      = 1   // a step failed (the message and 'prenv status' say which and why)
	ExitUsage       = 2   // bad input: flags, arguments, prenv.yaml; nothing was changed
	ExitPrereq      = 3   // a prerequisite is missing: golden source, PostgreSQL binaries, a free port; nothing was changed
	ExitSuperseded  = 4   // a newer request for the same environment took over this run
	ExitNotFound    = 5   // no such environment
	ExitNotOurs     = 6   // something in the way does not carry prenv's owner id; it was left untouched
	ExitInterrupted = 130 // interrupted by SIGINT or SIGTERM; the next run adopts what was made
)

const exitCodesHelp = `Exit codes:
  0    success
  1    a step failed (the message and 'prenv status' say which and why)
  2    bad input: flags, arguments, prenv.yaml; nothing was changed
  3    a prerequisite is missing (golden source, PostgreSQL binaries, a free port); nothing was changed
  4    superseded: a newer request for the same environment took over
  5    no such environment
  6    refused: something in the way does not carry prenv's owner id; it was left untouched
  130  interrupted (SIGINT/SIGTERM); the next run adopts what was made`

// usageError marks an error as bad input.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// ExitCode maps an error to the process's exit code.
func ExitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ue), errors.Is(err, env.ErrBadPR), errors.Is(err, config.ErrInvalid), errors.Is(err, golden.ErrSource), errors.Is(err, runtime.ErrInvalid), errors.Is(err, aurora.ErrInvalid),
		errors.Is(err, lifecycle.ErrOtherProviders):
		return ExitUsage
	case errors.Is(err, dbclone.ErrNoSource), errors.Is(err, golden.ErrNone), errors.Is(err, pgserver.ErrBinaries), errors.Is(err, dbclone.ErrCapacity), errors.Is(err, errNoReport):
		return ExitPrereq
	case errors.Is(err, lifecycle.ErrSuperseded):
		return ExitSuperseded
	case errors.Is(err, store.ErrNotFound), errors.Is(err, runtime.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, dbclone.ErrNotOurs), errors.Is(err, runtime.ErrNotOurs):
		return ExitNotOurs
	}
	return ExitFailed
}
