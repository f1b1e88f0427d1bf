package postgres

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

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
//
// A claim lasts ttl, and no longer than its replica is present (see
// attend): the claims of a replica killed outright are taken over as soon
// as the server has closed its connection, not a ttl later.
func (s *Store) Claim(ctx context.Context, owner string, limit int, ttl time.Duration) ([]store.Delivery, error) {
	s.attend(ctx, owner)
	rows, err := s.db.QueryContext(ctx, `WITH `+presentCTE+`, heads AS (
			SELECT seq, subject FROM prenv_deliveries WHERE state = 'queued' AND (`+claimFree+`)
			ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED),
		mates AS (
			SELECT seq FROM prenv_deliveries WHERE state = 'queued' AND (`+claimFree+`)
			AND subject <> '' AND subject IN (SELECT subject FROM heads) FOR UPDATE SKIP LOCKED)
		UPDATE prenv_deliveries d SET claimed_by = $1, claimed_until = now() + make_interval(secs => $3), attempts = d.attempts + 1,
			claimed_present = EXISTS (`+presenceOf("$1::text")+`)
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

// claimFree is the condition under which a queued delivery may be
// claimed: no one claims it, its claim ran out, or its claimer's presence
// lock is gone (the server closed the session of a replica that died).
var claimFree = `claimed_until IS NULL OR claimed_until < now() OR claimed_present AND NOT EXISTS (
	SELECT 1 FROM present WHERE present.k = hashtextextended('prenv-replica:' || claimed_by, 0))`

// presentCTE is the set of presence locks held now, read once per
// statement (pg_locks is the lock table's copy, not an index).
const presentCTE = `present AS MATERIALIZED (
	SELECT (classid::bigint << 32) | objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// presenceOf is a query of the presence lock of the claim owner that
// the SQL expression owner names.
func presenceOf(owner string) string {
	return `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('prenv-replica:' || ` + owner + `, 0)`
}

// attend makes sure owner's presence lock is held, on a connection of its
// own (with keepalives, as an environment's lock), taking it again if that
// connection was lost. Claims record whether it is held, as the server
// sees it, when they are made or renewed. While it is held, other
// replicas leave owner's claims alone until they run out; once the server
// closes the connection (the process was killed, its node lost) they take
// them at once. Without it, claims last their time only.
func (s *Store) attend(ctx context.Context, owner string) {
	s.presentMu.Lock()
	defer s.presentMu.Unlock()
	if c := s.present[owner]; c != nil {
		// Generous: a ping that times out closes the connection, and
		// with it the presence, which a slow moment must not cost.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		err := c.Ping(pctx)
		cancel()
		if err == nil {
			return
		}
		c.Close(context.Background())
		delete(s.present, owner)
	}
	c, err := s.lockConn(ctx, "prenv presence")
	if err != nil {
		// Its claims, marked absent, last their time only; the next
		// claim or renewal tries again.
		return
	}
	var got bool
	if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, "prenv-replica:"+owner).Scan(&got); err != nil || !got {
		// Taken already: another process calls itself owner too, and
		// its presence is not this one's.
		c.Close(context.Background())
		return
	}
	if s.present == nil {
		s.present = map[string]*pgx.Conn{}
	}
	s.present[owner] = c
}

// absent lets every presence lock go: the claims stay until they run out
// or are finished.
func (s *Store) absent() {
	s.presentMu.Lock()
	defer s.presentMu.Unlock()
	for owner, c := range s.present {
		c.Close(context.Background())
		delete(s.present, owner)
	}
}

// Renew implements store.Claimer: lost are those of ids another replica
// claims now (a delivery finished or handed back meanwhile is not lost).
func (s *Store) Renew(ctx context.Context, owner string, ids []string, ttl time.Duration) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	s.attend(ctx, owner)
	if _, err := s.db.ExecContext(ctx, `UPDATE prenv_deliveries SET claimed_until = now() + make_interval(secs => $3),
			claimed_present = EXISTS (`+presenceOf("$1::text")+`)
		WHERE claimed_by = $1 AND id = ANY($2) AND state = 'queued'`, owner, ids, ttl.Seconds()); err != nil {
		return nil, fmt.Errorf("renew the claims on webhook deliveries: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM prenv_deliveries WHERE id = ANY($2) AND state = 'queued' AND claimed_by NOT IN ('', $1)
		ORDER BY seq`, owner, ids)
	if err != nil {
		return nil, fmt.Errorf("renew the claims on webhook deliveries: %w", err)
	}
	defer rows.Close()
	var lost []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		lost = append(lost, id)
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
