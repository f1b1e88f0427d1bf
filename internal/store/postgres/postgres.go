// Package postgres is the store replicas of prenv serve share: one
// PostgreSQL database (store: postgres://...), through pgx. It keeps what
// the SQLite store keeps, and gives replicas a webhook queue whose
// deliveries each replica claims for a while (FOR UPDATE SKIP LOCKED), and
// locks per environment that die with the replica holding them.
package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

var (
	_ store.Store  = (*Store)(nil)
	_ store.Queue  = (*Store)(nil)
	_ store.Pruner = (*Store)(nil)
	_ store.Pinger = (*Store)(nil)
)

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	db  *sql.DB
	url string
	now func() time.Time

	presentMu sync.Mutex
	present   map[string]*pgx.Conn // by claim owner: the connection holding its presence lock
}

// schemaLock is the advisory lock key under which a store's tables are
// made: two replicas starting at once do not race on CREATE TABLE.
const schemaLock = 0x70726e76 // "prnv"

const schema = `
CREATE TABLE IF NOT EXISTS prenv_envs (
	key            text PRIMARY KEY,
	name           text NOT NULL,
	state          text NOT NULL,
	desired_commit text NOT NULL DEFAULT '',
	desired_seq    bigint NOT NULL DEFAULT 0,
	closed         boolean NOT NULL DEFAULT false,
	commit_sha     text NOT NULL DEFAULT '',
	url            text NOT NULL DEFAULT '',
	database       text NOT NULL DEFAULT '{}',
	error          text NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL,
	providers      text NOT NULL DEFAULT '{}',
	expires_at     timestamptz,
	down_reason    text NOT NULL DEFAULT '',
	down_commit    text NOT NULL DEFAULT '',
	baseline       text NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS prenv_runs (
	id          bigserial PRIMARY KEY,
	key         text NOT NULL,
	seq         bigint NOT NULL,
	kind        text NOT NULL,
	commit_sha  text NOT NULL,
	state       text NOT NULL,
	error       text NOT NULL DEFAULT '',
	output      text NOT NULL DEFAULT '',
	steps       text NOT NULL DEFAULT '[]',
	migration   text NOT NULL DEFAULT '',
	started_at  timestamptz NOT NULL,
	finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS prenv_runs_key ON prenv_runs (key, id);
CREATE INDEX IF NOT EXISTS prenv_runs_finished ON prenv_runs (finished_at);
CREATE TABLE IF NOT EXISTS prenv_deliveries (
	seq           bigserial PRIMARY KEY,
	id            text NOT NULL UNIQUE,
	event         text NOT NULL,
	body          bytea NOT NULL,
	received_at   timestamptz NOT NULL,
	state         text NOT NULL DEFAULT 'queued',
	note          text NOT NULL DEFAULT '',
	attempts      integer NOT NULL DEFAULT 0,
	claimed_by    text NOT NULL DEFAULT '',
	claimed_until timestamptz,
	subject       text NOT NULL DEFAULT '',
	claimed_present boolean NOT NULL DEFAULT false
);
ALTER TABLE prenv_deliveries ADD COLUMN IF NOT EXISTS subject text NOT NULL DEFAULT '';
ALTER TABLE prenv_deliveries ADD COLUMN IF NOT EXISTS claimed_present boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS prenv_deliveries_queued ON prenv_deliveries (seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS prenv_deliveries_subject ON prenv_deliveries (subject) WHERE state = 'queued' AND subject <> '';
CREATE INDEX IF NOT EXISTS prenv_deliveries_received ON prenv_deliveries (received_at) WHERE state <> 'queued';
CREATE TABLE IF NOT EXISTS prenv_schema (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS prenv_pulls (
	key        text PRIMARY KEY,
	state      text NOT NULL,
	updated_at timestamptz NOT NULL
);
`

// Open connects to the database at url and makes prenv's tables in it
// (all named prenv_*) if they are missing.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: %v: want postgres://user:password@host:5432/database", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	where := fmt.Sprintf("the store at %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &Store{db: db, url: url, now: time.Now}, nil
}

// schemaVersion is the version of schema: raise it whenever schema
// changes, so that the first process of the new version applies it.
const schemaVersion = 1

