package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/prenv/prenv/internal/store"
)

var _ store.Pruner = (*Store)(nil)

// pruneBatch bounds the rows one DELETE removes, so that the write lock the
// CLI and the server share is never held for long.
const pruneBatch = 500

// Prune implements store.Pruner.
//
// SQLite keeps the pages it frees inside the file, and the write-ahead log
// keeps the size of the largest burst written into it. So once rows are
// removed, Prune rewrites the file (VACUUM; quick at the size a pruned
// store keeps) when free pages make a quarter of it or more, and truncates
// the log.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (store.Pruned, error) {
	var p store.Pruned
	// The times are read from these indexes, not from the rows: a row's
	// later columns lie past its body, which for a delivery fills a chain
	// of overflow pages.
	if _, err := s.db.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries(state, received_at);
		CREATE INDEX IF NOT EXISTS runs_finished ON runs(finished_at)`); err != nil {
		return p, fmt.Errorf("index the store for pruning: %w", err)
	}
	at := ts(cutoff)
	// julianday, not string order: RFC 3339 times with fractions of a second
	// do not sort as strings.
	n, err := s.deleteBatches(ctx, `DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries
		WHERE state != 'queued' AND julianday(received_at) < julianday(?) LIMIT ?)`, at)
	p.Deliveries = n
	if err != nil {
		return p, fmt.Errorf("remove the webhook deliveries carried out before %s: %w", at, err)
	}
	n, err = s.deleteBatches(ctx, `DELETE FROM runs WHERE id IN (SELECT id FROM runs
		WHERE finished_at != '' AND julianday(finished_at) < julianday(?)
		AND id NOT IN (SELECT max(id) FROM runs GROUP BY key) LIMIT ?)`, at)
	p.Runs = n
	if err != nil {
		return p, fmt.Errorf("remove the runs finished before %s: %w", at, err)
	}
	if p.Deliveries+p.Runs == 0 {
		return p, nil
	}
	p.Reclaimed, err = s.reclaim(ctx)
	if err != nil {
		return p, fmt.Errorf("give back the space of %d deliveries and %d runs removed: %w", p.Deliveries, p.Runs, err)
	}
	return p, nil
}

func (s *Store) deleteBatches(ctx context.Context, query string, at string) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, query, at, pruneBatch)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// reclaim gives free pages back to the file system and returns how many
// bytes the database file shrank by.
func (s *Store) reclaim(ctx context.Context) (int64, error) {
	var pageSize, pages, free int64
	for _, q := range []struct {
		pragma string
		into   *int64
	}{{"page_size", &pageSize}, {"page_count", &pages}, {"freelist_count", &free}} {
		if err := s.db.QueryRowContext(ctx, `PRAGMA `+q.pragma).Scan(q.into); err != nil {
			return 0, fmt.Errorf("read %s: %w", q.pragma, err)
		}
	}
	if free > 0 && free*4 >= pages {
		if _, err := s.db.ExecContext(ctx, `VACUUM`); err != nil {
			return 0, fmt.Errorf("vacuum: %w", err)
		}
	}
	// A reader of another process may keep the log from being truncated
	// (busy is then 1): the next prune tries again.
	var busy, logPages, done int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return 0, fmt.Errorf("truncate the write-ahead log: %w", err)
	}
	var after int64
	if err := s.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&after); err != nil {
		return 0, fmt.Errorf("read page_count: %w", err)
	}
	return (pages - after) * pageSize, nil
}
