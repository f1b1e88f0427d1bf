package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
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
	// Pool is the warm pool member the environment claimed, empty when
	// its database was cloned for it.
	Pool string `json:"pool,omitempty"`
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
	// Providers is how the environment was made; down, logs and status use
	// them, never whatever the current directory's prenv.yaml says.
	Providers Providers
	CreatedAt time.Time
	UpdatedAt time.Time
	// ExpiresAt is when the sweeper brings the environment down unless an
	// up (each renews it to now + ttl), 'prenv extend' or the keep label
	// moves it; zero for a record made before prenv recorded it (the
	// resources' expires-at labels say then).
	ExpiresAt time.Time
	// DownReason says why the last down happened (closed, expired,
	// orphaned) and DownCommit what was served then: an environment that
	// expired comes back with a push or the keep label, never by
	// reconciliation at the same commit.
	DownReason, DownCommit string
}

// Providers records the providers an environment was made with, the
// settings that say where their resources live, and the configuration they
// came from, so that the environment is always shown and torn down with
// them (DESIGN.md: "an environment is always torn down with the providers
// it was made with").
type Providers struct {
	// Database is database.provider: localpg, aurora or memory.
	Database string `json:"database"`
	// DatabaseSettings are the settings that locate its databases (for
	// Aurora the region, endpoint and identifier prefix).
	DatabaseSettings map[string]string `json:"database_settings,omitempty"`
	// Runtime is runtime.provider (local, kubernetes, memory), or empty for
	// a database-only environment.
	Runtime string `json:"runtime,omitempty"`
	// RuntimeSettings locate its homes (the local runtime's prenv serve,
	// a Kubernetes cluster, context and namespace).
	RuntimeSettings map[string]string `json:"runtime_settings,omitempty"`
	// Config is the absolute path of the prenv.yaml used; empty when the
	// environment was made from the defaults.
	Config string `json:"config,omitempty"`
	// Home is PRENV_HOME.
	Home string `json:"home,omitempty"`
}

// Known reports whether p was recorded (environments made before prenv
// recorded providers have none).
func (p Providers) Known() bool { return p.Database != "" }

// Same reports whether p and q are the same providers with the same
// locating settings; the config file and home may differ.
func (p Providers) Same(q Providers) bool {
	return p.Database == q.Database && p.Runtime == q.Runtime &&
		sameSettings(p.DatabaseSettings, q.DatabaseSettings) && sameSettings(p.RuntimeSettings, q.RuntimeSettings)
}

func sameSettings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// String says what p is in a message: "database localpg, runtime local"
// or "database localpg, no app (database-only)".
func (p Providers) String() string {
	if !p.Known() {
		return "unknown providers"
	}
	s := "database " + p.Database + settingsString(p.DatabaseSettings)
	if p.Runtime == "" {
		return s + ", no app (database-only)"
	}
	return s + ", runtime " + p.Runtime + settingsString(p.RuntimeSettings)
}

func settingsString(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return " (" + strings.Join(parts, " ") + ")"
}

// Step is one timed step of a run.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// RunState is where a run is.
type RunState string

// Run states.
const (
	RunRunning    RunState = "running"
	RunSucceeded  RunState = "succeeded"
	RunFailed     RunState = "failed"
	RunSuperseded RunState = "superseded" // a newer request for the environment took over
	RunCancelled  RunState = "cancelled"  // stopped by a signal; the next run adopts what it made
	// RunInterrupted: its process died (kill -9, a crash) before it could
	// say how it ended; the next run of the environment records it so.
	RunInterrupted RunState = "interrupted"
)

// Run is one execution of a lifecycle use case for an environment.
type Run struct {
	ID     int64
	Key    env.Key
	Seq    int64
	Kind   string // up, down
	Commit string
	State  RunState
	Error  string
	Output string // migration or health output of a failed run
	// Migration is the rehearsal report of the run's migration (a
	// rehearsal.Report as JSON), when it migrated and was watched.
	Migration  []byte
	Steps      []Step
	StartedAt  time.Time
	FinishedAt time.Time
}

// Ran says whether the run began step (a step that was reached is
// recorded, whatever its outcome).
func (r Run) Ran(step string) bool {
	return slices.ContainsFunc(r.Steps, func(s Step) bool { return s.Name == step })
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
	// error, providers, expiry), never the desired ones, which only Request
	// writes.
	Save(ctx context.Context, e Env) error
	// SaveRun inserts r when r.ID is 0, else updates it; it sets r.ID.
	SaveRun(ctx context.Context, r *Run) error
	// LastRun returns the newest run of k, ErrNotFound if none.
	LastRun(ctx context.Context, k env.Key) (Run, error)
	// LastMigration returns the newest run of k that recorded a migration
	// rehearsal report, ErrNotFound if none.
	LastMigration(ctx context.Context, k env.Key) (Run, error)
	// Baseline returns the schema baseline of k's database, ErrNotFound if
	// none was saved (or k has no record).
	Baseline(ctx context.Context, k env.Key) (Baseline, error)
	// SaveBaseline records b as k's; ErrNotFound if k has no record.
	SaveBaseline(ctx context.Context, k env.Key, b Baseline) error
	Close() error
}

