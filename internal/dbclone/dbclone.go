package dbclone

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prenv/prenv/internal/env"
)

var (
	// ErrNotFound is returned by Get when the environment has no database.
	ErrNotFound = errors.New("database not found")
	// ErrNotOurs is returned when something with the environment's name
	// exists but does not carry prenv's owner id: it is never touched.
	ErrNotOurs = errors.New("not owned by prenv")
	// ErrNoSource is returned when there is no golden source to clone.
	ErrNoSource = errors.New("golden source not built: run 'prenv golden build --from-sql FILE' (or --from-dump, --from-url) first")
	// ErrCapacity is returned when the provider has no room for another
	// clone (a port pool, a quota).
	ErrCapacity = errors.New("no capacity for another clone")
)

// Request asks for the database of one environment.
type Request struct {
	Key       env.Key
	Name      string            // resource name, a DNS label
	Labels    map[string]string // env.Labels, carried from creation
	ExpiresAt time.Time
}

// Database is an environment's database as its users see it.
type Database struct {
	Key      env.Key
	Name     string
	Provider string
	URL      string // postgres://user:password@host:port/db
	Host     string
	Port     int
	DBName   string
	User     string
	Password string
	// SecretRef names where the provider keeps the password when prenv
	// does not hold it (an AWS Secrets Manager ARN); Password is then empty.
	SecretRef  string
	Generation int // golden generation it was cloned from
	// FromPool is the warm pool member the environment claimed (its
	// cluster), empty for a clone made for it.
	FromPool  string
	Labels    map[string]string
	CreatedAt time.Time
	// Ready says how readiness was checked ("select 1 as app over tcp").
	Ready string
	// Created says this call of Clone made the database (false: it
	// adopted one an earlier call made): it holds the golden generation's
	// schema and data as they are, nothing has migrated it yet.
	Created bool
}

// Cloner makes databases for environments.
type Cloner interface {
	// Clone returns the environment's database, cloning the golden source if
	// it does not exist yet and adopting it (starting it again if needed) if
	// it does. It returns an error wrapping ErrNoSource without a golden
	// source and ErrNotOurs if something not ours is in the way. A failed
	// clone leaves nothing behind.
	Clone(ctx context.Context, req Request) (Database, error)
	// Get returns the environment's database, or ErrNotFound.
	Get(ctx context.Context, k env.Key) (Database, error)
	// Delete removes the environment's database; nil if already gone,
	// ErrNotOurs if what is there is not ours.
	Delete(ctx context.Context, k env.Key) error
	// List returns the databases carrying prenv's owner id.
	List(ctx context.Context) ([]Database, error)
}

// URL builds a postgres URL.
func URL(user, password, host string, port int, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", user, password, host, port, db)
}

// Checker is a Cloner that can tell, before anything is recorded or
// created, whether the database of k can be made or adopted: binaries
// present, golden source built, room for one more, nothing foreign in the
// way. It returns the error Clone would.
type Checker interface {
	Check(ctx context.Context, k env.Key) error
}

// PasswordKeeper is where an environment's database password is kept
// besides the cloner, on resources other machines read (the Kubernetes
// runtime's database Secret): a cloner on a runner that does not keep the
// password reads it back instead of setting a new one, which would break
// the app still using the old one.
type PasswordKeeper interface {
	// Password is k's database password as kept, "" when none is.
	Password(ctx context.Context, k env.Key) (string, error)
}
