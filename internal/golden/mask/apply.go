package mask

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrConstraint is wrapped by the error Apply returns when the masked data
// breaks a primary key, unique index, check or foreign key: the rules must
// change (a transformer that keeps the column unique, the same transformer
// on both sides of a key); nothing is fixed silently.
var ErrConstraint = errors.New("masked data breaks a constraint")

// ConstraintError names the constraint the masked data breaks.
type ConstraintError struct {
	Table      string // as in the database: people, sales.orders
	Constraint string // the index or constraint name
	Kind       string // "unique index", "check constraint", "not-null constraint", "exclusion constraint", "foreign key"
	Detail     string // PostgreSQL's detail, or the rows that break a foreign key
	Hint       string // what to change in the rules
}

func (e *ConstraintError) Error() string {
	s := fmt.Sprintf("masking breaks %s %q on %s", e.Kind, e.Constraint, e.Table)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s + "; nothing was changed"
}

func (e *ConstraintError) Unwrap() error { return ErrConstraint }

// Report says what Apply rewrote.
type Report struct{ Tables []TableReport }

// TableReport is one rewritten table.
type TableReport struct {
	Table   string
	Columns []string
	Rows    int64
	Seconds float64
}

// Apply masks the database conn is connected to, in place, in one
// transaction: either every rule is applied and every constraint holds, or
// nothing changes. It validates r first (errors wrap ErrRules), and fails
// with a *ConstraintError (wrapping ErrConstraint) naming the primary key,
// unique index, check or foreign key the masked rows break. conn must be
// allowed to set session_replication_role (a superuser, or rds_superuser).
//
// Each table is read with COPY (SELECT ...) TO STDOUT, masked row by row in
// Go into a spool file, emptied, and loaded back with COPY FROM STDIN. The
// table is rewritten in place rather than copied into a new table and
// swapped: a swap would break every view, foreign key, grant, publication
// and dependency that points at the old table's oid, and each of those
// would have to be found and remade. TRUNCATE is used when every table
// referencing it is rewritten too (TRUNCATE refuses otherwise, and in the
// transaction that truncated it, a load with wal_level=minimal writes no
// WAL); otherwise the rows are deleted, with session_replication_role =
// replica so that no foreign key trigger cascades or fires mid-rewrite.
// Unique indexes, NOT NULL and checks are enforced as the rows go back in;
// foreign keys are then checked with NOT EXISTS queries before commit.
func Apply(ctx context.Context, conn *pgx.Conn, r Rules) (Report, error) {
	plans, err := plan(ctx, conn, r)
	if err != nil {
		return Report{}, err
	}
	if len(plans) == 0 {
		return Report{}, nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Report{}, err
	}
	defer tx.Rollback(context.Background())
	// The text format of dates and numbers must read back as written, and
	// date_shift reads ISO dates; these hold for this transaction only.
	for _, q := range []string{
		"SET LOCAL session_replication_role = replica",
		"SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL IntervalStyle = 'postgres'", "SET LOCAL TimeZone = 'UTC'",
		"SET LOCAL extra_float_digits = 3", "SET LOCAL bytea_output = 'hex'", "SET LOCAL statement_timeout = 0",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return Report{}, fmt.Errorf("mask: %s: %w", q, err)
		}
	}
	edges, err := foreignKeys(ctx, conn)
	if err != nil {
		return Report{}, err
	}
	reports := make([]TableReport, len(plans))
	spools := make([]*os.File, len(plans))
	defer func() {
		for _, f := range spools {
			if f != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}
	}()
	k := newKeyed(r.Salt)
	for i, p := range plans {
		t0 := time.Now()
		f, err := os.CreateTemp("", "prenv-mask-*.copy")
		if err != nil {
			return Report{}, fmt.Errorf("mask %s: spool: %w", p, err)
		}
		spools[i] = f
		rows, err := spool(ctx, conn, k, p, f)
		if err != nil {
			return Report{}, fmt.Errorf("mask %s: %w", p, err)
		}
		reports[i] = TableReport{Table: p.String(), Rows: rows, Seconds: time.Since(t0).Seconds()}
		for _, cr := range p.rules {
			reports[i].Columns = append(reports[i].Columns, cr.name)
		}
	}
	if err := empty(ctx, conn, plans, edges); err != nil {
		return Report{}, err
	}
	for i, p := range plans {
		t0 := time.Now()
		if _, err := spools[i].Seek(0, io.SeekStart); err != nil {
			return Report{}, err
		}
		var cols []string
		for _, c := range p.copied() {
			cols = append(cols, quoteIdent(c.name))
		}
		q := fmt.Sprintf("COPY %s (%s) FROM STDIN", p.ident(), strings.Join(cols, ", "))
		if _, err := conn.PgConn().CopyFrom(ctx, bufio.NewReaderSize(spools[i], 1<<20), q); err != nil {
			return Report{}, constraintError(p, err)
		}
		reports[i].Seconds += time.Since(t0).Seconds()
	}
	if err := checkForeignKeys(ctx, conn, plans, edges); err != nil {
		return Report{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		// A deferred unique constraint is checked here.
		return Report{}, constraintError(nil, err)
	}
	return Report{Tables: reports}, nil
}

