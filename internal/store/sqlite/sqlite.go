// Package sqlite is the default Store: one SQLite file under PRENV_HOME,
// through a pure-Go driver (no cgo), shared safely by the CLI and prenv serve.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store in one SQLite file.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS envs (
	key            TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	state          TEXT NOT NULL,
	desired_commit TEXT NOT NULL DEFAULT '',
	desired_seq    INTEGER NOT NULL DEFAULT 0,
	closed         INTEGER NOT NULL DEFAULT 0,
	commit_sha     TEXT NOT NULL DEFAULT '',
	url            TEXT NOT NULL DEFAULT '',
	database       TEXT NOT NULL DEFAULT '{}',
	error          TEXT NOT NULL DEFAULT '',
	created_at     TEXT NOT NULL,
	updated_at     TEXT NOT NULL,
	providers      TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS runs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	key         TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	commit_sha  TEXT NOT NULL,
	state       TEXT NOT NULL,
	error       TEXT NOT NULL DEFAULT '',
	output      TEXT NOT NULL DEFAULT '',
	steps       TEXT NOT NULL DEFAULT '[]',
	started_at  TEXT NOT NULL,
	finished_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_key ON runs(key, id);
CREATE TABLE IF NOT EXISTS deliveries (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	id          TEXT NOT NULL UNIQUE,
	event       TEXT NOT NULL,
	body        BLOB NOT NULL,
	received_at TEXT NOT NULL,
	state       TEXT NOT NULL DEFAULT 'queued',
	note        TEXT NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries(state, seq);
CREATE TABLE IF NOT EXISTS pulls (
	key        TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
`

// Open opens (creating if needed) the store at path.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(15000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := addColumns(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// addedColumns are the columns added to tables after their first release;
// a store made before gets them on open.
var addedColumns = []struct{ table, column, def string }{
	{"envs", "providers", `TEXT NOT NULL DEFAULT '{}'`},
	{"envs", "expires_at", `TEXT NOT NULL DEFAULT ''`},
	{"envs", "down_reason", `TEXT NOT NULL DEFAULT ''`},
	{"envs", "down_commit", `TEXT NOT NULL DEFAULT ''`},
	{"runs", "migration", `TEXT NOT NULL DEFAULT ''`},
	{"envs", "baseline", `TEXT NOT NULL DEFAULT ''`},
}

func addColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range addedColumns {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n); err != nil {
			return fmt.Errorf("read the columns of %s: %w", c.table, err)
		}
		if n > 0 {
			continue
		}
		// Two processes may open an old store at once; the loser's ALTER
		// fails with "duplicate column", which is the wanted end state.
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.def); err != nil && !strings.Contains(err.Error(), "duplicate column") {
			return fmt.Errorf("add column %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func parseTS(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Request implements store.Store.
func (s *Store) Request(ctx context.Context, k env.Key, name, commit string, down bool) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := ts(s.now())
	var seq int64
	err = tx.QueryRowContext(ctx, `SELECT desired_seq FROM envs WHERE key = ?`, k.String()).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if down {
			return 0, nil // nothing to bring down, nothing to record
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO envs (key, name, state, desired_commit, desired_seq, closed, created_at, updated_at)
			VALUES (?, ?, ?, ?, 1, 0, ?, ?)`, k.String(), name, env.StatePending, commit, now, now)
		seq = 1
	case err != nil:
		return 0, err
	default:
		seq++
		closed := 0
		if down {
			closed = 1
		}
		_, err = tx.ExecContext(ctx, `UPDATE envs SET desired_commit = ?, desired_seq = ?, closed = ?, updated_at = ? WHERE key = ?`,
			commit, seq, closed, now, k.String())
	}
	if err != nil {
		return 0, fmt.Errorf("record request for %s: %w", k, err)
	}
	return seq, tx.Commit()
}

const envCols = `key, name, state, desired_commit, desired_seq, closed, commit_sha, url, database, error, created_at, updated_at, providers, expires_at, down_reason, down_commit`

