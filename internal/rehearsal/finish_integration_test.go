package rehearsal_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/rehearsal"
)

// TestFinish_DiffsFromTheGoldenSchemaWhenGiven stores the golden's schema
// as JSON, as the caller does at an environment's first up, and gives it to
// the second migration's watch: the diff shows both migrations' changes,
// the warnings only the second's.
func TestFinish_DiffsFromTheGoldenSchemaWhenGiven(t *testing.T) {
	c := fixture(t)
	ctx := context.Background()
	var stored []byte
	func() {
		conn, err := pgx.Connect(ctx, c.dsn("fixture"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		s, err := rehearsal.ReadSchema(ctx, conn)
		if err != nil {
			t.Fatal(err)
		}
		if stored, err = json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	}()
	var goldenSchema rehearsal.Schema
	if err := json.Unmarshal(stored, &goldenSchema); err != nil {
		t.Fatal(err)
	}

	db := c.copyOf(t, "fixture")
	if err := c.migrate(ctx, db, "ALTER TABLE orders DROP COLUMN note;\n"); err != nil {
		t.Fatal(err)
	}
	opts := testOptions()
	opts.Baseline = &goldenSchema
	opts.Golden = rehearsal.Golden{Generation: "20240601-0300", Bytes: 123 << 20}
	w, err := rehearsal.Begin(ctx, c.dsn(db), opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := w.Finish(ctx, c.migrate(ctx, db, "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []rehearsal.Change{
		{Kind: rehearsal.KindColumn, Object: "note", Table: "orders", Action: rehearsal.Dropped, Detail: "text"},
		{Kind: rehearsal.KindIndex, Object: "orders_status_idx", Table: "orders", Action: rehearsal.Added, Detail: "btree (status)"},
	}
	if !slices.Equal(r.SchemaDiff, want) {
		t.Errorf("diff from the golden:\n%+v\nwant\n%+v", r.SchemaDiff, want)
	}
	if r.DiffBase != rehearsal.DiffFromGolden || len(r.Warnings) != 0 {
		t.Errorf("diff base %q, warnings %+v: want golden, none (the column was dropped by an earlier migration)", r.DiffBase, r.Warnings)
	}
	text := r.Text()
	for _, s := range []string{"on golden generation 20240601-0300 (123 MB).", "Schema changes since the golden generation (2)", "- column  orders.note"} {
		if !strings.Contains(text, s) {
			t.Errorf("the report does not say %q:\n%s", s, text)
		}
	}
}

// TestFinish_NamesAMigrationSessionLeftOpen runs the migration on a
// connection that stays open after it: PostgreSQL may not have published
// its last row counts, and the report says so instead of passing partial
// counts off as exact.
func TestFinish_NamesAMigrationSessionLeftOpen(t *testing.T) {
	c := fixture(t)
	ctx := context.Background()
	db := c.copyOf(t, "fixture")
	opts := testOptions()
	opts.Settle = 50 * time.Millisecond
	w, err := rehearsal.Begin(ctx, c.dsn(db), opts)
	if err != nil {
		t.Fatal(err)
	}
	mig := connect(t, c, db, migrationApp)
	_, err = mig.Exec(ctx, "UPDATE customers SET name = name || '.' WHERE id <= 10")
	r, err := w.Finish(ctx, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "(migrate) the migration opened was still connected") {
		t.Errorf("notes %q, want one naming the open session", r.Notes)
	}
	if _, err := w.Finish(ctx, nil); err != rehearsal.ErrFinished {
		t.Errorf("a second Finish returned %v, want ErrFinished", err)
	}
}
