package rehearsal

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what a migration did, as a Watch saw it. It is
// JSON-serializable for the caller's store.
type Report struct {
	Seconds float64 `json:"seconds"` // from the end of Begin to the call of Finish
	Golden  Golden  `json:"golden,omitzero"`
	Failed  string  `json:"failed,omitempty"` // the migration's error, when it failed
	// DiffBase is what SchemaDiff starts from: DiffFromGolden when
	// Options.Baseline was given, else DiffFromBegin.
	DiffBase   DiffBase   `json:"diff_base"`
	SchemaDiff []Change   `json:"schema_diff,omitempty"`
	Rows       []RowDelta `json:"rows,omitempty"`
	Locks      []LockHold `json:"locks,omitempty"`
	Waits      []Wait     `json:"waits,omitempty"`
	Rewrites   []Rewrite  `json:"rewrites,omitempty"`
	Warnings   []Warning  `json:"warnings,omitempty"`
	// Earlier are the warnings of earlier migrations on the same database
	// (earlier commits of the pull request), set by the caller: a push that
	// migrates nothing new does not make them go away. They are gone when
	// the database is cloned again.
	Earlier  []Earlier `json:"earlier,omitempty"`
	Notes    []string  `json:"notes,omitempty"` // what limited the measurement, if anything
	Interval float64   `json:"interval"`        // seconds between samples: the precision of Locks and Waits
}

// DiffBase is what a report's SchemaDiff starts from.
type DiffBase string

// The bases of a SchemaDiff.
const (
	DiffFromGolden DiffBase = "golden" // Options.Baseline, the golden generation's schema
	DiffFromBegin  DiffBase = "begin"  // the schema Begin read
)

// RowDelta is how many rows the migration wrote to a table, from the
// table's pg_stat_user_tables counters before and after. Writes rolled back
// count (PostgreSQL counts them), and so do writes by other sessions during
// the migration; a table the migration dropped has no counters left.
type RowDelta struct {
	Table    string `json:"table"`
	Inserted int64  `json:"inserted"`
	Updated  int64  `json:"updated"`
	Deleted  int64  `json:"deleted"`
}

// LockHold is a lock mode the migration's sessions held on a table, and for
// how long one transaction held it: from the first to the last sample that
// saw it, plus one interval (the midpoint of what the samples allow; the
// true hold is within an interval of it). A lock on one of the table's
// existing indexes counts as the table's (the planner locks every index of
// a table it plans a query on); a lock on an index the migration is
// creating does not (nobody else sees it before it commits). A lock held
// for less than an interval may go unseen, and so may its statement.
//
// Report.Locks has, for each table, the strongest mode held, then any
// weaker mode held longer than every stronger one by more than two
// intervals (a backfill's ROW EXCLUSIVE for minutes after an ADD COLUMN's
// brief ACCESS EXCLUSIVE); tables with the strongest locks first. Rows and
// Bytes are the table's before the migration (after it, for a table it
// created).
type LockHold struct {
	Table     string  `json:"table"`
	Mode      string  `json:"mode"` // "ACCESS EXCLUSIVE"
	Seconds   float64 `json:"seconds"`
	Rows      int64   `json:"rows"`
	Bytes     int64   `json:"bytes"`
	Statement string  `json:"statement,omitempty"` // the session's query when the hold was first seen
}

// Wait is one session waiting for a lock another held, where one of the
// two is the migration's: the application waiting on the migration, or
// the migration on someone else.
type Wait struct {
	Waiter  Session `json:"waiter"`
	Blocker Session `json:"blocker"`
	Table   string  `json:"table,omitempty"` // for a relation lock (or a row's, when PostgreSQL says)
	Lock    string  `json:"lock"`            // pg_locks.locktype: relation, transactionid (a row), advisory, ...
	Mode    string  `json:"mode"`            // the mode waited for
	// Seconds is from pg_locks.waitstart to the last sample that saw the
	// wait, plus half an interval (from the first sample plus one interval
	// before PostgreSQL 14).
	Seconds float64 `json:"seconds"`
}

