package rehearsal

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// world is a made-up database before and after a migration, and what the
// samples saw, for the warning rules' edge cases.
type world struct {
	before, after snapshot
	rec           *recorder
}

func newWorld(opts Options) *world {
	t0 := time.Date(2024, 6, 1, 3, 0, 0, 0, time.UTC)
	orders := rel{oid: 100, name: "public.orders", kind: 'r', filenode: 100, rows: 200_000, bytes: 20 << 20}
	pkey := rel{oid: 101, name: "public.orders_pkey", kind: 'i', table: 100, filenode: 101, bytes: 4 << 20}
	small := rel{oid: 200, name: "public.tags", kind: 'r', filenode: 200, rows: 50, bytes: 8192}
	empty := rel{oid: 300, name: "public.drafts", kind: 'r', filenode: 300, rows: 0, bytes: 0}
	table := func(name string, cols ...string) Table {
		t := Table{Name: name}
		for _, c := range cols {
			t.Columns = append(t.Columns, Column{Name: c, Type: "text"})
		}
		return t
	}
	schema := Schema{Tables: []Table{table("public.drafts", "body"), table("public.orders", "id", "note", "blank", "status"), table("public.tags", "name", "color")}}
	w := &world{
		before: snapshot{at: t0, schema: schema, rels: map[uint32]rel{100: orders, 101: pkey, 200: small, 300: empty}, allNull: map[string]bool{"public.orders.blank": true}},
		after:  snapshot{at: t0.Add(time.Minute), rels: map[uint32]rel{100: orders, 101: pkey, 200: small, 300: empty}},
		rec:    newRecorder(opts.withDefaults(), 150000, t0),
	}
	w.after.schema = cloneSchema(schema)
	return w
}

func cloneSchema(s Schema) Schema {
	out := Schema{}
	for _, t := range s.Tables {
		t.Columns = slices.Clone(t.Columns)
		t.Indexes = slices.Clone(t.Indexes)
		t.Constraints = slices.Clone(t.Constraints)
		out.Tables = append(out.Tables, t)
	}
	return out
}

// ran records that the migration's session ran query.
func (w *world) ran(query string) int32 {
	id := w.rec.text(query)
	w.rec.migSeen[id] = true
	w.rec.migTexts = append(w.rec.migTexts, id)
	return id
}

// held records samples, one interval apart from the start, in which the
// migration held mode on oid while running query.
func (w *world) held(oid uint32, mode lockMode, query string, samples int) {
	id := w.ran(query)
	for i := 0; i < samples; i++ {
		at := w.before.at.Add(time.Duration(len(w.rec.times)) * w.rec.interval)
		w.rec.times = append(w.rec.times, at)
		w.rec.held = append(w.rec.held, heldLock{sample: int32(len(w.rec.times) - 1), oid: oid, mode: mode, pid: 7, text: id})
	}
}

func (w *world) table(name string) *Table { return w.after.schema.table(name) }

func (w *world) codes() []Code {
	r := build(Options{}.withDefaults(), w.before, w.after, w.rec, time.Second, nil)
	var out []Code
	for _, x := range r.Warnings {
		out = append(out, x.Code)
	}
	return out
}

