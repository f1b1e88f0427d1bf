package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

var (
	// ErrNotFound is returned by Current when nothing is deployed.
	ErrNotFound = errors.New("nothing deployed")
	// ErrNotOurs is returned when the environment's home exists without
	// prenv's owner id.
	ErrNotOurs = errors.New("not owned by prenv")
	// ErrInvalid is wrapped by errors in the runtime's configuration (a
	// chart that does not load, a template that does not render).
	ErrInvalid = errors.New("invalid runtime configuration")
)

// Spec is what a runtime needs to know of an environment and a commit.
type Spec struct {
	Key      env.Key
	Name     string // DNS label
	Commit   string
	Database dbclone.Database
	Labels   map[string]string
}

// Release is what serves an environment.
type Release struct {
	Commit string
	URL    string
	// Migrated, set by a DeployMigrator's Deploy, is when the migration
	// the deploy ran (a chart's pre-install/pre-upgrade hooks) started
	// and finished; nil when the deploy ran none.
	Migrated *Span
}

// Span is a time from Start to End.
type Span struct{ Start, End time.Time }

// DeployMigrator is a runtime whose Deploy may run the migration itself
// (a Helm chart's pre-install/pre-upgrade hook Jobs), in which case its
// Migrate does nothing: the migration rehearsal watches the deploy then. A
// migration that fails there is a *StepError of step "migrate".
type DeployMigrator interface {
	MigratesInDeploy(spec Spec) bool
}

// Instance is an environment's home as List sees it.
type Instance struct {
	Key    env.Key
	Name   string
	Labels map[string]string
}

// StepError is a failed build, migration or rollout, with the output a
// developer needs to see. The previous release keeps serving.
type StepError struct {
	Step   string // build, migrate, deploy
	Err    error
	Output string
	// Migrated, on a failed deploy of a DeployMigrator, is when the
	// migration it ran before failing ran (as Release.Migrated).
	Migrated *Span
}

func (e *StepError) Error() string { return fmt.Sprintf("%s failed: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// Runtime runs environments' applications.
type Runtime interface {
	// Prepare creates the environment's home (a directory, a namespace)
	// carrying spec.Labels, or adopts it; ErrNotOurs if something not ours
	// is in the way.
	Prepare(ctx context.Context, spec Spec) error
	// Migrate runs the migration of spec.Commit against spec.Database. A
	// failure is a *StepError with the migration's output; nothing else
	// changes.
	Migrate(ctx context.Context, spec Spec) error
	// Deploy rolls out spec.Commit, waits (bounded) until it is ready and
	// then switches traffic to it. On failure (a *StepError) the previous
	// release keeps serving.
	Deploy(ctx context.Context, spec Spec) (Release, error)
	// Current returns what serves k, or ErrNotFound.
	Current(ctx context.Context, k env.Key) (Release, error)
	// Teardown stops and removes everything of k; nil if already gone.
	Teardown(ctx context.Context, k env.Key) error
	// List returns the homes carrying prenv's owner id.
	List(ctx context.Context) ([]Instance, error)
}

// Builder is a Runtime that builds a commit before migrating it.
type Builder interface {
	Build(ctx context.Context, spec Spec) error
}

// Checker is a Runtime that can tell, before anything is recorded or
// created, whether the home of k can be made or adopted (ErrNotOurs if
// something not ours is in the way).
type Checker interface {
	Check(ctx context.Context, k env.Key) error
}

// Authenticator is a Runtime that guards each environment with a login it
// made and can tell (ErrNotFound when the environment has none).
type Authenticator interface {
	Login(ctx context.Context, k env.Key) (user, password string, err error)
}

// LogOptions say how much of a log to show.
type LogOptions struct {
	Lines  int  // from the end of each stream; 0 for all
	Follow bool // keep streaming until the context ends
}

// LogStreamer is a Runtime that can show what an environment's processes
// print.
type LogStreamer interface {
	Logs(ctx context.Context, k env.Key, w io.Writer, opts LogOptions) error
}

// MigrationApplicationName is the PGAPPNAME a runtime gives the migration's
// commands (unless the app's own environment sets one), so that the
// migration rehearsal tells the migration's sessions from the running
// app's.
const MigrationApplicationName = "prenv-migrate"

// MigrationEnv is the variable that carries MigrationApplicationName.
const MigrationEnv = "PGAPPNAME"