// Session is a database session in a Wait.
type Session struct {
	Pid         int32  `json:"pid"`
	Application string `json:"application,omitempty"`
	Migration   bool   `json:"migration"`
	Query       string `json:"query,omitempty"` // its query when first seen waiting or blocking; empty when not visible to the role
}

// Rewrite is a table, materialized view or index whose storage the
// migration replaced (its relfilenode changed), or an index it dropped and
// created again under the same name. A table it created is not a rewrite.
type Rewrite struct {
	Kind        Kind   `json:"kind"` // table, view (materialized) or index
	Name        string `json:"name"`
	Table       string `json:"table,omitempty"` // an index's table
	BytesBefore int64  `json:"bytes_before"`
	BytesAfter  int64  `json:"bytes_after"`
}

// Code names the rule behind a Warning.
type Code string

// The warnings' codes; see Warning.
const (
	AccessExclusiveOverBudget Code = "access-exclusive-over-budget"
	TableRewrite              Code = "table-rewrite"
	IndexNotConcurrent        Code = "index-not-concurrent"
	ValidateOnLargeTable      Code = "validate-on-large-table"
	DataDropped               Code = "data-dropped"
	LongBackfill              Code = "long-backfill"
)

// Earlier is a warning of an earlier migration on the same database.
type Earlier struct {
	Commit string `json:"commit"`
	Warning
}

// AllWarnings are the report's warnings and the earlier ones.
func (r Report) AllWarnings() []Warning {
	out := append([]Warning(nil), r.Warnings...)
	for _, e := range r.Earlier {
		out = append(out, e.Warning)
	}
	return out
}

// Codes returns every warning's code, in the order of the rules.
func Codes() []Code {
	return []Code{AccessExclusiveOverBudget, TableRewrite, IndexNotConcurrent, ValidateOnLargeTable, DataDropped, LongBackfill}
}

// Warning is something the migration did that would hurt production.
// Large means more rows than Options.LargeTableRows before the migration
// (pg_class.reltuples, else n_live_tup). The rules:
//
//   - access-exclusive-over-budget: the migration's sessions held ACCESS
//     EXCLUSIVE on a large table (one that existed before) in one
//     transaction for longer than Options.LockBudget, measured as
//     LockHold.Seconds.
//   - table-rewrite: a table that had rows had its storage replaced
//     (relfilenode changed: ALTER COLUMN TYPE, SET LOGGED, VACUUM FULL,
//     CLUSTER, a volatile default...), at any size.
//   - index-not-concurrent: an index added on a large table was built
//     without CONCURRENTLY: the statement that created it was seen without
//     CONCURRENTLY, or, when no statement naming it was seen, the
//     migration was seen holding SHARE (plain CREATE INDEX's lock) on the
//     table. A build shorter than one interval may go unseen.
//   - validate-on-large-table: on a large table, a foreign key or check
//     constraint was added already validated (without NOT VALID), or a
//     column was changed to NOT NULL: both read every row under a lock
//     that blocks writes.
//   - data-dropped: a column was dropped from a table that had rows (and
//     pg_stats did not say the column was all NULL), a table that had rows
//     was dropped, or a table that had rows was left empty with new
//     storage (TRUNCATE).
//   - long-backfill: one transaction of the migration's held ROW EXCLUSIVE
//     on a table that existed before (it inserted, updated or deleted rows
//     there; a table it created is nobody else's until it commits) whose
//     counters show rows written, and lasted longer than
//     Options.LongBackfill from its start (pg_stat_activity.xact_start) to
//     the last sample that saw it. Any size: the time is the cost.
//
// Warnings judge this migration's own changes (the schema read by Begin to
// the schema after), also when SchemaDiff starts from the golden
// generation. Statement is the statement responsible as the samples saw
// it (pg_stat_activity.query, the one statement of it that names the
// object when the client sent several at once), shortened to 200
// characters; empty when nothing naming it ran long enough to be sampled.
type Warning struct {
	Code      Code   `json:"code"`
	Table     string `json:"table"`
	Message   string `json:"message"`
	Statement string `json:"statement,omitempty"`
}