// migrate applies schema when the store's recorded version is older than
// schemaVersion, and otherwise does nothing. The DDL takes ACCESS EXCLUSIVE
// or SHARE locks on prenv's tables even where nothing is missing (ALTER
// TABLE ... ADD COLUMN IF NOT EXISTS, CREATE INDEX IF NOT EXISTS): run on
// every open, every 'prenv status' would stop every replica's queue for a
// moment, and one stuck transaction would stop them all. Applying it waits
// at most a minute for the tables' locks, then says why.
func migrate(ctx context.Context, db *sql.DB) error {
	if v, err := storedVersion(ctx, db); err != nil {
		return err
	} else if v >= schemaVersion {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLock); err != nil {
		return err
	}
	if v, err := storedVersion(ctx, tx); err != nil || v >= schemaVersion {
		return err // another process applied it meanwhile
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '1min'`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return fmt.Errorf("make prenv's tables: a session kept them locked for a minute (see pg_stat_activity for one idle in transaction): %w", err)
		}
		return fmt.Errorf("make prenv's tables: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM prenv_schema`); err != nil {
		return fmt.Errorf("record the version of prenv's tables: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO prenv_schema (version) VALUES ($1)`, schemaVersion); err != nil {
		return fmt.Errorf("record the version of prenv's tables: %w", err)
	}
	return tx.Commit()
}

// storedVersion is the version of the schema recorded in the store, 0 when
// none is (a new store, or one made before versions were recorded).
func storedVersion(ctx context.Context, q querier) (int, error) {
	// Asked first, not caught as an error: an error would abort the
	// transaction migrate asks in.
	var exists bool
	if err := q.QueryRowContext(ctx, `SELECT to_regclass('prenv_schema') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM prenv_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the version of prenv's tables: %w", err)
	}
	return int(v.Int64), nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.absent()
	return s.db.Close()
}

// Ping implements store.Pinger.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Request implements store.Store: one statement, so that two replicas
// recording requests for one environment at once get different numbers.
func (s *Store) Request(ctx context.Context, k env.Key, name, commit string, down bool) (int64, error) {
	return request(ctx, s.db, s.now().UTC(), k, name, commit, down)
}

// querier is the database or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func request(ctx context.Context, q querier, now time.Time, k env.Key, name, commit string, down bool) (int64, error) {
	var seq int64
	var err error
	if down {
		err = q.QueryRowContext(ctx, `UPDATE prenv_envs SET desired_commit = $2, desired_seq = desired_seq + 1, closed = true, updated_at = $3
			WHERE key = $1 RETURNING desired_seq`, k.String(), commit, now).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil // nothing to bring down, nothing to record
		}
	} else {
		err = q.QueryRowContext(ctx, `INSERT INTO prenv_envs (key, name, state, desired_commit, desired_seq, closed, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 1, false, $5, $5)
			ON CONFLICT (key) DO UPDATE SET desired_commit = EXCLUDED.desired_commit, desired_seq = prenv_envs.desired_seq + 1,
				closed = false, updated_at = EXCLUDED.updated_at
			RETURNING desired_seq`, k.String(), name, env.StatePending, commit, now).Scan(&seq)
	}
	if err != nil {
		return 0, fmt.Errorf("record request for %s: %w", k, err)
	}
	return seq, nil
}

const envCols = `key, name, state, desired_commit, desired_seq, closed, commit_sha, url, database, error, created_at, updated_at, providers, expires_at, down_reason, down_commit`

func scanEnv(row interface{ Scan(...any) error }) (store.Env, error) {
	var e store.Env
	var key, state, db, providers string
	var expires sql.NullTime
	if err := row.Scan(&key, &e.Name, &state, &e.DesiredCommit, &e.DesiredSeq, &e.Closed, &e.Commit, &e.URL, &db, &e.Error,
		&e.CreatedAt, &e.UpdatedAt, &providers, &expires, &e.DownReason, &e.DownCommit); err != nil {
		return e, err
	}
	k, err := env.ParseKey(key)
	if err != nil {
		return e, err
	}
	e.Key, e.State = k, env.State(state)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if expires.Valid {
		e.ExpiresAt = expires.Time.UTC()
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
	e, err := scanEnv(s.db.QueryRowContext(ctx, `SELECT `+envCols+` FROM prenv_envs WHERE key = $1`, k.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("environment %s: %w", k, store.ErrNotFound)
	}
	return e, err
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Env, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+envCols+` FROM prenv_envs ORDER BY key COLLATE "C"`)
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
	var expires any
	if !e.ExpiresAt.IsZero() {
		expires = e.ExpiresAt.UTC()
	}
	fence, held := s.fence(ctx, 12)
	n, err := s.updateEnv(ctx, e.Key.String(), `UPDATE prenv_envs SET state = $1, commit_sha = $2, url = $3, database = $4, error = $5, providers = $6,
		expires_at = $7, down_reason = $8, down_commit = $9, updated_at = $10 WHERE key = $11 AND `+fence,
		append([]any{string(e.State), e.Commit, e.URL, string(db), e.Error, string(providers), expires, e.DownReason, e.DownCommit, s.now().UTC(), e.Key.String()}, held...)...)
	if err != nil {
		return fmt.Errorf("save %s: %w", e.Key, err)
	}
	if n == 0 {
		return s.fenced(ctx, "save "+e.Key.String(), store.ErrNotFound)
	}
	return nil
}

// SaveRun implements store.Store.
func (s *Store) SaveRun(ctx context.Context, r *store.Run) error {
	steps, _ := json.Marshal(r.Steps)
	if r.Steps == nil {
		steps = []byte("[]")
	}
	var fin any
	if !r.FinishedAt.IsZero() {
		fin = r.FinishedAt.UTC()
	}
	if r.ID == 0 {
		// A new run only while its lock is its own. (Its updates are not
		// fenced: they close its own record, which the lock's next holder
		// only marks interrupted if it is still running.)
		fence, held := s.fence(ctx, 12)
		err := s.db.QueryRowContext(ctx, `INSERT INTO prenv_runs (key, seq, kind, commit_sha, state, error, output, steps, started_at, finished_at, migration)
			SELECT $1::text, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::timestamptz, $10::timestamptz, $11::text
			WHERE `+fence+` RETURNING id`, append([]any{r.Key.String(), r.Seq, r.Kind, r.Commit, r.State, r.Error, r.Output,
			string(steps), r.StartedAt.UTC(), fin, string(r.Migration)}, held...)...).Scan(&r.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return s.refused(ctx, "save run of "+r.Key.String())
		}
		if err != nil {
			return fmt.Errorf("save run of %s: %w", r.Key, err)
		}
		return nil
	}
	// A record closed already (the lock's next holder marked it
	// interrupted) is not opened again by a step of its run that has not
	// noticed; closing it again is allowed.
	_, err := s.db.ExecContext(ctx, `UPDATE prenv_runs SET commit_sha = $1, state = $2, error = $3, output = $4, steps = $5, finished_at = $6, migration = $7
		WHERE id = $8 AND (finished_at IS NULL OR $6::timestamptz IS NOT NULL)`,
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

// LastMigration implements store.Store.
func (s *Store) LastMigration(ctx context.Context, k env.Key) (store.Run, error) {
	return s.lastRun(ctx, k, "AND migration <> ''")
}

func (s *Store) lastRun(ctx context.Context, k env.Key, where string) (store.Run, error) {
	var r store.Run
	var key, steps, migration string
	var finished sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT id, key, seq, kind, commit_sha, state, error, output, steps, started_at, finished_at, migration
		FROM prenv_runs WHERE key = $1 `+where+` ORDER BY id DESC LIMIT 1`, k.String()).
		Scan(&r.ID, &key, &r.Seq, &r.Kind, &r.Commit, &r.State, &r.Error, &r.Output, &steps, &r.StartedAt, &finished, &migration)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("runs of %s: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	r.Key, r.StartedAt = k, r.StartedAt.UTC()
	if finished.Valid {
		r.FinishedAt = finished.Time.UTC()
	}
	if migration != "" {
		r.Migration = []byte(migration)
	}
	_ = json.Unmarshal([]byte(steps), &r.Steps)
	return r, nil
}

// Baseline implements store.Store.
func (s *Store) Baseline(ctx context.Context, k env.Key) (store.Baseline, error) {
	var b store.Baseline
	var data string
	err := s.db.QueryRowContext(ctx, `SELECT baseline FROM prenv_envs WHERE key = $1`, k.String()).Scan(&data)
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
	fence, held := s.fence(ctx, 3)
	n, err := s.updateEnv(ctx, k.String(), `UPDATE prenv_envs SET baseline = $1 WHERE key = $2 AND `+fence, append([]any{string(data), k.String()}, held...)...)
	if err != nil {
		return fmt.Errorf("save the schema baseline of %s: %w", k, err)
	}
	if n == 0 {
		return s.fenced(ctx, "save the schema baseline of "+k.String(), store.ErrNotFound)
	}
	return nil
}

// Prune implements store.Pruner. PostgreSQL's autovacuum gives the space
// back for reuse; Reclaimed stays 0.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (store.Pruned, error) {
	var p store.Pruned
	res, err := s.db.ExecContext(ctx, `DELETE FROM prenv_deliveries WHERE state <> 'queued' AND received_at < $1`, cutoff.UTC())
	if err != nil {
		return p, fmt.Errorf("remove the webhook deliveries carried out before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	p.Deliveries, _ = res.RowsAffected()
	res, err = s.db.ExecContext(ctx, `DELETE FROM prenv_runs WHERE finished_at IS NOT NULL AND finished_at < $1
		AND id NOT IN (SELECT max(id) FROM prenv_runs GROUP BY key)`, cutoff.UTC())
	if err != nil {
		return p, fmt.Errorf("remove the runs finished before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	p.Runs, _ = res.RowsAffected()
	return p, nil
}
