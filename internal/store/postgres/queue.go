package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

// Enqueue implements store.Queue.
func (s *Store) Enqueue(ctx context.Context, d store.Delivery) (bool, error) {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO prenv_deliveries (id, event, body, received_at, subject) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.Event, d.Body, d.ReceivedAt.UTC(), d.Subject)
	if err != nil {
		return false, fmt.Errorf("queue delivery %s: %w", d.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

const deliveryCols = `id, event, body, received_at, state, note, attempts`

func scanDelivery(r interface{ Scan(...any) error }) (store.Delivery, error) {
	var d store.Delivery
	err := r.Scan(&d.ID, &d.Event, &d.Body, &d.ReceivedAt, &d.State, &d.Note, &d.Attempts)
	d.ReceivedAt = d.ReceivedAt.UTC()
	return d, err
}

func (s *Store) deliveries(ctx context.Context, query string, args ...any) ([]store.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
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

// Queued implements store.Queue.
func (s *Store) Queued(ctx context.Context, limit int) ([]store.Delivery, error) {
	return s.deliveries(ctx, `SELECT `+deliveryCols+` FROM prenv_deliveries WHERE state = 'queued' ORDER BY seq LIMIT $1`, limit)
}

// Delivery implements store.Queue.
func (s *Store) Delivery(ctx context.Context, id string) (store.Delivery, error) {
	d, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryCols+` FROM prenv_deliveries WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, store.ErrNotFound
	}
	return d, err
}

// Finish implements store.Queue; the delivery's claim ends with it.
func (s *Store) Finish(ctx context.Context, id, state, note string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE prenv_deliveries SET state = $1, note = $2, attempts = attempts + 1, claimed_by = '', claimed_until = NULL WHERE id = $3`,
		state, note, id)
	return err
}

// ObservePull implements store.Queue in one statement: the newer state
// wins, and a close is not undone by an open at the same time.
func (s *Store) ObservePull(ctx context.Context, k env.Key, state string, at time.Time) (bool, error) {
	return observe(ctx, s.db, k, state, at)
}

func observe(ctx context.Context, q querier, k env.Key, state string, at time.Time) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, `INSERT INTO prenv_pulls (key, state, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
		WHERE NOT (EXCLUDED.updated_at < prenv_pulls.updated_at
			OR EXCLUDED.updated_at = prenv_pulls.updated_at AND prenv_pulls.state = 'closed' AND EXCLUDED.state <> 'closed')
		RETURNING 1`, k.String(), state, at.UTC()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// QueueStats implements store.QueueStats.
func (s *Store) QueueStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT count(*), min(received_at) FROM prenv_deliveries WHERE state = 'queued'`).Scan(&n, &oldest)
	return n, oldest.Time.UTC(), err
}
