package rehearsal

import (
	"errors"
	"fmt"
	"time"
)

// Options tune what a Watch samples and what it warns about. The zero value
// of a field means its default (DefaultOptions); Begin fills them in.
type Options struct {
	// LockBudget is how long the migration may hold ACCESS EXCLUSIVE on a
	// large table before it is a warning (migration.lock_budget).
	LockBudget time.Duration
	// LargeTableRows is the row count above which a table is large
	// (migration.large_table_rows).
	LargeTableRows int64
	// LongBackfill is how long one transaction of the migration may write
	// rows (INSERT, UPDATE, DELETE, MERGE, COPY) before it is a warning.
	LongBackfill time.Duration
	// Interval is the time between two samples of pg_locks and
	// pg_stat_activity.
	Interval time.Duration
	// Settle bounds how long Finish waits for the migration's sessions to
	// end so that their row counts are published (see Finish).
	Settle time.Duration

	// ApplicationName, when set, restricts the migration's sessions to
	// those whose application_name is this (run the migration with
	// PGAPPNAME set to it). Without it every client session in the database
	// but the watcher's is the migration's, the running application's too.
	ApplicationName string
	// User, when set, restricts the migration's sessions to this role.
	User string

	// Baseline, when set, is the schema the report's SchemaDiff starts from,
	// such as the golden generation's, read by ReadSchema at the
	// environment's first up. Without it the diff starts from the schema
	// read by Begin. Warnings always judge this migration's own changes.
	Baseline *Schema
	// Golden names the golden generation the database was cloned from; it
	// is copied into the report as is.
	Golden Golden
}

// Golden identifies the golden generation a migration ran on, and the
// size of the data it ran on.
type Golden struct {
	Generation string `json:"generation,omitempty"`
	// Bytes is the database's size when the migration began
	// (pg_database_size), unless the caller gave it.
	Bytes int64 `json:"bytes,omitempty"`
}

// DefaultOptions returns the defaults of issue 12.
//
// LongBackfill is 5 s: a transaction that writes rows keeps every row it
// has touched locked against the application's writes until it commits (an
// UPDATE of every row locks the whole table against writes), and keeps
// VACUUM from removing any dead row in the database meanwhile. It gets a
// looser budget than ACCESS EXCLUSIVE's 1 s because reads go on, but 5 s is
// already longer than a web request usually waits for a row; a backfill in
// batches of about a second each avoids both costs.
func DefaultOptions() Options {
	return Options{
		LockBudget:     time.Second,
		LargeTableRows: 100_000,
		LongBackfill:   5 * time.Second,
		Interval:       50 * time.Millisecond,
		Settle:         500 * time.Millisecond,
	}
}

// ErrInvalidOptions is wrapped by Validate's errors.
var ErrInvalidOptions = errors.New("invalid rehearsal options")

// Validate returns an error wrapping ErrInvalidOptions naming the first
// field that is negative or out of range.
func (o Options) Validate() error {
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"lock_budget", o.LockBudget}, {"long_backfill", o.LongBackfill}, {"interval", o.Interval}, {"settle", o.Settle}} {
		if f.v < 0 {
			return fmt.Errorf("%w: %s is %v: it must be positive (or 0 for the default)", ErrInvalidOptions, f.name, f.v)
		}
	}
	if o.LargeTableRows < 0 {
		return fmt.Errorf("%w: large_table_rows is %d: it must be positive (or 0 for the default)", ErrInvalidOptions, o.LargeTableRows)
	}
	if o.Interval != 0 && o.Interval < 5*time.Millisecond {
		return fmt.Errorf("%w: interval %v is below 5ms: sampling that often would slow the migration it watches", ErrInvalidOptions, o.Interval)
	}
	return nil
}

// withDefaults fills the zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.LockBudget == 0 {
		o.LockBudget = d.LockBudget
	}
	if o.LargeTableRows == 0 {
		o.LargeTableRows = d.LargeTableRows
	}
	if o.LongBackfill == 0 {
		o.LongBackfill = d.LongBackfill
	}
	if o.Interval == 0 {
		o.Interval = d.Interval
	}
	if o.Settle == 0 {
		o.Settle = d.Settle
	}
	return o
}
