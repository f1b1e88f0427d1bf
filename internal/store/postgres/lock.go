package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/store"
)

var _ store.Locker = (*Store)(nil)

// LockCheck is how often a held lock's connection is asked whether it
// still answers, and how long it may take: a lock whose connection does
// not answer is taken as lost (the run holding it stops), since the server
// lets it go once it sees the connection dead.
var LockCheck = 2 * time.Second

// Lock implements store.Locker with a session advisory lock on a
// connection of its own. PostgreSQL releases it when that connection ends,
// so a replica killed outright (kill -9, a lost node once TCP keepalives
// give up on it) leaves nothing locked.
func (s *Store) Lock(ctx context.Context, name string) (store.Lease, error) {
	conn, err := s.lockConn(ctx, "prenv lock")
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	delay := 20 * time.Millisecond
	var pid int64 // the server process holding the lock: what fences the run's writes
	for {
		var ok bool
		// The server's own pid, not the protocol's: a pooler in session
		// mode hands clients a key of its own.
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0)), pg_backend_pid()`, "prenv:"+name).Scan(&ok, &pid); err != nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			conn.Close(context.Background())
			return nil, fmt.Errorf("wait for the lock of %s: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
	l := &lease{store: s, pid: pid, conn: conn, key: "prenv:" + name, lost: make(chan struct{}), stop: make(chan struct{})}
	// The store's other connections must see it held, or every fenced
	// write would be refused: they reach another server, or a pooler in
	// transaction mode sits between.
	cond, args := s.fence(store.WithLease(ctx, l), 1)
	var seen bool
	if err := s.db.QueryRowContext(ctx, `SELECT `+cond, args...).Scan(&seen); err != nil || !seen {
		l.Release()
		if err == nil {
			err = errors.New("the store's other connections do not see it held: point store at one PostgreSQL server directly, or through a pooler in session mode")
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	go l.watch()
	return l, nil
}

// lockConn is a connection of its own whose death the server notices
// within half a minute even when its peer vanishes without a word, named
// app in the server's pg_stat_activity.
func (s *Store) lockConn(ctx context.Context, app string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	cfg.RuntimeParams["application_name"] = app
	return pgx.ConnectConfig(ctx, cfg)
}

// Held implements store.Locker: whether taking the lock now would fail.
func (s *Store) Held(ctx context.Context, name string) (bool, error) {
	var held bool
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))`, "prenv:"+name).Scan(&held)
	return held, err
}

type lease struct {
	store    *Store
	pid      int64 // the server process of conn, which holds the lock
	conn     *pgx.Conn
	key      string
	lost     chan struct{}
	loseOnce sync.Once
	stop     chan struct{}
	mu       sync.Mutex // the connection is used by one goroutine at a time
	released bool
}

func (l *lease) Lost() <-chan struct{} { return l.lost }

// watch asks the connection every LockCheck whether it answers; the first
// time it does not, the lock is lost.
func (l *lease) watch() {
	t := time.NewTicker(LockCheck)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.released {
			l.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), LockCheck)
		err := l.conn.Ping(ctx)
		cancel()
		l.mu.Unlock()
		if err != nil {
			l.lose()
			return
		}
	}
}

// lose says the lock is lost: its run stops at its next step.
func (l *lease) lose() { l.loseOnce.Do(func() { close(l.lost) }) }

// Release lets the lock go, and the connection with it.
func (l *lease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return
	}
	l.released = true
	close(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, l.key)
	_ = l.conn.Close(ctx)
}

// leaseOf is the lock ctx carries (store.WithLease) when this store gave
// it, else nil: only those fence the writes.
func (s *Store) leaseOf(ctx context.Context) *lease {
	if l, ok := store.LeaseOf(ctx).(*lease); ok && l.store == s {
		return l
	}
	return nil
}

// fence is the condition under which a write made with ctx lands, with
// its arguments numbered from $n: when ctx carries a lock this store gave
// (store.WithLease), only while the server process that took it still
// holds it. pg_locks is read as the statement starts, not from its
// snapshot: once the lock's session is gone, no write of its run that
// starts lands, whatever the run believes (updateEnv makes sure the
// statement does not then wait). Without such a lock, "true".
func (s *Store) fence(ctx context.Context, n int) (string, []any) {
	l := s.leaseOf(ctx)
	if l == nil {
		return "true", nil
	}
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = $%d::int
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($%d, 0))`, n, n+1), []any{l.pid, l.key}
}

// updateEnv runs q, an UPDATE of the record of key with fence's
// condition, and returns how many rows it changed. With a lock to fence
// by, it first takes the record's row in the same transaction: the fence
// is read when a statement starts, and an UPDATE that then waited for the
// row (another transaction writing it) would land however long it waited,
// the lock lost meanwhile. Holding the row, the check and the write are
// one moment for anyone else who writes the record.
func (s *Store) updateEnv(ctx context.Context, key, q string, args ...any) (int64, error) {
	if s.leaseOf(ctx) == nil {
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM prenv_envs WHERE key = $1 FOR UPDATE`, key); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// refused is the error of a write the fence refused; the run's lease is
// lost from then on, so that the run stops at its next step rather than
// carrying on to work its record no longer follows.
func (s *Store) refused(ctx context.Context, what string) error {
	if l := s.leaseOf(ctx); l != nil {
		l.lose()
	}
	return fmt.Errorf("%s: %w", what, store.ErrFenced)
}

// fenced is what a write that changed no row says: ErrFenced when ctx's
// lock is no longer held, or when that cannot be read (the write did not
// land either way, and the lock's holder, whoever it is, carries on), else
// missing (the row is not there).
func (s *Store) fenced(ctx context.Context, what string, missing error) error {
	if s.leaseOf(ctx) == nil {
		return fmt.Errorf("%s: %w", what, missing)
	}
	cond, args := s.fence(ctx, 1)
	var held bool
	if err := s.db.QueryRowContext(context.WithoutCancel(ctx), `SELECT `+cond, args...).Scan(&held); err != nil {
		return s.refused(ctx, fmt.Sprintf("%s (whether this run's lock is still its own could not be read: %v)", what, err))
	} else if !held {
		return s.refused(ctx, what)
	}
	return fmt.Errorf("%s: %w", what, missing)
}
