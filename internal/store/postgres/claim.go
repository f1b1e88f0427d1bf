package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/store"
)

var _ store.Claimer = (*Store)(nil)

// Claim implements store.Claimer: FOR UPDATE SKIP LOCKED, so replicas
// claiming at once take different deliveries without waiting on each
// other. Claims are timed by the database's clock, never a replica's.
// With the oldest deliveries come the others queued for the same subject
// (pull request): one replica then sees a burst of pushes at once, and
// carries out only the newest instead of one run per push.
func (s *Store) Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]store.Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `WITH heads AS (
			SELECT seq, subject FROM prenv_deliveries WHERE state = 'queued' AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED),
		mates AS (
			SELECT seq FROM prenv_deliveries WHERE state = 'queued' AND (claimed_until IS NULL OR claimed_until < now())
			AND subject <> '' AND subject IN (SELECT subject FROM heads) FOR UPDATE SKIP LOCKED)
		UPDATE prenv_deliveries d SET claimed_by = $1, claimed_until = now() + make_interval(secs => $3), attempts = d.attempts + 1
		WHERE d.seq IN (SELECT seq FROM heads UNION SELECT seq FROM mates)
		RETURNING d.seq, d.id, d.event, d.body, d.received_at, d.state, d.note, d.attempts, d.subject`, owner, limit, ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	defer rows.Close()
	type claimed struct {
		seq int64
		d   store.Delivery
	}
	var got []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.seq, &c.d.ID, &c.d.Event, &c.d.Body, &c.d.ReceivedAt, &c.d.State, &c.d.Note, &c.d.Attempts, &c.d.Subject); err != nil {
			return nil, err
		}
		c.d.ReceivedAt = c.d.ReceivedAt.UTC()
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Slice(got, func(i, j int) bool { return got[i].seq < got[j].seq })
	out := make([]store.Delivery, len(got))
	for i, c := range got {
		out[i] = c.d
	}
	return out, nil
}

// Renew implements store.Claimer.
func (s *Store) Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `UPDATE prenv_deliveries SET claimed_until = now() + make_interval(secs => $3)
		WHERE claimed_by = $1 AND id = ANY($2) AND state = 'queued' RETURNING id`, owner, ids, ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("renew the claims on webhook deliveries: %w", err)
	}
	defer rows.Close()
	held := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		held[id] = true
	}
	var lost []string
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, rows.Err()
}

// FinishClaimed implements store.Claimer.
func (s *Store) FinishClaimed(ctx context.Context, owner, id, state, note string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE prenv_deliveries SET state = $1, note = $2, claimed_by = '', claimed_until = NULL
		WHERE id = $3 AND claimed_by = $4`, state, note, id, owner)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ObserveAndRequest implements store.Claimer: one transaction under the
// pull request's own transaction lock.
func (s *Store) ObserveAndRequest(ctx context.Context, k env.Key, state string, at time.Time, name, commit string, down bool) (bool, int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "prenv-pull:"+k.String()); err != nil {
		return false, 0, err
	}
	news, err := observe(ctx, tx, k, state, at)
	if err != nil || !news {
		return false, 0, err
	}
	seq, err := request(ctx, tx, s.now().UTC(), k, name, commit, down)
	if err != nil {
		return false, 0, err
	}
	return true, seq, tx.Commit()
}