// build makes the report from the snapshots and samples.
func build(opts Options, before, after snapshot, rec *recorder, elapsed time.Duration, migrateErr error) Report {
	r := Report{Seconds: elapsed.Seconds(), Golden: opts.Golden, DiffBase: DiffFromBegin, Interval: opts.Interval.Seconds()}
	if migrateErr != nil {
		r.Failed = migrateErr.Error()
	}
	base := before.schema
	if opts.Baseline != nil {
		base, r.DiffBase = *opts.Baseline, DiffFromGolden
	}
	r.SchemaDiff = Diff(base, after.schema)

	b := &builder{opts: opts, before: before, after: after, rec: rec}
	b.indexTables()
	r.Rows = b.rows()
	r.Locks = b.locks()
	r.Waits = b.waitList()
	r.Rewrites = b.rewrites()
	r.Warnings = b.warnings(Diff(before.schema, after.schema), r.Locks, r.Rows)

	if rec.errors > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d samples of pg_locks failed (last: %v): locks and waits may be missing", rec.errors, rec.errors+rec.samples, rec.lastErr))
	}
	if before.sizesEstimated || after.sizesEstimated {
		r.Notes = append(r.Notes, "a table was locked when sizes were read: sizes are estimates from pg_class.relpages")
	}
	if r.Failed != "" && len(r.Rows) > 0 {
		r.Notes = append(r.Notes, "the migration failed: rows written include those of statements that were rolled back")
	}
	return r
}

// builder holds what the report's parts share.
type builder struct {
	opts          Options
	before, after snapshot
	rec           *recorder
	byName        map[string]rel                // before's tables by qualified name
	lockModes     map[uint32]map[lockMode]int32 // table -> modes seen -> statement when first seen
}

func (b *builder) indexTables() {
	b.byName = map[string]rel{}
	for _, x := range b.before.rels {
		if x.kind != 'i' {
			b.byName[x.name] = x
		}
	}
}

// tableOf resolves a locked relation to its table (an index to its table),
// after the migration if it still exists, else before. A relation created
// and dropped by the migration is not found.
func (b *builder) tableOf(oid uint32) (rel, bool) {
	x, ok := b.after.rels[oid]
	if !ok {
		x, ok = b.before.rels[oid]
	}
	if !ok {
		return rel{}, false
	}
	if x.kind == 'i' {
		return b.tableOf(x.table)
	}
	return x, true
}

// sizeOf returns a table's rows and bytes before the migration, or after
// it for a table the migration created.
func (b *builder) sizeOf(t rel) (int64, int64) {
	if x, ok := b.before.rels[t.oid]; ok {
		return x.rows, x.bytes
	}
	return t.rows, t.bytes
}

func (b *builder) large(rows int64) bool { return rows > b.opts.LargeTableRows }

