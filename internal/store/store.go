package store

import (
	"context"
	"errors"
	"time"

	"github.com/prenv/prenv/internal/env"
)

// ErrNotFound is returned when an environment or run does not exist.
var ErrNotFound = errors.New("not found")

// Database is what an environment's database looks like to its users.
type Database struct {
	Provider   string `json:"provider"`
	URL        string `json:"url"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	Name       string `json:"name"`
	User       string `json:"user"`
	Generation int    `json:"generation"`
	// SecretRef is where the provider keeps the password, when prenv does
	// not hold it (Aurora's RDS-managed master password).
	SecretRef string `json:"secret_ref,omitempty"`
	// Ready says how the database was found ready.
	Ready string `json:"ready,omitempty"`
}

// Env is the record of one environment.
type Env struct {
	Key           env.Key
	Name          string
	State         env.State
	DesiredCommit string // what the newest request asked for
	DesiredSeq    int64  // increases with every request; a run whose seq is older is superseded
	Closed        bool   // the newest request was a down
	Commit        string // the commit being served
	URL           string
	Database      Database
	Error         string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Step is one timed step of a run.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Run is one execution of a lifecycle use case for an environment.
type Run struct {
	ID         int64
	Key        env.Key
	Seq        int64
	Kind       string // up, down
	Commit     string
	State      string // running, succeeded, failed, superseded
	Error      string
	Output     string // migration or health output of a failed run
	Steps      []Step
	StartedAt  time.Time
	FinishedAt time.Time
}

// Store is the persistence prenv needs. It is safe for concurrent use by
// several processes sharing one PRENV_HOME.
type Store interface {
	// Request records that k should be up at commit (or down when down is
	// true) and returns the request's sequence number, which is larger than
	// every earlier one for k. It creates the record if missing; a request
	// for a closed environment reopens it only when reopen is true.
	Request(ctx context.Context, k env.Key, name, commit string, down bool) (int64, error)
	// Get returns ErrNotFound if k has no record.
	Get(ctx context.Context, k env.Key) (Env, error)
	List(ctx context.Context) ([]Env, error)
	// Save writes the state fields of e (state, commit, URL, database,
	// error), never the desired ones, which only Request writes.
	Save(ctx context.Context, e Env) error
	// SaveRun inserts r when r.ID is 0, else updates it; it sets r.ID.
	SaveRun(ctx context.Context, r *Run) error
	// LastRun returns the newest run of k, ErrNotFound if none.
	LastRun(ctx context.Context, k env.Key) (Run, error)
	Close() error
}
