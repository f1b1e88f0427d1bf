package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Options tune a scan. The zero value scans everything with the defaults.
type Options struct {
	SampleRows int             // rows sampled per table (default 1000)
	Skip       map[string]bool // "table.column" covered by masking rules or reviewed as kept: not scanned
	MinRate    float64         // share of sampled non-null values a detector must match to count (default 0.05)
}

// Defaults for Options' zero fields.
const (
	DefaultSampleRows = 1000
	DefaultMinRate    = 0.05
)

// maxValueBytes bounds what is read of one non-JSON value: a notes column
// may hold megabytes per row, and personal data shows in the first pages.
const maxValueBytes = 8192

// Finding is one detector that matched one column.
type Finding struct {
	Table, Column string
	Detector      string  // email, phone, credit_card, iban, ssn, ip, person_name, or hint:<word> for a column-name hint
	Rate          float64 // matched / sampled non-null values
	Sample        string  // one matched value, masked for the report: j***@e***.com, +1 *** *** **67, 4*** **** **** 1111
}

// column is one scanned column of one table.
type column struct {
	name     string
	category byte // pg_type.typcategory
	json     bool
}

type table struct {
	schema, name string
	columns      []column
}

// display is the table's name in findings and Skip keys: bare in the public
// schema, schema-qualified elsewhere (billing.invoices).
func (t table) display() string {
	if t.schema == "public" {
		return t.name
	}
	return t.schema + "." + t.name
}

// Scan samples every column of every user table (all schemas but
// pg_catalog, information_schema, pg_toast) not in Skip — text-like,
// json/jsonb (scan the string values inside), and the rest cast to text —
// and runs the detectors; it returns the findings, sorted by table and
// column (and by detector within a column). Booleans are not sampled: they
// cannot hold any of the kinds. Partitions are scanned through their parent.
//
// Rows are sampled with ORDER BY random() LIMIT SampleRows: a uniform sample
// over the whole table, read in one sequential scan with a bounded top-N
// sort. TABLESAMPLE SYSTEM would read fewer pages, but it samples whole
// pages, so rows written together (the week since a column was added) are
// sampled together or not at all, and on a small table it may return no row;
// BERNOULLI reads every page anyway. A build already reads every page once
// to restore it, so one more scan is within its cost.
//
// An error is returned if the catalog cannot be read or a table cannot be
// sampled (it names the table); no partial result is returned, as a scan
// that skipped a table would let its data through.
func Scan(ctx context.Context, conn *pgx.Conn, opts Options) ([]Finding, error) {
	if opts.SampleRows <= 0 {
		opts.SampleRows = DefaultSampleRows
	}
	if opts.MinRate <= 0 {
		opts.MinRate = DefaultMinRate
	}
	tables, err := userTables(ctx, conn, opts.Skip)
	if err != nil {
		return nil, fmt.Errorf("scan: list tables: %w", err)
	}
	var findings []Finding
	for _, t := range tables {
		f, err := scanTable(ctx, conn, t, opts)
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", t.display(), err)
		}
		findings = append(findings, f...)
	}
	sort.SliceStable(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Detector < b.Detector
	})
	return findings, nil
}

func userTables(ctx context.Context, conn *pgx.Conn, skip map[string]bool) ([]table, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname, a.attname, coalesce(bt.typcategory, t.typcategory)::text,
       coalesce(bt.typname, t.typname) IN ('json', 'jsonb')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
ORDER BY n.nspname, c.relname, a.attnum`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []table
	for rows.Next() {
		var schema, name, col, cat string
		var isJSON bool
		if err := rows.Scan(&schema, &name, &col, &cat, &isJSON); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].schema != schema || out[len(out)-1].name != name {
			out = append(out, table{schema: schema, name: name})
		}
		t := &out[len(out)-1]
		if cat == "B" || skip[t.display()+"."+col] {
			continue
		}
		t.columns = append(t.columns, column{name: col, category: cat[0], json: isJSON})
	}
	return out, rows.Err()
}

// values holds what was sampled of one column: for JSON, the string values
// inside each document; otherwise the one text value per row.
type values [][]string

func scanTable(ctx context.Context, conn *pgx.Conn, t table, opts Options) ([]Finding, error) {
	if len(t.columns) == 0 {
		return nil, nil
	}
	exprs := make([]string, len(t.columns))
	for i, c := range t.columns {
		id := pgx.Identifier{c.name}.Sanitize()
		if c.json {
			exprs[i] = id + "::text"
		} else {
			exprs[i] = fmt.Sprintf("left(%s::text, %d)", id, maxValueBytes)
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s ORDER BY random() LIMIT %d",
		strings.Join(exprs, ", "), pgx.Identifier{t.schema, t.name}.Sanitize(), opts.SampleRows)
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := make([]values, len(t.columns))
	dest := make([]*string, len(t.columns))
	ptrs := make([]any, len(t.columns))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range dest {
			if v == nil {
				continue
			}
			if t.columns[i].json {
				cols[i] = append(cols[i], jsonStrings(*v))
			} else {
				cols[i] = append(cols[i], []string{*v})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []Finding
	for i, c := range t.columns {
		out = append(out, judge(t.display(), t.name, c, cols[i], opts.MinRate)...)
	}
	return out, nil
}

// jsonStrings returns every string value (not key) inside a JSON document;
// a document that does not parse is scanned as text.
func jsonStrings(doc string) []string {
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return []string{doc}
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// judge runs the detectors over one column's sampled values and returns
// its findings. A row matches a detector when any of its strings does.
func judge(tableDisplay, tableName string, c column, vals values, minRate float64) []Finding {
	if len(vals) == 0 {
		return nil
	}
	n := float64(len(vals))
	var out []Finding
	for _, d := range detectors {
		matched, candidates := 0, 0
		sample := ""
		for _, row := range vals {
			hit, cand := false, false
			for _, s := range row {
				m, c := d.find(s)
				cand = cand || c
				if m != "" {
					hit = true
					if sample == "" {
						sample = m
					}
					break
				}
			}
			if hit {
				matched++
			}
			if cand || hit {
				candidates++
			}
		}
		rate := float64(matched) / n
		if matched == 0 || rate < minRate {
			continue
		}
		if d.minValid > 0 && float64(matched)/float64(candidates) < d.minValid {
			continue
		}
		out = append(out, Finding{Table: tableDisplay, Column: c.name, Detector: d.name, Rate: rate, Sample: d.mask(sample)})
	}
	if len(out) > 0 {
		return out
	}
	hint := columnHint(tableName, c.name, c.category)
	if hint == "" {
		return nil
	}
	real, sample := 0, ""
	distinct := map[string]bool{}
	for _, row := range vals {
		for _, s := range row {
			if realLooking(s) {
				real++
				distinct[s] = true
				if sample == "" {
					sample = s
				}
				break
			}
		}
	}
	rate := float64(real) / n
	if real == 0 || rate < minRate || (len(vals) > 1 && len(distinct) < 2) {
		return nil
	}
	return []Finding{{Table: tableDisplay, Column: c.name, Detector: "hint:" + hint, Rate: rate, Sample: maskWords(sample)}}
}