func (b *builder) rows() []RowDelta {
	var out []RowDelta
	for oid, a := range b.after.rels {
		if a.kind == 'i' {
			continue
		}
		x := b.before.rels[oid]
		d := RowDelta{Table: display(a.name), Inserted: a.ins - x.ins, Updated: a.upd - x.upd, Deleted: a.del - x.del}
		if d.Inserted != 0 || d.Updated != 0 || d.Deleted != 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out
}

// locks folds the samples into LockHolds: for each table the strongest
// mode held, and each weaker mode held longer than every stronger one (a
// backfill's ROW EXCLUSIVE for minutes after an ADD COLUMN's brief ACCESS
// EXCLUSIVE).
func (b *builder) locks() []LockHold {
	rec := b.rec
	// A hold is one transaction's: locks go at its end, and whoever waited
	// gets through before the next transaction takes them again.
	type key struct {
		table uint32
		mode  lockMode
		pid   int32
		xact  int64
	}
	samples := map[key]map[int32]int32{} // -> sample -> statement
	b.lockModes = map[uint32]map[lockMode]int32{}
	for _, h := range rec.held {
		t, ok := b.tableOf(h.oid)
		if !ok {
			continue
		}
		// An index the migration is creating is locked ACCESS EXCLUSIVE by
		// it, but no other session sees it before it commits: its lock
		// blocks nobody. An existing index's lock blocks its table's
		// queries (the planner locks every index of a table it plans for).
		if _, existed := b.before.rels[h.oid]; !existed && h.oid != t.oid {
			continue
		}
		k := key{t.oid, h.mode, h.pid, h.xact}
		if samples[k] == nil {
			samples[k] = map[int32]int32{}
		}
		if _, ok := samples[k][h.sample]; !ok {
			samples[k][h.sample] = h.text
		}
		if b.lockModes[t.oid] == nil {
			b.lockModes[t.oid] = map[lockMode]int32{}
		}
		if _, ok := b.lockModes[t.oid][h.mode]; !ok {
			b.lockModes[t.oid][h.mode] = h.text
		}
	}
	type hold struct {
		mode lockMode
		d    time.Duration
		text int32
	}
	longest := map[key]hold{} // by table and mode: the longest hold
	for k, seen := range samples {
		idx := make([]int32, 0, len(seen))
		for i := range seen {
			idx = append(idx, i)
		}
		sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
		// The longest run of consecutive samples that saw the mode.
		best := hold{mode: k.mode, text: -1}
		for i := 0; i < len(idx); {
			j := i
			for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
				j++
			}
			if d := rec.times[idx[j]].Sub(rec.times[idx[i]]) + rec.interval; d > best.d {
				best.d, best.text = d, seen[idx[i]]
			}
			i = j + 1
		}
		tm := key{table: k.table, mode: k.mode}
		if cur, ok := longest[tm]; !ok || best.d > cur.d {
			longest[tm] = best
		}
	}
	perTable := map[uint32][]hold{}
	for k, h := range longest {
		perTable[k.table] = append(perTable[k.table], h)
	}
	type tableHolds struct {
		t     rel
		holds []hold
	}
	var tables []tableHolds
	for oid, holds := range perTable {
		sort.Slice(holds, func(i, j int) bool { return holds[i].mode > holds[j].mode })
		// A weaker mode is worth a line only when held longer than the
		// stronger ones by more than the samples' precision.
		var keep []hold
		for _, h := range holds {
			if len(keep) == 0 || h.d > keep[len(keep)-1].d+2*rec.interval {
				keep = append(keep, h)
			}
		}
		t, _ := b.tableOf(oid)
		tables = append(tables, tableHolds{t, keep})
	}
	sort.Slice(tables, func(i, j int) bool {
		if mi, mj := tables[i].holds[0].mode, tables[j].holds[0].mode; mi != mj {
			return mi > mj
		}
		return tables[i].t.name < tables[j].t.name
	})
	var out []LockHold
	for _, th := range tables {
		rows, bytes := b.sizeOf(th.t)
		for _, h := range th.holds {
			out = append(out, LockHold{Table: display(th.t.name), Mode: h.mode.String(), Seconds: h.d.Seconds(), Rows: rows, Bytes: bytes,
				Statement: b.statementIn(rec.textOf(h.text), tableNeedle(th.t.name))})
		}
	}
	return out
}

