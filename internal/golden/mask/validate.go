package mask

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"
)

type column struct {
	name      string
	typ       string // format_type: the type to cast sql rules to
	kind      kind
	notNull   bool
	generated bool
}

type table struct {
	schema, name string
	partitioned  bool
	columns      []column
}

func (t *table) ident() string { return quoteIdent(t.schema) + "." + quoteIdent(t.name) }
func (t *table) String() string {
	if t.schema == "public" {
		return t.name
	}
	return t.schema + "." + t.name
}

func (t *table) column(name string) (column, bool) {
	for _, c := range t.columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

type catalog struct {
	tables []*table
}

func loadCatalog(ctx context.Context, conn *pgx.Conn) (*catalog, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname, c.relkind = 'p', a.attname, format_type(a.atttypid, a.atttypmod),
       bt.typname, bt.typcategory::text, a.attnotnull, a.attgenerated <> ''
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY n.nspname, c.relname, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("read the catalog: %w", err)
	}
	defer rows.Close()
	cat := &catalog{}
	var cur *table
	for rows.Next() {
		var schema, name, typ, typname, category, col string
		var partitioned, notNull, generated bool
		if err := rows.Scan(&schema, &name, &partitioned, &col, &typ, &typname, &category, &notNull, &generated); err != nil {
			return nil, fmt.Errorf("read the catalog: %w", err)
		}
		if cur == nil || cur.schema != schema || cur.name != name {
			cur = &table{schema: schema, name: name, partitioned: partitioned}
			cat.tables = append(cat.tables, cur)
		}
		cur.columns = append(cur.columns, column{name: col, typ: typ, kind: kindOf(typname, category), notNull: notNull, generated: generated})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the catalog: %w", err)
	}
	return cat, nil
}

// find resolves "table" (public first, else the only schema that has it)
// or "schema.table".
func (c *catalog) find(key string) (*table, string) {
	schema, name, qualified := strings.Cut(key, ".")
	if !qualified {
		name, schema = schema, ""
	}
	var found []*table
	for _, t := range c.tables {
		if t.name == name && (schema == "" || t.schema == schema) {
			found = append(found, t)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], ""
	case len(found) > 1:
		for _, t := range found {
			if t.schema == "public" {
				return t, ""
			}
		}
		var names []string
		for _, t := range found {
			names = append(names, t.schema+"."+t.name)
		}
		return nil, fmt.Sprintf("table %q is in several schemas (%s): qualify it", key, strings.Join(names, ", "))
	}
	var names []string
	for _, t := range c.tables {
		names = append(names, t.String())
	}
	return nil, fmt.Sprintf("table %q does not exist%s", key, suggest(key, names))
}

