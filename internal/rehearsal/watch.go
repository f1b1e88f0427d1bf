package rehearsal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// WatcherApplicationName is the application_name of a Watch's own
// connection; sessions with it are never the migration's.
const WatcherApplicationName = "prenv rehearsal"

// ErrFinished is returned by Finish on a Watch already finished or closed.
var ErrFinished = errors.New("rehearsal watch already finished")

// Watch observes one migration; Begin starts it, Finish ends it.
type Watch struct {
	dsn    string
	opts   Options
	conn   *pgx.Conn
	before snapshot
	began  time.Time // local clock, after the Before read
	rec    *recorder

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	finished bool
}

// Begin connects to the database at dsn with its own connection (as the
// same role as the migration, so it sees the query text of the migration's
// sessions), reads what the report compares against — the schema, every
// table's and index's storage (relfilenode), row count, size and write
// counters — and starts sampling pg_locks and pg_stat_activity every
// opts.Interval in a goroutine. Call it just before the migration starts
// and Finish (or Close) after it ends.
//
// It returns an error wrapping ErrInvalidOptions for bad options, and the
// connection's or catalog read's error otherwise; nothing is left running
// then.
func Begin(ctx context.Context, dsn string, opts Options) (*Watch, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	w := &Watch{dsn: dsn, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := w.connect(ctx)
	if err != nil {
		return nil, err
	}
	w.conn = conn
	var version int
	var size int64
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, pg_database_size(current_database())`).Scan(&version, &size); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("rehearsal: read server version: %w", err)
	}
	w.before, err = readSnapshot(ctx, conn, true)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("rehearsal: read the database before the migration: %w", err)
	}
	if w.opts.Golden.Bytes == 0 {
		w.opts.Golden.Bytes = size
	}
	w.rec = newRecorder(opts, version, w.before.at)
	w.began = time.Now()
	go w.run()
	return w, nil
}

// Schema returns the schema Begin read.
func (w *Watch) Schema() Schema { return w.before.schema }

// BeganOnGolden says the database Begin read had just been cloned from the
// golden generation (nothing had migrated it yet): the report's SchemaDiff
// is then from the golden generation, Options.Baseline being the schema
// Begin read.
func (w *Watch) BeganOnGolden() {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.before.schema
	w.opts.Baseline = &s
}

// connect opens the watcher's connection: named, so it is never taken for
// the migration's, and with a lock timeout, so a catalog read that needs a
// lock (sizes, view definitions) never queues behind the migration.
func (w *Watch) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(w.dsn)
	if err != nil {
		return nil, fmt.Errorf("rehearsal: %w", err)
	}
	cfg.RuntimeParams["application_name"] = WatcherApplicationName
	cfg.RuntimeParams["lock_timeout"] = "200ms"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("rehearsal: connect: %w", err)
	}
	return conn, nil
}

// run samples until stop is closed. A failed sample is counted and
// reported; a lost connection is reopened at most once a second.
func (w *Watch) run() {
	defer close(w.done)
	tick := time.NewTicker(w.opts.Interval)
	defer tick.Stop()
	var lastConnect time.Time
	for {
		if w.conn.IsClosed() && time.Since(lastConnect) > time.Second {
			lastConnect = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if conn, err := w.connect(ctx); err == nil {
				w.conn = conn
			} else {
				w.rec.failed(err)
			}
			cancel()
		}
		if !w.conn.IsClosed() {
			ctx, cancel := context.WithTimeout(context.Background(), max(2*time.Second, 20*w.opts.Interval))
			w.rec.sample(ctx, w.conn)
			cancel()
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// halt stops sampling and waits for the goroutine; it is idempotent.
func (w *Watch) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

// Close stops watching without a report and closes the connection. It is
// safe to call after Finish and more than once.
func (w *Watch) Close() error {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	if !w.conn.IsClosed() {
		return w.conn.Close(context.Background())
	}
	return nil
}

// Finish stops sampling, waits for the migration's sessions to end (at most
// Options.Settle), reads the database again and returns the report. Call it
// as soon as the migration ends, with the migration's error if it failed:
// the report then says so and shows what the migration did up to the
// failure (committed schema changes, locks, rows written — including rows
// of statements that were rolled back, which PostgreSQL's counters keep).
// The connection is closed when it returns.
//
// Row counts are exact when every session the migration opened after Begin
// has ended by the time Finish reads them: a PostgreSQL backend publishes
// its pending statistics when it exits, while a session left open may hold
// back its last second of counts (PostgreSQL 15 flushes at most once a
// second, and 10 s after going idle). A session still open after Settle is
// named in the report's notes.
//
// It returns ErrFinished if called twice, and an error if the database
// cannot be read after the migration (the migration's result is the
// caller's to report then).
func (w *Watch) Finish(ctx context.Context, migrateErr error) (Report, error) {
	elapsed := time.Since(w.began)
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return Report{}, ErrFinished
	}
	w.finished = true
	defer func() {
		if !w.conn.IsClosed() {
			w.conn.Close(context.WithoutCancel(ctx))
		}
	}()
	if w.conn.IsClosed() {
		conn, err := w.connect(ctx)
		if err != nil {
			return Report{}, err
		}
		w.conn = conn
	}
	open, err := w.settle(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("rehearsal: wait for the migration's sessions: %w", err)
	}
	after, err := readSnapshot(ctx, w.conn, false)
	if err != nil {
		return Report{}, fmt.Errorf("rehearsal: read the database after the migration: %w", err)
	}
	r := build(w.opts, w.before, after, w.rec, elapsed, migrateErr)
	for _, s := range open {
		r.Notes = append(r.Notes, fmt.Sprintf("session %d (%s) the migration opened was still connected %v after it ended: its last second of row counts may not be published yet; end the migration's connections before Finish for exact counts",
			s.pid, orNone(s.app), w.opts.Settle))
	}
	return r, nil
}

type openSession struct {
	pid int32
	app string
}

// settle waits until no session of the migration's that began after Begin
// is still connected, for at most Options.Settle, and returns those that
// still are.
func (w *Watch) settle(ctx context.Context) ([]openSession, error) {
	deadline := time.Now().Add(w.opts.Settle)
	for {
		rows, err := w.conn.Query(ctx, `
SELECT pid, coalesce(application_name, ''), coalesce(usename::text, '')
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
  AND backend_start >= $1`, w.before.at)
		if err != nil {
			return nil, err
		}
		var open []openSession
		for rows.Next() {
			var s openSession
			var user string
			if err := rows.Scan(&s.pid, &s.app, &user); err != nil {
				rows.Close()
				return nil, err
			}
			if w.rec.isMigration(s.app, user) {
				open = append(open, s)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if len(open) == 0 || time.Now().After(deadline) {
			return open, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