// copied are the columns COPY moves: generated columns are computed again
// from the masked ones as the rows go back in.
func (t *table) copied() []column {
	var out []column
	for _, c := range t.columns {
		if !c.generated {
			out = append(out, c)
		}
	}
	return out
}

func (t *table) fromOnly() string {
	if t.partitioned {
		return t.ident() // a partitioned table's rows are its partitions'
	}
	return "ONLY " + t.ident() // an inheritance parent's children are their own tables
}

// spool streams p's rows through the transformers into f and returns how
// many there were. sql rules and where conditions are computed by
// PostgreSQL in the SELECT; where adds a boolean column per condition that
// the stream reads and drops.
func spool(ctx context.Context, conn *pgx.Conn, k *keyed, p *tablePlan, f *os.File) (int64, error) {
	cols := p.copied()
	byName := map[string]*columnRule{}
	for _, cr := range p.rules {
		byName[cr.name] = cr
	}
	var sel []string
	s := &stream{k: k, ncols: len(cols), out: bufio.NewWriterSize(f, 1<<20)}
	flags := map[string]int{}
	for i, c := range cols {
		cr := byName[c.name]
		if cr == nil {
			sel = append(sel, quoteIdent(c.name))
			continue
		}
		cr.index = i
		if cr.rule.Transformer == "sql" {
			expr := fmt.Sprintf("(%s\n)::%s", cr.rule.SQL, c.typ)
			if cr.rule.Where != "" {
				expr = fmt.Sprintf("CASE WHEN (%s\n) THEN %s ELSE %s END", cr.rule.Where, expr, quoteIdent(c.name))
			}
			sel = append(sel, expr)
			continue
		}
		sel = append(sel, quoteIdent(c.name))
		sr := streamRule{columnRule: cr, flag: -1, fn: transformers[cr.rule.Transformer].apply}
		if cr.rule.Where != "" {
			n, ok := flags[cr.rule.Where]
			if !ok {
				n = len(cols) + len(flags)
				flags[cr.rule.Where] = n
			}
			sr.flag = n
		}
		if cr.tmpl != nil {
			s.needRow = true
		}
		s.rules = append(s.rules, sr)
	}
	extra := make([]string, len(flags))
	for w, n := range flags {
		extra[n-len(cols)] = fmt.Sprintf("COALESCE((%s\n), false)", w)
	}
	sel = append(sel, extra...)
	s.nfields = len(sel)
	for _, c := range cols {
		s.names = append(s.names, c.name)
	}
	q := fmt.Sprintf("COPY (SELECT %s FROM %s) TO STDOUT", strings.Join(sel, ", "), p.fromOnly())
	if _, err := conn.PgConn().CopyTo(ctx, s, q); err != nil {
		if s.err != nil {
			return 0, s.err
		}
		return 0, err
	}
	if len(s.pending) > 0 {
		return 0, errors.New("COPY ended in the middle of a row")
	}
	return s.rows, s.out.Flush()
}

type streamRule struct {
	*columnRule
	flag int // field of the where condition, -1 without one
	fn   func(k *keyed, r *Rule, col kind, in string) (string, bool)
}

// stream is the io.Writer COPY TO writes into: it cuts rows, masks them
// and writes them to out.
type stream struct {
	k       *keyed
	rules   []streamRule
	ncols   int // columns written back
	nfields int // columns read, with where flags
	names   []string
	needRow bool
	out     *bufio.Writer
	pending []byte
	fields  [][]byte
	masked  [][]byte // per column: the new text, nil when unchanged
	buf     []byte
	rows    int64
	err     error
}

func (s *stream) Write(b []byte) (int, error) {
	n := len(b)
	if len(s.pending) > 0 {
		s.pending = append(s.pending, b...)
		b = s.pending
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		if err := s.row(b[:i]); err != nil {
			s.err = err
			return 0, err
		}
		b = b[i+1:]
	}
	s.pending = append(s.pending[:0], b...)
	return n, nil
}