func scanEnv(row interface{ Scan(...any) error }) (store.Env, error) {
	var e store.Env
	var key, state, db, created, updated, providers, expires string
	var closed int
	if err := row.Scan(&key, &e.Name, &state, &e.DesiredCommit, &e.DesiredSeq, &closed, &e.Commit, &e.URL, &db, &e.Error, &created, &updated, &providers, &expires, &e.DownReason, &e.DownCommit); err != nil {
		return e, err
	}
	k, err := env.ParseKey(key)
	if err != nil {
		return e, err
	}
	e.Key, e.State, e.Closed = k, env.State(state), closed == 1
	e.CreatedAt, e.UpdatedAt = parseTS(created), parseTS(updated)
	if expires != "" {
		// An expiry that does not parse is not "no expiry": the sweeper
		// must keep the environment and say why.
		if e.ExpiresAt, err = time.Parse(time.RFC3339Nano, expires); err != nil {
			return e, fmt.Errorf("environment %s: its expiry %q does not parse: %w", key, expires, err)
		}
	}
	if err := json.Unmarshal([]byte(db), &e.Database); err != nil {
		return e, fmt.Errorf("environment %s: its recorded database %q does not parse: %w", key, db, err)
	}
	if err := json.Unmarshal([]byte(providers), &e.Providers); err != nil {
		return e, fmt.Errorf("environment %s: its recorded providers %q do not parse: %w", key, providers, err)
	}
	return e, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, k env.Key) (store.Env, error) {
	e, err := scanEnv(s.db.QueryRowContext(ctx, `SELECT `+envCols+` FROM envs WHERE key = ?`, k.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("environment %s: %w", k, store.ErrNotFound)
	}
	return e, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Env, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+envCols+` FROM envs ORDER BY key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Env
	for rows.Next() {
		e, err := scanEnv(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, e store.Env) error {
	db, _ := json.Marshal(e.Database)
	providers, _ := json.Marshal(e.Providers)
	expires := ""
	if !e.ExpiresAt.IsZero() {
		expires = ts(e.ExpiresAt)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE envs SET state = ?, commit_sha = ?, url = ?, database = ?, error = ?, providers = ?, expires_at = ?, down_reason = ?, down_commit = ?, updated_at = ? WHERE key = ?`,
		e.State, e.Commit, e.URL, string(db), e.Error, string(providers), expires, e.DownReason, e.DownCommit, ts(s.now()), e.Key.String())
	if err != nil {
		return fmt.Errorf("save %s: %w", e.Key, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("save %s: %w", e.Key, store.ErrNotFound)
	}
	return nil
}

// SaveRun implements store.Store.
func (s *Store) SaveRun(ctx context.Context, r *store.Run) error {
	steps, _ := json.Marshal(r.Steps)
	if r.Steps == nil {
		steps = []byte("[]")
	}
	fin := ""
	if !r.FinishedAt.IsZero() {
		fin = ts(r.FinishedAt)
	}
	if r.ID == 0 {
		res, err := s.db.ExecContext(ctx, `INSERT INTO runs (key, seq, kind, commit_sha, state, error, output, steps, started_at, finished_at, migration)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Key.String(), r.Seq, r.Kind, r.Commit, r.State, r.Error, r.Output, string(steps), ts(r.StartedAt), fin, string(r.Migration))
		if err != nil {
			return fmt.Errorf("save run of %s: %w", r.Key, err)
		}
		r.ID, err = res.LastInsertId()
		return err
	}
	_, err := s.db.ExecContext(ctx, `UPDATE runs SET commit_sha = ?, state = ?, error = ?, output = ?, steps = ?, finished_at = ?, migration = ? WHERE id = ?`,
		r.Commit, r.State, r.Error, r.Output, string(steps), fin, string(r.Migration), r.ID)
	if err != nil {
		return fmt.Errorf("save run of %s: %w", r.Key, err)
	}
	return nil
}

// LastRun implements store.Store.
func (s *Store) LastRun(ctx context.Context, k env.Key) (store.Run, error) {
	return s.lastRun(ctx, k, "")
}

// Baseline implements store.Store.
func (s *Store) Baseline(ctx context.Context, k env.Key) (store.Baseline, error) {
	var b store.Baseline
	var data string
	err := s.db.QueryRowContext(ctx, `SELECT baseline FROM envs WHERE key = ?`, k.String()).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && data == "") {
		return b, fmt.Errorf("the schema baseline of %s: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal([]byte(data), &b); err != nil {
		return b, fmt.Errorf("the schema baseline of %s does not parse: %w", k, err)
	}
	return b, nil
}

// SaveBaseline implements store.Store.
func (s *Store) SaveBaseline(ctx context.Context, k env.Key, b store.Baseline) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE envs SET baseline = ? WHERE key = ?`, string(data), k.String())
	if err != nil {
		return fmt.Errorf("save the schema baseline of %s: %w", k, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("save the schema baseline of %s: %w", k, store.ErrNotFound)
	}
	return nil
}

// LastMigration implements store.Store.
func (s *Store) LastMigration(ctx context.Context, k env.Key) (store.Run, error) {
	return s.lastRun(ctx, k, "AND migration <> ''")
}

func (s *Store) lastRun(ctx context.Context, k env.Key, where string) (store.Run, error) {
	var r store.Run
	var key, steps, started, finished, migration string
	err := s.db.QueryRowContext(ctx, `SELECT id, key, seq, kind, commit_sha, state, error, output, steps, started_at, finished_at, migration
		FROM runs WHERE key = ? `+where+` ORDER BY id DESC LIMIT 1`, k.String()).
		Scan(&r.ID, &key, &r.Seq, &r.Kind, &r.Commit, &r.State, &r.Error, &r.Output, &steps, &started, &finished, &migration)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("runs of %s: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	r.Key = k
	if migration != "" {
		r.Migration = []byte(migration)
	}
	_ = json.Unmarshal([]byte(steps), &r.Steps)
	r.StartedAt, r.FinishedAt = parseTS(started), parseTS(finished)
	return r, nil
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

// Ping implements store.Pinger: one query through the pool.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}