// Baseline is the schema of the golden generation an environment's
// database was cloned from, read by the migration rehearsal just before the
// database's first migration: each later report's schema diff starts from
// it. It belongs to one database, the one created at DatabaseCreated from
// Generation; a database cloned again gets a new one.
type Baseline struct {
	Generation      int             `json:"generation"`
	DatabaseCreated time.Time       `json:"database_created"`
	Schema          json.RawMessage `json:"schema"` // a rehearsal.Schema
	// Warnings are the warnings of the migrations that succeeded on this
	// database, with their commits ([]rehearsal.Earlier): a later push's
	// report carries them.
	Warnings json.RawMessage `json:"warnings,omitempty"`
}

// Of says whether b belongs to the database created at created from
// generation.
func (b Baseline) Of(generation int, created time.Time) bool {
	return len(b.Schema) > 0 && !created.IsZero() && b.Generation == generation && b.DatabaseCreated.Equal(created)
}

// Delivery is a webhook delivery waiting to be carried out.
type Delivery struct {
	ID         string // X-GitHub-Delivery: redeliveries keep it
	Event      string // X-GitHub-Event
	Body       []byte
	ReceivedAt time.Time
	State      string // queued, done, ignored, failed
	Note       string
	Attempts   int
	// Subject is what the delivery is about, "owner/name#N" for a pull
	// request's event: a replica that claims one claims the others queued
	// for the same subject with it.
	Subject string
}

// Queue is the durable queue of webhook deliveries, and what prenv knows
// of pull requests to keep their events in order.
type Queue interface {
	// Enqueue stores d as queued; false if a delivery with its ID was
	// already received (it is not queued again).
	Enqueue(ctx context.Context, d Delivery) (bool, error)
	// Queued returns the queued deliveries, oldest first.
	Queued(ctx context.Context, limit int) ([]Delivery, error)
	// Finish records the outcome of delivery id (done, ignored, failed),
	// or, with state queued, one more attempt.
	Finish(ctx context.Context, id, state, note string) error
	// Delivery returns delivery id.
	Delivery(ctx context.Context, id string) (Delivery, error)
	// ObservePull records that pull request k was in state (open or
	// closed) at GitHub's time at, and reports whether that is news: false
	// when prenv already saw k at a later time, or closed at the same time
	// (a late delivery never undoes a close).
	ObservePull(ctx context.Context, k env.Key, state string, at time.Time) (bool, error)
}

// Claimer is a webhook queue that replicas of prenv serve share: each
// delivery is carried out by one of them, which claims it for a while and
// renews its claim while it works; a replica that dies lets its claims run
// out, and another takes them.
type Claimer interface {
	// Claim takes up to limit queued deliveries that no replica holds (or
	// whose claim ran out, or whose replica is gone), oldest first, with
	// the others queued for the same subject, for owner until ttl from now.
	Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]Delivery, error)
	// Renew extends owner's claims on ids to ttl from now, and returns the
	// ids among them that another owner claims now.
	Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) ([]string, error)
	// FinishClaimed is Finish for a delivery owner still holds; false when
	// another replica claimed it since (that replica records the outcome).
	// Each claim counts as an attempt (Delivery.Attempts).
	FinishClaimed(ctx context.Context, owner, id, state, note string) (bool, error)
	// ObserveAndRequest is ObservePull and, when the observation is news,
	// Request of k (up at commit, or down), as one: two replicas deciding
	// on two deliveries of one pull request record their requests in
	// GitHub's order. seq is 0 when nothing was recorded.
	ObserveAndRequest(ctx context.Context, k env.Key, state string, at time.Time, name, commit string, down bool) (news bool, seq int64, err error)
}

// Locker is a store that serializes the runs of one environment across
// every process that shares it (replicas of prenv serve on other
// machines): without it, the lock files under PRENV_HOME do, for the
// processes of one machine.
type Locker interface {
	// Lock takes the lock called name, waiting until ctx ends.
	Lock(ctx context.Context, name string) (Lease, error)
	// Held says whether some process holds name's lock now.
	Held(ctx context.Context, name string) (bool, error)
}

// Lease is a lock held.
type Lease interface {
	// Lost is closed when the lock may be someone else's now (the store
	// stopped answering for it): its run stops at its next step.
	Lost() <-chan struct{}
	// Release lets the lock go.
	Release()
}

// QueueStats is a queue that counts what waits in it without reading the
// deliveries (for /metrics).
type QueueStats interface {
	// QueueStats returns how many deliveries are queued, and when the
	// oldest of them was received (zero when none).
	QueueStats(ctx context.Context) (depth int, oldest time.Time, err error)
}

// Pinger is a store that can say whether it answers: prenv serve is not
// ready (takes no webhook deliveries) while its store does not.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Pruner removes the history prenv no longer needs, so that a store stays
// the size of what it must keep (serve.retention).
type Pruner interface {
	// Prune removes the webhook deliveries carried out (done, ignored or
	// failed) that were received before cutoff, and the runs that finished
	// before cutoff, except the newest run of each environment. Queued
	// deliveries and unfinished runs stay, whatever their age. It then
	// gives the space freed back to the file system.
	Prune(ctx context.Context, cutoff time.Time) (Pruned, error)
}

// Pruned is what Prune removed.
type Pruned struct {
	Deliveries int64
	Runs       int64
	Reclaimed  int64 // bytes given back to the file system
}