// suggest returns ` (did you mean "x"?)` for the closest of names, if any is
// close enough to be a typo.
func suggest(got string, names []string) string {
	best, bestD := "", -1
	for _, n := range names {
		d := levenshtein(strings.ToLower(got), strings.ToLower(n))
		if bestD < 0 || d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if bestD < 0 || bestD > max(2, len(got)/2) {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// columnRule is a validated rule on one column.
type columnRule struct {
	column
	index int // position among the table's copied columns
	rule  Rule
	json  []jsonRule
	tmpl  *template.Template
}

// tablePlan is what Apply rewrites in one table.
type tablePlan struct {
	*table
	key   string // as written in the rules
	rules []*columnRule
}

// Validate checks r against the database conn is connected to, without
// changing anything: every table and column exists (else the error names
// the closest one), every transformer exists and fits its column's type
// (email on an integer does not; set_null on a NOT NULL column does not),
// the salt is set, and every where and sql parses against its table (they
// are prepared, never run). All problems are reported at once in an error
// that wraps ErrRules and names each table.column. Errors reading the
// catalog do not wrap ErrRules.
func Validate(ctx context.Context, conn *pgx.Conn, r Rules) error {
	_, err := plan(ctx, conn, r)
	return err
}

func plan(ctx context.Context, conn *pgx.Conn, r Rules) ([]*tablePlan, error) {
	cat, err := loadCatalog(ctx, conn)
	if err != nil {
		return nil, err
	}
	var problems []string
	bad := func(where, format string, a ...any) {
		problems = append(problems, where+": "+fmt.Sprintf(format, a...))
	}
	if r.hasRules() && r.Salt == "" {
		bad("salt", "missing: masking rules need a secret salt (golden.masking.salt, e.g. ${PRENV_MASKING_SALT}); without it the fakes could be recomputed from guessed inputs")
	}
	var plans []*tablePlan
	for _, key := range sortedKeys(r.Tables) {
		t, why := cat.find(key)
		if t == nil {
			bad(key, "%s", why)
			continue
		}
		p := &tablePlan{table: t, key: key}
		var names []string
		for _, c := range t.columns {
			names = append(names, c.name)
		}
		for _, colName := range sortedKeys(r.Tables[key]) {
			rule := r.Tables[key][colName]
			at := key + "." + colName
			col, ok := t.column(colName)
			if !ok {
				bad(at, "table %s has no column %q%s", t, colName, suggest(colName, names))
				continue
			}
			cr, msg := checkRule(ctx, conn, t, col, rule)
			if msg != "" {
				bad(at, "%s", msg)
				continue
			}
			if cr != nil {
				p.rules = append(p.rules, cr)
			}
		}
		if len(p.rules) > 0 {
			plans = append(plans, p)
		}
	}
	for _, k := range r.Keep {
		tkey, colName, ok := splitKeep(k)
		if !ok {
			bad("keep", "%q is not table.column", k)
			continue
		}
		t, why := cat.find(tkey)
		if t == nil {
			bad("keep "+k, "%s", why)
			continue
		}
		if _, ok := t.column(colName); !ok {
			var names []string
			for _, c := range t.columns {
				names = append(names, c.name)
			}
			bad("keep "+k, "table %s has no column %q%s", t, colName, suggest(colName, names))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%w:\n  %s", ErrRules, strings.Join(problems, "\n  "))
	}
	return plans, nil
}

// checkRule returns the rule ready to apply (nil for keep), or why it is
// wrong.
func checkRule(ctx context.Context, conn *pgx.Conn, t *table, col column, rule Rule) (*columnRule, string) {
	name := rule.Transformer
	if name == "" {
		return nil, "no transformer (give a name such as email, or json:, template: or sql:)"
	}
	tr, ok := transformers[name]
	if !ok {
		return nil, fmt.Sprintf("unknown transformer %q%s (known: %s)", name, suggest(name, sortedKeys(transformers)), strings.Join(sortedKeys(transformers), ", "))
	}
	if col.generated {
		return nil, "a generated column is computed from the others: mask those instead"
	}
	if !tr.fit(col.kind) {
		return nil, fmt.Sprintf("transformer %s does not fit type %s (it takes %s columns)", name, col.typ, kindList(tr.fits))
	}
	if name == "set_null" && col.notNull {
		return nil, "set_null on a NOT NULL column: use redact, or a transformer that gives a value"
	}
	if name == "keep" {
		return nil, ""
	}
	cr := &columnRule{column: col, rule: rule}
	switch name {
	case "json":
		if len(rule.JSON) == 0 {
			return nil, "transformer json needs paths: {json: {\"$.email\": email}}"
		}
		for _, path := range sortedKeys(rule.JSON) {
			steps, err := parseJSONPath(path)
			if err != nil {
				return nil, err.Error()
			}
			jt := rule.JSON[path]
			if !jsonTransformer(jt) {
				return nil, fmt.Sprintf("json path %s: transformer %q cannot apply inside a JSON value", path, jt)
			}
			cr.json = append(cr.json, jsonRule{path: path, steps: steps, transformer: jt})
		}
	case "template":
		if rule.Template == "" {
			return nil, "transformer template needs template: (a Go template over the row, such as {{.first_name}})"
		}
		tmpl, err := template.New(t.name + "." + col.name).Option("missingkey=error").Parse(rule.Template)
		if err != nil {
			return nil, fmt.Sprintf("template does not parse: %v", err)
		}
		row := map[string]string{}
		for _, c := range t.columns {
			row[c.name] = ""
		}
		if err := tmpl.Execute(io.Discard, row); err != nil {
			return nil, fmt.Sprintf("template does not run over a row of %s: %v", t, err)
		}
		cr.tmpl = tmpl
	case "sql":
		if rule.SQL == "" {
			return nil, "transformer sql needs sql: (an SQL expression over the row)"
		}
		if err := prepare(ctx, conn, fmt.Sprintf("SELECT (%s\n)::%s FROM %s", rule.SQL, col.typ, t.ident())); err != nil {
			return nil, fmt.Sprintf("sql %q does not parse as an expression of type %s over %s: %v", rule.SQL, col.typ, t, err)
		}
	}
	if rule.Where != "" {
		if err := prepare(ctx, conn, fmt.Sprintf("SELECT 1 FROM %s WHERE (%s\n)", t.ident(), rule.Where)); err != nil {
			return nil, fmt.Sprintf("where %q does not parse as a condition over %s: %v", rule.Where, t, err)
		}
	}
	return cr, ""
}

// prepare parses and plans q as the unnamed statement: PostgreSQL checks
// syntax, names and types, and runs nothing.
func prepare(ctx context.Context, conn *pgx.Conn, q string) error {
	_, err := conn.PgConn().Prepare(ctx, "", q, nil)
	return err
}

func kindList(ks []kind) string {
	var s []string
	for _, k := range ks {
		s = append(s, string(k))
	}
	return strings.Join(s, " or ")
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
