package mask_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden/mask"
)

var update = flag.Bool("update", false, "rewrite testdata/masked_rows.golden from the masked fixture")

// TestApply_MaskedRowsMatchTheGoldenFile shows what masking makes of every
// shape of issue 11's fixture (unique emails, names, phones with a NULL,
// addresses masked on even ids only, dates of birth, notes with an email in
// a sentence and a tab and a newline, a jsonb profile with nested contacts,
// orders pointing at people by id and email, reviewed totals and statuses),
// so that a change to any transformer or word list shows in review.
func TestApply_MaskedRowsMatchTheGoldenFile(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	conn := database(t, srv, "app", fixture(12))
	if _, err := mask.Apply(ctx, conn, fixtureRules("golden-file-salt")); err != nil {
		t.Fatal(err)
	}
	got := dumpTables(t, conn)
	path := filepath.Join("testdata", "masked_rows.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/golden/mask -run MaskedRowsMatchTheGoldenFile -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the masked rows differ from %s (go test ./internal/golden/mask -run MaskedRowsMatchTheGoldenFile -update rewrites it; review the diff):\n%s",
			path, lineDiff(got, string(want)))
	}
}

// dumpTables writes every row of every table of the public schema, tables
// by name and rows by primary key, one column a line:
//
//	== people (12 rows)
//	id         1
//	email      ...
//
// NULL is NULL; a value that would read ambiguously (empty, "NULL", control
// characters, spaces at either end) is quoted as in Go.
func dumpTables(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	ctx := context.Background()
	type table struct {
		name     string
		cols     []string
		key      []string
		colWidth int
	}
	rows, err := conn.Query(ctx, `
SELECT c.relname::text,
       array_agg(a.attname::text ORDER BY a.attnum),
       ARRAY(SELECT pa.attname::text
             FROM pg_constraint pk
             CROSS JOIN LATERAL unnest(pk.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute pa ON pa.attrelid = pk.conrelid AND pa.attnum = k.n
             WHERE pk.conrelid = c.oid AND pk.contype = 'p'
             ORDER BY k.i)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
GROUP BY c.oid, c.relname
ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []table
	for rows.Next() {
		var tb table
		if err := rows.Scan(&tb.name, &tb.cols, &tb.key); err != nil {
			t.Fatal(err)
		}
		for _, c := range tb.cols {
			tb.colWidth = max(tb.colWidth, len(c))
		}
		tables = append(tables, tb)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tb := range tables {
		if len(tb.key) == 0 {
			t.Fatalf("table %s has no primary key to order its rows by", tb.name)
		}
		// Qualified: the text columns selected have the same names, and
		// ORDER BY would sort by those ("10" before "2").
		var sel, order []string
		for _, c := range tb.cols {
			sel = append(sel, pgx.Identifier{"t", c}.Sanitize()+"::text")
		}
		for _, c := range tb.key {
			order = append(order, pgx.Identifier{"t", c}.Sanitize())
		}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s t ORDER BY %s",
			strings.Join(sel, ", "), pgx.Identifier{tb.name}.Sanitize(), strings.Join(order, ", ")))
		if err != nil {
			t.Fatal(err)
		}
		var records []string
		for rows.Next() {
			vals := make([]*string, len(tb.cols))
			dest := make([]any, len(vals))
			for i := range vals {
				dest[i] = &vals[i]
			}
			if err := rows.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			var r strings.Builder
			for i, c := range tb.cols {
				fmt.Fprintf(&r, "%-*s  %s\n", tb.colWidth, c, readable(vals[i]))
			}
			records = append(records, r.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s (%d rows)\n\n%s\n", tb.name, len(records), strings.Join(records, "\n"))
	}
	return b.String()
}

func readable(v *string) string {
	switch {
	case v == nil:
		return "NULL"
	case *v == "" || *v == "NULL" || strings.TrimSpace(*v) != *v || strings.ContainsFunc(*v, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return strconv.Quote(*v)
	}
	return *v
}

// lineDiff lists the lines that differ between got and want, the first 40.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var out []string
	for i := 0; i < max(len(g), len(w)) && len(out) < 40; i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			out = append(out, fmt.Sprintf("line %d:\n  got  %s\n  want %s", i+1, gl, wl))
		}
	}
	return strings.Join(out, "\n")
}