func (b *builder) waitList() []Wait {
	rec := b.rec
	var out []Wait
	for _, k := range rec.waitList {
		w := rec.waits[k]
		start, pad := w.first, rec.interval
		if !w.start.IsZero() {
			start, pad = w.start, rec.interval/2
		}
		x := Wait{
			Waiter: b.session(w.waiter), Blocker: b.session(w.blocker),
			Lock: k.locktype, Mode: k.mode.String(), Seconds: (w.last.Sub(start) + pad).Seconds(),
		}
		if x.Mode == "" {
			x.Mode = k.modeName
		}
		if k.oid != 0 {
			if t, ok := b.tableOf(k.oid); ok {
				x.Table = display(t.name)
			}
		}
		out = append(out, x)
	}
	return out
}

func (b *builder) session(s session) Session {
	return Session{Pid: s.pid, Application: s.app, Migration: s.kind == "client backend" && b.rec.isMigration(s.app, s.user),
		Query: shorten(b.rec.textOf(s.text))}
}

func (b *builder) rewrites() []Rewrite {
	var out []Rewrite
	afterIndexes := map[string]rel{}
	for _, a := range b.after.rels {
		if a.kind == 'i' {
			afterIndexes[a.name] = a
		}
	}
	for oid, x := range b.before.rels {
		if x.kind != 'r' && x.kind != 'm' && x.kind != 'i' {
			continue
		}
		a, ok := b.after.rels[oid]
		if !ok && x.kind == 'i' {
			// Dropped and made again under its name, as ALTER COLUMN TYPE
			// does to the indexes on the column.
			if y, found := afterIndexes[x.name]; found {
				if _, existed := b.before.rels[y.oid]; !existed {
					a, ok = y, true
				}
			}
		}
		if !ok || a.filenode == x.filenode || a.filenode == 0 || x.filenode == 0 {
			continue
		}
		w := Rewrite{Kind: KindTable, Name: display(a.name), BytesBefore: x.bytes, BytesAfter: a.bytes}
		switch x.kind {
		case 'm':
			w.Kind = KindView
		case 'i':
			w.Kind = KindIndex
			if t, ok := b.tableOf(a.table); ok {
				w.Table = display(t.name)
			}
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i].Table, out[j].Table
		if ti == "" {
			ti = out[i].Name
		}
		if tj == "" {
			tj = out[j].Name
		}
		if ti != tj {
			return ti < tj
		}
		if (out[i].Kind == KindIndex) != (out[j].Kind == KindIndex) {
			return out[j].Kind == KindIndex
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// statementIn returns the statement of query that mentions every needle,
// else query itself when it is a single statement, shortened.
func (b *builder) statementIn(query string, needles ...string) string {
	if query == "" {
		return ""
	}
	if s := statementMatching(query, needles...); s != "" {
		return shorten(s)
	}
	if len(splitStatements(query)) == 1 {
		return shorten(query)
	}
	return ""
}

// statementNaming returns the first statement the migration's sessions were
// seen running that mentions every needle.
func (b *builder) statementNaming(needles ...string) string {
	for _, id := range b.rec.migTexts {
		if s := statementMatching(b.rec.textOf(id), needles...); s != "" {
			return shorten(s)
		}
	}
	return ""
}

// tableNeedle is the table's name as a statement would mention it.
func tableNeedle(qualified string) string {
	_, name, _ := strings.Cut(qualified, ".")
	return name
}

func (b *builder) warnings(own []Change, locks []LockHold, rows []RowDelta) []Warning {
	var out []Warning
	add := func(code Code, table, stmt, format string, args ...any) {
		out = append(out, Warning{Code: code, Table: table, Message: fmt.Sprintf(format, args...), Statement: stmt})
	}
	// beforeRows is a table's row count before the migration, by its
	// display name; false for a table the migration created.
	beforeRows := func(table string) (int64, bool) {
		x, ok := b.byName[b.qualified(table)]
		return x.rows, ok
	}

	// access-exclusive-over-budget
	for _, l := range locks {
		if _, existed := b.byName[b.qualified(l.Table)]; !existed || l.Mode != accessExclusive.String() || !b.large(l.Rows) || l.Seconds <= b.opts.LockBudget.Seconds() {
			continue
		}
		add(AccessExclusiveOverBudget, l.Table, l.Statement,
			"ACCESS EXCLUSIVE lock on %s held for %s, over the %s budget: in production every read and write of %s (%s rows) waits that long. Split the change, or use a form that takes a weaker lock.",
			l.Table, seconds(l.Seconds), seconds(b.opts.LockBudget.Seconds()), l.Table, count(l.Rows))
	}

	// table-rewrite, and data-dropped for a table emptied with new storage
	for oid, x := range b.before.rels {
		a, ok := b.after.rels[oid]
		if x.kind != 'r' || !ok || a.filenode == x.filenode || x.rows <= 0 {
			continue
		}
		table := display(a.name)
		stmt := b.lockStatement(oid, accessExclusive)
		if a.bytes == 0 {
			add(DataDropped, table, stmt, "%s was emptied (%s rows before, none after): its data is gone and cannot be rolled back.", table, count(x.rows))
			continue
		}
		add(TableRewrite, table, stmt,
			"%s was rewritten (%s rows, %s -> %s): PostgreSQL copies the whole table under an ACCESS EXCLUSIVE lock, so its reads and writes stop for as long as the copy takes. Change a type compatibly (a wider varchar, varchar to text) or add a new column, backfill it in batches and switch.",
			table, count(x.rows), bytesText(x.bytes), bytesText(a.bytes))
	}

	for _, c := range own {
		switch {
		case c.Kind == KindIndex && c.Action == Added:
			n, ok := beforeRows(c.Table)
			if !ok || !b.large(n) {
				continue
			}
			stmt := b.statementNaming("index", c.Object)
			concurrent := concurrentIndex(stmt)
			if stmt == "" {
				t := b.byName[b.qualified(c.Table)]
				s, sawShare := b.lockModes[t.oid][share]
				if !sawShare {
					continue
				}
				stmt = b.statementIn(b.rec.textOf(s), "index")
			} else if concurrent {
				continue
			}
			add(IndexNotConcurrent, c.Table, stmt,
				"index %s on %s (%s rows) was built without CONCURRENTLY: its SHARE lock blocks every INSERT, UPDATE and DELETE on %s for the whole build. Use CREATE INDEX CONCURRENTLY, outside a transaction block.",
				c.Object, c.Table, count(n), c.Table)

		case c.Kind == KindConstraint && c.Action == Added:
			n, ok := beforeRows(c.Table)
			k := b.constraint(c.Table, c.Object)
			if !ok || !b.large(n) || k == nil || !k.Validated || (k.Type != "foreign key" && k.Type != "check") {
				continue
			}
			stmt := b.statementNaming(c.Object)
			if stmt == "" {
				stmt = b.statementNaming(c.Table, strings.Fields(strings.ToUpper(k.Type))[0])
			}
			lock := "SHARE ROW EXCLUSIVE on it and on the table it references, which blocks their writes"
			if k.Type == "check" {
				lock = "ACCESS EXCLUSIVE, which blocks its reads and writes"
			}
			add(ValidateOnLargeTable, c.Table, stmt,
				"%s constraint %s was added to %s (%s rows) without NOT VALID: checking it reads every row while holding %s. Add it NOT VALID, then VALIDATE CONSTRAINT in a later statement, which lets reads and writes go on.",
				k.Type, c.Object, c.Table, count(n), lock)

		case c.Kind == KindColumn && c.Action == Changed && strings.Contains(c.Detail, "nullable -> not null"):
			n, ok := beforeRows(c.Table)
			if !ok || !b.large(n) {
				continue
			}
			add(ValidateOnLargeTable, c.Table, b.statementNaming(c.Object, "not null"),
				"column %s.%s was set NOT NULL on %s (%s rows): PostgreSQL reads every row to check it while holding ACCESS EXCLUSIVE. Add CHECK (%s IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL, which then skips the scan.",
				c.Table, c.Object, c.Table, count(n), c.Object)

		case c.Kind == KindColumn && c.Action == Dropped:
			n, ok := beforeRows(c.Table)
			if !ok || n <= 0 || b.before.allNull[b.qualified(c.Table)+"."+c.Object] {
				continue
			}
			add(DataDropped, c.Table, b.statementNaming("drop", c.Object),
				"column %s.%s was dropped with its data (%s has %s rows): it cannot be rolled back, and the running application fails on it if it still reads it. Stop using the column in one release and drop it in a later one.",
				c.Table, c.Object, c.Table, count(n))

		case c.Kind == KindTable && c.Action == Dropped:
			n, ok := beforeRows(c.Object)
			if !ok || n <= 0 {
				continue
			}
			add(DataDropped, c.Object, b.statementNaming("drop", tableNeedle(b.qualified(c.Object))),
				"table %s was dropped with its %s rows: they cannot be rolled back.", c.Object, count(n))
		}
	}

	// long-backfill
	written := map[string]RowDelta{}
	for _, d := range rows {
		written[d.Table] = d
	}
	for k, tx := range b.rec.txs {
		d := tx.last.Sub(k.start)
		if d <= b.opts.LongBackfill {
			continue
		}
		warned := map[uint32]bool{}
		for _, oid := range tx.order {
			// An index's lock is its table's; the rows of a table the
			// migration created were nobody else's to wait for.
			t, ok := b.tableOf(oid)
			if _, existed := b.before.rels[t.oid]; !ok || !existed || warned[t.oid] {
				continue
			}
			warned[t.oid] = true
			table := display(t.name)
			w := written[table]
			if w.Inserted+w.Updated+w.Deleted == 0 {
				continue
			}
			add(LongBackfill, table, b.statementIn(b.rec.textOf(tx.written[oid]), tableNeedle(t.name)),
				"one transaction wrote rows of %s for %s (the migration %s): every row it touched stays locked against the application's writes until it commits, and VACUUM cannot clean up meanwhile. Backfill in batches of a few thousand rows, each in its own transaction.",
				table, seconds(d.Seconds()), writtenText(w))
		}
	}

	sort.SliceStable(out, func(i, j int) bool {
		if oi, oj := codeOrder[out[i].Code], codeOrder[out[j].Code]; oi != oj {
			return oi < oj
		}
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Message < out[j].Message
	})
	return out
}

var codeOrder = map[Code]int{AccessExclusiveOverBudget: 0, TableRewrite: 1, IndexNotConcurrent: 2, ValidateOnLargeTable: 3, LongBackfill: 4, DataDropped: 5}

// qualified turns a display name back into a schema-qualified one: a name
// with a dot is qualified already (display only drops "public.").
func (b *builder) qualified(name string) string {
	if strings.Contains(name, ".") {
		if _, ok := b.byName[name]; ok {
			return name
		}
	}
	return "public." + name
}

// constraint finds a constraint after the migration.
func (b *builder) constraint(table, name string) *Constraint {
	t := b.after.schema.table(b.qualified(table))
	if t == nil {
		return nil
	}
	for i := range t.Constraints {
		if t.Constraints[i].Name == name {
			return &t.Constraints[i]
		}
	}
	return nil
}

// lockStatement is the statement seen first holding mode on the table.
func (b *builder) lockStatement(oid uint32, mode lockMode) string {
	id, ok := b.lockModes[oid][mode]
	if !ok {
		return ""
	}
	t, _ := b.tableOf(oid)
	return b.statementIn(b.rec.textOf(id), tableNeedle(t.name))
}

func writtenText(w RowDelta) string {
	var parts []string
	if w.Inserted != 0 {
		parts = append(parts, "inserted "+count(w.Inserted))
	}
	if w.Updated != 0 {
		parts = append(parts, "updated "+count(w.Updated))
	}
	if w.Deleted != 0 {
		parts = append(parts, "deleted "+count(w.Deleted))
	}
	return strings.Join(parts, ", ") + " rows there"
}