func TestWarnings_FollowTheirRulesAtTheEdges(t *testing.T) {
	index := func(name, def string) Index { return Index{Name: name, Definition: def, Valid: true} }
	for _, tc := range []struct {
		name  string
		setup func(w *world)
		want  []Code
	}{
		{"nothing happened", func(w *world) {}, nil},
		{"index built without CONCURRENTLY, seen by its statement only", func(w *world) {
			w.table("public.orders").Indexes = []Index{index("orders_status_idx", "CREATE INDEX orders_status_idx ON public.orders USING btree (status)")}
			w.ran("create index orders_status_idx on orders (status)")
		}, []Code{IndexNotConcurrent}},
		{"index built CONCURRENTLY", func(w *world) {
			w.table("public.orders").Indexes = []Index{index("orders_status_idx", "CREATE INDEX orders_status_idx ON public.orders USING btree (status)")}
			w.held(100, shareUpdateExclusive, "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status)", 5)
		}, nil},
		{"unnamed index seen by its SHARE lock", func(w *world) {
			w.table("public.orders").Indexes = []Index{index("orders_status_idx", "CREATE INDEX orders_status_idx ON public.orders USING btree (status)")}
			w.held(100, share, "CREATE INDEX ON orders (status)", 3)
		}, []Code{IndexNotConcurrent}},
		{"index build too short to be seen", func(w *world) {
			w.table("public.orders").Indexes = []Index{index("orders_status_idx", "CREATE INDEX orders_status_idx ON public.orders USING btree (status)")}
		}, nil},
		{"index on a small table", func(w *world) {
			w.table("public.tags").Indexes = []Index{index("tags_name_idx", "CREATE INDEX tags_name_idx ON public.tags USING btree (name)")}
			w.ran("CREATE INDEX tags_name_idx ON tags (name)")
		}, nil},
		{"column with data dropped", func(w *world) {
			o := w.table("public.orders")
			o.Columns = slices.DeleteFunc(o.Columns, func(c Column) bool { return c.Name == "note" })
		}, []Code{DataDropped}},
		{"column dropped whose every value was NULL", func(w *world) {
			o := w.table("public.orders")
			o.Columns = slices.DeleteFunc(o.Columns, func(c Column) bool { return c.Name == "blank" })
		}, nil},
		{"column dropped from an empty table", func(w *world) {
			d := w.table("public.drafts")
			d.Columns = nil
		}, nil},
		{"table with rows dropped", func(w *world) {
			w.after.schema.Tables = slices.DeleteFunc(w.after.schema.Tables, func(t Table) bool { return t.Name == "public.tags" })
			delete(w.after.rels, 200)
		}, []Code{DataDropped}},
		{"table emptied by TRUNCATE", func(w *world) {
			x := w.after.rels[200]
			x.filenode, x.bytes = 999, 0
			w.after.rels[200] = x
		}, []Code{DataDropped}},
		{"small table rewritten", func(w *world) {
			x := w.after.rels[200]
			x.filenode = 999
			w.after.rels[200] = x
		}, []Code{TableRewrite}},
		{"empty table rewritten", func(w *world) {
			x := w.after.rels[300]
			x.filenode = 999
			w.after.rels[300] = x
		}, nil},
		{"foreign key validated on a large table", func(w *world) {
			w.table("public.orders").Constraints = []Constraint{{Name: "orders_tag_fkey", Type: "foreign key", Definition: "FOREIGN KEY (tag) REFERENCES tags(name)", Validated: true}}
		}, []Code{ValidateOnLargeTable}},
		{"foreign key added NOT VALID on a large table", func(w *world) {
			w.table("public.orders").Constraints = []Constraint{{Name: "orders_tag_fkey", Type: "foreign key", Definition: "FOREIGN KEY (tag) REFERENCES tags(name) NOT VALID"}}
		}, nil},
		{"unique constraint on a large table (an index build, judged by its lock)", func(w *world) {
			w.table("public.orders").Constraints = []Constraint{{Name: "orders_status_key", Type: "unique", Definition: "UNIQUE (status)", Validated: true}}
		}, nil},
		{"NOT NULL set on a large table", func(w *world) {
			w.table("public.orders").Columns[3].NotNull = true
		}, []Code{ValidateOnLargeTable}},
		{"NOT NULL set on a small table", func(w *world) {
			w.table("public.tags").Columns[1].NotNull = true
		}, nil},
		{"ACCESS EXCLUSIVE over budget on a large table, through its index", func(w *world) {
			w.held(101, accessExclusive, "REINDEX INDEX orders_pkey", 30) // 30 samples of 50 ms
		}, []Code{AccessExclusiveOverBudget}},
		{"ACCESS EXCLUSIVE within budget", func(w *world) {
			w.held(100, accessExclusive, "ALTER TABLE orders ADD COLUMN x int", 10)
		}, nil},
		{"ACCESS EXCLUSIVE over budget on a small table", func(w *world) {
			w.held(200, accessExclusive, "LOCK tags", 40)
		}, nil},
		{"long backfill", func(w *world) {
			w.rec.txs[txKey{7, w.before.at}] = &txObs{last: w.before.at.Add(6 * time.Second), written: map[uint32]int32{100: w.ran("UPDATE orders SET x = 1")}, order: []uint32{100}}
			x := w.after.rels[100]
			x.upd += 200_000
			w.after.rels[100] = x
		}, []Code{LongBackfill}},
		{"long transaction that wrote nothing", func(w *world) {
			w.rec.txs[txKey{7, w.before.at}] = &txObs{last: w.before.at.Add(6 * time.Second), written: map[uint32]int32{100: w.ran("UPDATE orders SET x = 1 WHERE false")}, order: []uint32{100}}
		}, nil},
		{"short backfill", func(w *world) {
			w.rec.txs[txKey{7, w.before.at}] = &txObs{last: w.before.at.Add(4 * time.Second), written: map[uint32]int32{100: w.ran("UPDATE orders SET x = 1")}, order: []uint32{100}}
			x := w.after.rels[100]
			x.upd += 200_000
			w.after.rels[100] = x
		}, nil},
		{"long fill of a table the migration created", func(w *world) {
			w.after.rels[400] = rel{oid: 400, name: "public.refunds", kind: 'r', filenode: 400, rows: 500_000, ins: 500_000}
			w.after.schema.Tables = append(w.after.schema.Tables, Table{Name: "public.refunds"})
			w.rec.txs[txKey{7, w.before.at}] = &txObs{last: w.before.at.Add(60 * time.Second), written: map[uint32]int32{400: w.ran("INSERT INTO refunds SELECT ...")}, order: []uint32{400}}
			w.held(400, accessExclusive, "CREATE TABLE refunds AS SELECT ...", 100)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(Options{})
			tc.setup(w)
			if got := w.codes(); !slices.Equal(got, tc.want) {
				t.Errorf("warnings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitStatements_KeepsQuotedSemicolons(t *testing.T) {
	sql := `ALTER TABLE a ADD COLUMN b text DEFAULT ';';
-- a comment; with a semicolon
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;
/* block; comment */ UPDATE "odd;name" SET x = $1;
SELECT 1`
	got := splitStatements(sql)
	want := []string{
		`ALTER TABLE a ADD COLUMN b text DEFAULT ';'`,
		"-- a comment; with a semicolon\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$",
		`/* block; comment */ UPDATE "odd;name" SET x = $1`,
		`SELECT 1`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("splitStatements:\n%q\nwant\n%q", got, want)
	}
	if s := statementMatching(sql, "update", "odd;name"); s != want[2] {
		t.Errorf("statementMatching found %q", s)
	}
}

// A name PostgreSQL allows with a line break in it (a quoted identifier)
// stays inside its table cell or list item in the Markdown.
func TestMarkdown_ALineBreakInANameStaysInItsCell(t *testing.T) {
	r := Report{Seconds: 1, DiffBase: DiffFromBegin,
		Locks:    []LockHold{{Table: "public.\"a\n| injected | row |\"", Mode: "ACCESS EXCLUSIVE", Seconds: 2, Rows: 10, Bytes: 8192}},
		Warnings: []Warning{{Code: TableRewrite, Table: "x\n### Deployed to production", Message: "m\n- [ ] fake", Statement: "ALTER\nTABLE"}}}
	md := r.Markdown()
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "### Deployed") || strings.HasPrefix(line, "- [ ] fake") || strings.HasPrefix(line, "| injected") || line == "TABLE`" {
			t.Fatalf("a line break in a name started a line of its own:\n%s", md)
		}
	}
	if !strings.Contains(md, "`x ### Deployed to production`") {
		t.Fatalf("the name is not shown on one line:\n%s", md)
	}
}

// CONCURRENTLY counts as a keyword of CREATE INDEX only, not in a comment
// or a name.
func TestConcurrentIndex_ByItsKeywordsOnly(t *testing.T) {
	for stmt, want := range map[string]bool{
		"CREATE INDEX CONCURRENTLY orders_item ON orders (item)":           true,
		"create unique index\n  concurrently orders_item on orders (item)": true,
		"/* x */ CREATE INDEX /* y */ CONCURRENTLY i ON t (c)":             true,
		"CREATE INDEX /* concurrently */ orders_item ON orders (item)":     false,
		"CREATE INDEX orders_built_concurrently ON orders (item)":          false,
		"CREATE INDEX i ON t (c) -- should be concurrently":                false,
		"CREATE INDEX concurrently_named ON t (c)":                         false,
	} {
		if got := concurrentIndex(stmt); got != want {
			t.Errorf("concurrentIndex(%q) = %v, want %v", stmt, got, want)
		}
	}
}

// Names the pull request chose mention nobody in Markdown and send no
// escape sequence to a terminal in text.
func TestRender_NoMentionsInMarkdownNoEscapesInText(t *testing.T) {
	r := Report{Seconds: 1, DiffBase: DiffFromBegin,
		Warnings: []Warning{{Code: TableRewrite, Table: "\x1b[2J@acme/security", Message: "@acme/security was rewritten \x1b]0;owned\x07"}}}
	if md := r.Markdown(); strings.Contains(md, "@acme/security was") {
		t.Fatalf("the message mentions @acme/security:\n%s", md)
	}
	if txt := r.Text(); strings.ContainsAny(txt, "\x1b\x07") || !strings.Contains(txt, "?[2J@acme/security") {
		t.Fatalf("control characters reach the terminal: %q", txt)
	}
}
