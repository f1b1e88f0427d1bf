package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

var _ store.Queue = (*Store)(nil)

// Enqueue implements store.Queue.
func (s *Store) Enqueue(ctx context.Context, d store.Delivery) (bool, error) {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO deliveries (id, event, body, received_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`,
		d.ID, d.Event, d.Body, ts(d.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("queue delivery %s: %w", d.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Queued implements store.Queue.
func (s *Store) Queued(ctx context.Context, limit int) ([]store.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event, body, received_at, state, note, attempts FROM deliveries WHERE state = 'queued' ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func scanDelivery(r interface{ Scan(...any) error }) (store.Delivery, error) {
	var d store.Delivery
	var at string
	err := r.Scan(&d.ID, &d.Event, &d.Body, &at, &d.State, &d.Note, &d.Attempts)
	d.ReceivedAt = parseTS(at)
	return d, err
}

// Delivery implements store.Queue.
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	d, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT id, event, body, received_at, state, note, attempts FROM deliveries WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, store.ErrNotFound
	}
	return d, err
}

// Finish implements store.Queue.
func (s *Store) Finish(ctx context.Context, id, state, note string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE deliveries SET state = ?, note = ?, attempts = attempts + 1 WHERE id = ?`, state, note, id)
	return err
}

// ObservePull implements store.Queue.
func (s *Store) ObservePull(ctx context.Context, k env.Key, state string, at time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var cur, curAt string
	err = tx.QueryRowContext(ctx, `SELECT state, updated_at FROM pulls WHERE key = ?`, k.String()).Scan(&cur, &curAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, err
	default:
		seen := parseTS(curAt)
		if at.Before(seen) || at.Equal(seen) && cur == "closed" && state != "closed" {
			return false, nil
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pulls (key, state, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`, k.String(), state, ts(at)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// QueueStats implements store.QueueStats.
func (s *Store) QueueStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT count(*), min(received_at) FROM deliveries WHERE state = 'queued'`).Scan(&n, &oldest)
	if !oldest.Valid {
		return n, time.Time{}, err
	}
	return n, parseTS(oldest.String), err
}