func (s *stream) row(line []byte) error {
	s.fields = s.fields[:0]
	for {
		i := bytes.IndexByte(line, '\t')
		if i < 0 {
			s.fields = append(s.fields, line)
			break
		}
		s.fields = append(s.fields, line[:i])
		line = line[i+1:]
	}
	if len(s.fields) != s.nfields {
		return fmt.Errorf("row %d has %d columns, want %d", s.rows+1, len(s.fields), s.nfields)
	}
	if cap(s.masked) < s.ncols {
		s.masked = make([][]byte, s.ncols)
	}
	s.masked = s.masked[:s.ncols]
	clear(s.masked)
	s.buf = s.buf[:0]
	// Templates run last, over the row as masked: a template naming a
	// column another rule masks must see the fake value, never the source.
	if err := s.apply(false); err != nil {
		return err
	}
	if s.needRow {
		if err := s.apply(true); err != nil {
			return err
		}
	}
	for j := 0; j < s.ncols; j++ {
		if j > 0 {
			s.out.WriteByte('\t')
		}
		if m := s.masked[j]; m != nil {
			s.out.Write(m)
		} else {
			s.out.Write(s.fields[j])
		}
	}
	s.rows++
	return s.out.WriteByte('\n')
}

// apply masks the current row's columns: those of template rules when
// templates, the others otherwise.
func (s *stream) apply(templates bool) error {
	var rowMap map[string]string
	for i := range s.rules {
		r := &s.rules[i]
		if (r.tmpl != nil) != templates {
			continue
		}
		if r.flag >= 0 && string(s.fields[r.flag]) != "t" {
			continue
		}
		in := s.fields[r.index]
		if r.rule.Transformer == "set_null" {
			s.masked[r.index] = []byte(copyNull)
			continue
		}
		if string(in) == copyNull {
			continue // NULL stays NULL
		}
		var out string
		ok := true
		switch {
		case r.json != nil:
			v, err := maskJSON(s.k, r.json, copyDecode(in))
			if err != nil {
				return fmt.Errorf("column %s, row %d: %w", r.name, s.rows+1, err)
			}
			out = v
		case r.tmpl != nil:
			if rowMap == nil {
				rowMap = make(map[string]string, s.ncols)
				for j := 0; j < s.ncols; j++ {
					f := s.fields[j]
					if m := s.masked[j]; m != nil {
						f = m
					}
					if string(f) != copyNull {
						rowMap[s.names[j]] = copyDecode(f)
					} else {
						rowMap[s.names[j]] = ""
					}
				}
			}
			var b strings.Builder
			if err := r.tmpl.Execute(&b, rowMap); err != nil {
				return fmt.Errorf("column %s, row %d: template: %w", r.name, s.rows+1, err)
			}
			out = b.String()
		default:
			out, ok = r.fn(s.k, &r.rule, r.kind, copyDecode(in))
		}
		if !ok {
			s.masked[r.index] = []byte(copyNull)
			continue
		}
		start := len(s.buf)
		s.buf = copyEncode(s.buf, out)
		s.masked[r.index] = s.buf[start:len(s.buf):len(s.buf)]
	}
	return nil
}

type fkey struct {
	name                  string
	child, parent         string // regclass text: quoted, qualified when needed
	childRoot, parentRoot string // schema.table of the partition roots
	childOnly, parentOnly bool
	childCols, parentCols []string
}

