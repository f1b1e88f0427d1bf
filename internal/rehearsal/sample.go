package rehearsal

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// sampleQuery reads, in one round trip, every session of the database but
// the watcher's that is busy or holds a lock, with its granted locks on user
// relations (oid >= 16384, FirstNormalObjectId: no catalog) and its
// ungranted locks of any kind with the sessions blocking them. An idle
// session holds no relation lock, so leaving idle ones out loses nothing.
// pg_blocking_pids takes the lock manager's locks, so it runs only for the
// rare ungranted lock.
const sampleQuery = `
SELECT now(), a.pid, coalesce(a.backend_type, ''), coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
       a.xact_start, coalesce(a.query, ''),
       l.locktype, l.relation, l.mode, l.granted, %s,
       CASE WHEN NOT l.granted THEN pg_blocking_pids(a.pid) END
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid
     AND (NOT l.granted OR (l.locktype = 'relation' AND l.relation >= 16384 AND l.database = a.datid))
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND (l.pid IS NOT NULL OR a.state IS DISTINCT FROM 'idle')`

// recorder accumulates samples. The sampling goroutine writes it; Finish
// reads it after the goroutine has ended.
type recorder struct {
	interval time.Duration
	query    string
	app      string
	user     string
	since    time.Time // the server's clock at Begin

	mu       sync.Mutex // guards samples and busy, read by progress while sampling
	samples  int
	times    []time.Time // the server's clock at each sample
	held     []heldLock
	txs      map[txKey]*txObs
	waits    map[waitKey]*waitObs
	waitList []waitKey // first-seen order
	texts    []string
	textID   map[string]int32
	migTexts []int32 // texts seen from the migration's sessions, first-seen order
	migSeen  map[int32]bool
	errors   int
	lastErr  error
	busy     time.Duration // time spent in sample queries: the watching's own cost
}

// heldLock is a granted relation lock of the migration's seen at one sample.
type heldLock struct {
	sample int32
	oid    uint32
	mode   lockMode
	pid    int32
	xact   int64 // the transaction's start (UnixNano): with pid, which transaction holds it
	text   int32
}

type txKey struct {
	pid   int32
	start time.Time
}

// txObs is one transaction of the migration's sessions.
type txObs struct {
	last    time.Time        // the last sample that saw it
	written map[uint32]int32 // relations it held ROW EXCLUSIVE on -> its statement then
	order   []uint32         // written's keys, first-seen order
}

type waitKey struct {
	waiter, blocker int32
	locktype        string
	oid             uint32
	mode            lockMode
	modeName        string
}

type waitObs struct {
	first, last time.Time
	start       time.Time // pg_locks.waitstart when known
	waiter      session
	blocker     session
}

// session describes a backend in a Wait.
type session struct {
	pid       int32
	app, user string
	kind      string // backend_type
	text      int32  // -1 unknown
}

type sampleRow struct {
	at        time.Time
	pid       int32
	kind      string
	app, user string
	xact      *time.Time
	query     string
	locktype  *string
	relation  *uint32
	mode      *string
	granted   *bool
	waitStart *time.Time
	blockers  []int32
}

func newRecorder(opts Options, version int, since time.Time) *recorder {
	waitstart := "l.waitstart"
	if version < 140000 {
		waitstart = "NULL::timestamptz"
	}
	return &recorder{
		interval: opts.Interval, app: opts.ApplicationName, user: opts.User, since: since,
		query: fmt.Sprintf(sampleQuery, waitstart),
		txs:   map[txKey]*txObs{}, waits: map[waitKey]*waitObs{},
		textID: map[string]int32{}, migSeen: map[int32]bool{},
	}
}

// isMigration says whether a client session with this application_name and
// role is the migration's.
func (r *recorder) isMigration(app, user string) bool {
	if app == WatcherApplicationName {
		return false
	}
	return (r.app == "" || app == r.app) && (r.user == "" || user == r.user)
}

func (r *recorder) text(s string) int32 {
	if s == "" || s == "<insufficient privilege>" {
		return -1
	}
	if id, ok := r.textID[s]; ok {
		return id
	}
	id := int32(len(r.texts))
	r.texts = append(r.texts, s)
	r.textID[s] = id
	return id
}

func (r *recorder) textOf(id int32) string {
	if id < 0 || int(id) >= len(r.texts) {
		return ""
	}
	return r.texts[id]
}

func (r *recorder) failed(err error) {
	r.errors++
	r.lastErr = err
}