func foreignKeys(ctx context.Context, conn *pgx.Conn) ([]fkey, error) {
	rows, err := conn.Query(ctx, `
SELECT k.conname, k.conrelid::regclass::text, k.confrelid::regclass::text,
       cn.nspname || '.' || cc.relname, pn.nspname || '.' || pc.relname,
       c.relkind = 'r', p.relkind = 'r',
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       ARRAY(SELECT quote_ident(a.attname) FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_class p ON p.oid = k.confrelid
JOIN pg_class cc ON cc.oid = coalesce(pg_partition_root(k.conrelid), k.conrelid)
JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = coalesce(pg_partition_root(k.confrelid), k.confrelid)
JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
ORDER BY 2, 1`)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	defer rows.Close()
	var out []fkey
	for rows.Next() {
		var f fkey
		if err := rows.Scan(&f.name, &f.child, &f.parent, &f.childRoot, &f.parentRoot, &f.childOnly, &f.parentOnly, &f.childCols, &f.parentCols); err != nil {
			return nil, fmt.Errorf("read foreign keys: %w", err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// empty removes the rows of every masked table: one TRUNCATE for the
// tables whose referencing tables are all rewritten too, DELETE for the
// others (TRUNCATE refuses a table another table's foreign key points at).
func empty(ctx context.Context, conn *pgx.Conn, plans []*tablePlan, edges []fkey) error {
	trunc := map[string]bool{}
	for _, p := range plans {
		trunc[p.schema+"."+p.name] = true
	}
	for changed := true; changed; {
		changed = false
		for _, e := range edges {
			if trunc[e.parentRoot] && !trunc[e.childRoot] {
				delete(trunc, e.parentRoot)
				changed = true
			}
		}
	}
	var names []string
	for _, p := range plans {
		if trunc[p.schema+"."+p.name] {
			names = append(names, p.fromOnly())
			continue
		}
		if _, err := conn.Exec(ctx, "DELETE FROM "+p.fromOnly()); err != nil {
			return fmt.Errorf("mask %s: delete the unmasked rows: %w", p, err)
		}
	}
	if len(names) > 0 {
		if _, err := conn.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
			return fmt.Errorf("mask: truncate the unmasked rows: %w", err)
		}
	}
	return nil
}

// checkForeignKeys proves every foreign key into or out of a masked table
// still holds (MATCH SIMPLE: a row with a NULL in the key is not checked),
// since session_replication_role kept their triggers quiet.
func checkForeignKeys(ctx context.Context, conn *pgx.Conn, plans []*tablePlan, edges []fkey) error {
	masked := map[string]*tablePlan{}
	for _, p := range plans {
		masked[p.schema+"."+p.name] = p
	}
	for _, e := range edges {
		p := masked[e.childRoot]
		if p == nil {
			p = masked[e.parentRoot]
		}
		if p == nil {
			continue
		}
		var notNull, join, show []string
		for i := range e.childCols {
			notNull = append(notNull, "c."+e.childCols[i]+" IS NOT NULL")
			join = append(join, "p."+e.parentCols[i]+" = c."+e.childCols[i])
			show = append(show, "c."+e.childCols[i]+"::text")
		}
		child, parent := e.child, e.parent
		if e.childOnly {
			child = "ONLY " + child
		}
		if e.parentOnly {
			parent = "ONLY " + parent
		}
		q := fmt.Sprintf("SELECT count(*), coalesce(min(concat_ws(', ', %s)), '') FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s p WHERE %s)",
			strings.Join(show, ", "), child, strings.Join(notNull, " AND "), parent, strings.Join(join, " AND "))
		var n int64
		var sample string
		if err := conn.QueryRow(ctx, q).Scan(&n, &sample); err != nil {
			return fmt.Errorf("mask: check foreign key %s on %s: %w", e.name, e.child, err)
		}
		if n > 0 {
			return &ConstraintError{
				Table: e.child, Constraint: e.name, Kind: "foreign key",
				Detail: fmt.Sprintf("%d rows of %s (%s) point at no row of %s (%s), such as (%s)", n, e.child,
					strings.Join(e.childCols, ", "), e.parent, strings.Join(e.parentCols, ", "), sample),
				Hint: "mask both sides of the key with the same transformer, or neither",
			}
		}
	}
	return nil
}

// constraintError turns PostgreSQL's integrity errors into a
// ConstraintError that says which rule to change.
func constraintError(p *tablePlan, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "23") {
		if p == nil {
			return fmt.Errorf("mask: commit: %w", err)
		}
		return fmt.Errorf("mask %s: load the masked rows: %w", p, err)
	}
	ce := &ConstraintError{Table: pe.TableName, Constraint: pe.ConstraintName, Detail: pe.Detail}
	if ce.Table == "" && p != nil {
		ce.Table = p.String()
	}
	var rules []string
	if p != nil {
		for _, cr := range p.rules {
			rules = append(rules, cr.name+": "+cr.rule.Transformer)
		}
	}
	switch pe.Code {
	case "23505":
		ce.Kind = "unique index"
		ce.Hint = "a transformer gave equal outputs for different inputs; give the indexed columns one that keeps them unique (hash, email, iban)"
	case "23514":
		ce.Kind = "check constraint"
		ce.Hint = "a masked value does not pass the check; pick a transformer whose output does"
	case "23502":
		ce.Kind = "not-null constraint"
		ce.Constraint = pe.ColumnName
	case "23P01":
		ce.Kind = "exclusion constraint"
	default:
		ce.Kind = "constraint"
		if ce.Detail == "" {
			ce.Detail = pe.Message
		}
	}
	if len(rules) > 0 {
		ce.Hint += " (rules on " + ce.Table + ": " + strings.Join(rules, ", ") + ")"
		ce.Hint = strings.TrimPrefix(ce.Hint, " ")
	}
	return ce
}