// sample reads pg_locks and pg_stat_activity once and records what the
// migration's sessions hold, which of their transactions write, and who
// waits on whom.
func (r *recorder) sample(ctx context.Context, conn *pgx.Conn) {
	began := time.Now()
	defer func() {
		r.mu.Lock()
		r.busy += time.Since(began)
		r.mu.Unlock()
	}()
	rows, err := conn.Query(ctx, r.query)
	if err != nil {
		r.failed(err)
		return
	}
	var got []sampleRow
	for rows.Next() {
		var s sampleRow
		if err := rows.Scan(&s.at, &s.pid, &s.kind, &s.app, &s.user, &s.xact, &s.query,
			&s.locktype, &s.relation, &s.mode, &s.granted, &s.waitStart, &s.blockers); err != nil {
			rows.Close()
			r.failed(err)
			return
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		r.failed(err)
		return
	}
	var at time.Time
	if len(got) > 0 {
		at = got[0].at
	} else if err := conn.QueryRow(ctx, `SELECT now()`).Scan(&at); err != nil {
		r.failed(err)
		return
	}

	sessions := map[int32]session{}
	for _, s := range got {
		sessions[s.pid] = session{pid: s.pid, app: s.app, user: s.user, kind: s.kind, text: r.text(s.query)}
	}
	// A blocker may be idle (a session-level advisory lock) or in another
	// backend type: look those up, only when someone waits.
	var unknown []int32
	for _, s := range got {
		for _, b := range s.blockers {
			if _, ok := sessions[b]; !ok {
				unknown = append(unknown, b)
			}
		}
	}
	if len(unknown) > 0 {
		if err := r.lookup(ctx, conn, unknown, sessions); err != nil {
			r.failed(err)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	idx := int32(len(r.times))
	r.times = append(r.times, at)
	r.samples++
	for _, s := range got {
		me := sessions[s.pid]
		mine := s.kind == "client backend" && r.isMigration(s.app, s.user)
		if mine && me.text >= 0 && !r.migSeen[me.text] {
			r.migSeen[me.text] = true
			r.migTexts = append(r.migTexts, me.text)
		}
		if s.locktype == nil || s.granted == nil {
			continue
		}
		if *s.granted {
			if !mine || s.relation == nil {
				continue
			}
			mode := parseLockMode(*s.mode)
			h := heldLock{sample: idx, oid: *s.relation, mode: mode, pid: s.pid, text: me.text}
			if s.xact != nil {
				h.xact = s.xact.UnixNano()
			}
			r.held = append(r.held, h)
			if mode == rowExclusive && s.xact != nil {
				k := txKey{s.pid, *s.xact}
				tx := r.txs[k]
				if tx == nil {
					tx = &txObs{written: map[uint32]int32{}}
					r.txs[k] = tx
				}
				if _, ok := tx.written[*s.relation]; !ok {
					tx.written[*s.relation] = me.text
					tx.order = append(tx.order, *s.relation)
				}
			}
			continue
		}
		for _, b := range s.blockers {
			bs, ok := sessions[b]
			if !ok {
				bs = session{pid: b, text: -1}
			}
			blockerMine := bs.kind == "client backend" && r.isMigration(bs.app, bs.user)
			if !mine && !blockerMine || bs.app == WatcherApplicationName {
				// A wait on the watcher's own queries (CREATE INDEX
				// CONCURRENTLY waits out every open snapshot, the
				// watcher's a few milliseconds included) is the watching's
				// artifact, not the migration's behaviour.
				continue
			}
			k := waitKey{waiter: s.pid, blocker: b, locktype: *s.locktype, modeName: *s.mode, mode: parseLockMode(*s.mode)}
			if s.relation != nil {
				k.oid = *s.relation
			}
			w := r.waits[k]
			if w == nil {
				w = &waitObs{first: at, waiter: me, blocker: bs}
				if s.waitStart != nil {
					w.start = *s.waitStart
				}
				r.waits[k] = w
				r.waitList = append(r.waitList, k)
			}
			w.last = at
			if w.waiter.text < 0 {
				w.waiter.text = me.text
			}
			if w.blocker.text < 0 {
				w.blocker.text = bs.text
			}
		}
	}
	// Every transaction of the migration's seen writing is seen again
	// while it lasts: its duration runs to its last sample.
	for _, s := range got {
		if s.xact == nil {
			continue
		}
		if tx := r.txs[txKey{s.pid, *s.xact}]; tx != nil {
			tx.last = at
		}
	}
}

// lookup adds the sessions of pids to sessions.
func (r *recorder) lookup(ctx context.Context, conn *pgx.Conn, pids []int32, sessions map[int32]session) error {
	rows, err := conn.Query(ctx, `
SELECT pid, coalesce(backend_type, ''), coalesce(application_name, ''), coalesce(usename::text, ''), coalesce(query, '')
FROM pg_stat_activity WHERE pid = ANY($1)`, pids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s session
		var q string
		if err := rows.Scan(&s.pid, &s.kind, &s.app, &s.user, &q); err != nil {
			return err
		}
		s.text = r.text(q)
		sessions[s.pid] = s
	}
	return rows.Err()
}

// progress is how many samples have been taken so far and how long they
// took.
func (r *recorder) progress() (int, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples, r.busy
}
