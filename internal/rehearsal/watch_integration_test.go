package rehearsal_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"
)

// migrationCase is one fixture migration of issue 12 and what its report
// must show besides the golden file.
type migrationCase struct {
	name     string // golden file testdata/<name>.golden
	sql      string
	warnings []rehearsal.Code
	rewrites []string // names of the rewritten tables and indexes
	rows     []rehearsal.RowDelta
	lock     string // the strongest lock on orders, "" for none expected
	failed   string // a part of the migration's error, when it fails
	// briefStatement is the statement of a warning about something that
	// takes milliseconds: a sample sees it only by chance, so the report
	// shows it or no statement, and the golden file leaves it out.
	briefStatement string
}

var cases = []migrationCase{
	{
		name: "add-column-constant-default",
		sql:  "ALTER TABLE orders ADD COLUMN priority integer NOT NULL DEFAULT 0;\n",
		// A constant default is stored in the catalog: no rewrite, a lock
		// for milliseconds, nothing to warn about.
	},
	{
		name:     "change-column-type",
		sql:      "ALTER TABLE orders ALTER COLUMN total_cents TYPE bigint;\n",
		warnings: []rehearsal.Code{rehearsal.AccessExclusiveOverBudget, rehearsal.TableRewrite},
		rewrites: []string{"orders", "orders_customer_id_idx", "orders_pkey"},
		lock:     "ACCESS EXCLUSIVE",
	},
	{
		name:     "create-index",
		sql:      "CREATE INDEX orders_status_idx ON orders (status);\n",
		warnings: []rehearsal.Code{rehearsal.IndexNotConcurrent},
		lock:     "SHARE",
	},
	{
		name: "create-index-concurrently",
		sql:  "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);\n",
		lock: "SHARE UPDATE EXCLUSIVE",
	},
	{
		name: "backfill",
		sql: "ALTER TABLE orders ADD COLUMN total_eur numeric(12,2);\n" +
			"UPDATE orders SET total_eur = total_cents / 100.0;\n",
		warnings: []rehearsal.Code{rehearsal.LongBackfill},
		rows:     []rehearsal.RowDelta{{Table: "orders", Updated: fixtureOrders}},
		lock:     "ROW EXCLUSIVE",
	},
	{
		name:           "drop-column",
		sql:            "ALTER TABLE orders DROP COLUMN note;\n",
		warnings:       []rehearsal.Code{rehearsal.DataDropped},
		briefStatement: "ALTER TABLE orders DROP COLUMN note",
	},
	{
		name: "add-foreign-key-not-valid",
		sql:  "ALTER TABLE orders ADD CONSTRAINT orders_billing_customer_id_fkey FOREIGN KEY (billing_customer_id) REFERENCES customers (id) NOT VALID;\n",
	},
	{
		name:     "add-foreign-key",
		sql:      "ALTER TABLE orders ADD CONSTRAINT orders_billing_customer_id_fkey FOREIGN KEY (billing_customer_id) REFERENCES customers (id);\n",
		warnings: []rehearsal.Code{rehearsal.ValidateOnLargeTable},
		lock:     "SHARE ROW EXCLUSIVE",
	},
	{
		name: "create-and-fill-table",
		sql: "CREATE TABLE refunds (order_id bigint PRIMARY KEY REFERENCES orders (id), cents integer NOT NULL);\n" +
			"INSERT INTO refunds SELECT id, total_cents FROM orders WHERE status = 'delivered';\n",
		// The new table is nobody else's until the migration commits: its
		// locks and rows are shown, not warned about. Checking the
		// foreign key locks orders' rows FOR KEY SHARE (ROW SHARE).
		rows: []rehearsal.RowDelta{{Table: "refunds", Inserted: fixtureOrders / 3}},
		lock: "ROW SHARE",
	},
	{
		name: "failed",
		sql: "ALTER TABLE orders ADD COLUMN gift_message text;\n" +
			"UPDATE orders SET gift_message = 'Happy birthday' WHERE id <= 1000;\n" +
			"ALTER TABLE customers ADD CONSTRAINT customers_email_check CHECK (email LIKE '%@example.org');\n" +
			"ALTER TABLE orders DROP COLUMN note;\n",
		rows:   []rehearsal.RowDelta{{Table: "orders", Updated: 1000}},
		failed: `psql:migration.sql:3: ERROR:  check constraint "customers_email_check" of relation "customers" is violated by some row`,
	},
}

// TestWatch_ReportsWhatEachFixtureMigrationDoes runs each of issue 12's
// fixture migrations with psql on its own copy of the 300,000-order golden
// while a Watch observes, and compares what a developer would read with
// testdata/<case>.golden.
func TestWatch_ReportsWhatEachFixtureMigrationDoes(t *testing.T) {
	c := fixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := c.copyOf(t, "fixture")
			w, err := rehearsal.Begin(ctx, c.dsn(db), testOptions())
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			migErr := c.migrate(ctx, db, tc.sql)
			ran := time.Since(start)
			ended := time.Now()
			r, err := w.Finish(ctx, migErr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("migration %v, report ready %v after it ended", ran.Round(time.Millisecond), time.Since(ended).Round(time.Millisecond))

			if tc.failed == "" && migErr != nil {
				t.Fatalf("the fixture migration failed: %v", migErr)
			}
			if !strings.Contains(r.Failed, tc.failed) || (tc.failed == "") != (r.Failed == "") {
				t.Errorf("Failed = %q, want it to say %q", r.Failed, tc.failed)
			}
			var codes []rehearsal.Code
			for _, x := range r.Warnings {
				codes = append(codes, x.Code)
			}
			if !slices.Equal(codes, tc.warnings) {
				t.Errorf("warnings %v, want %v:\n%s", codes, tc.warnings, r.Text())
			}
			var rewritten []string
			for _, x := range r.Rewrites {
				rewritten = append(rewritten, x.Name)
			}
			if !slices.Equal(rewritten, tc.rewrites) {
				t.Errorf("rewrites %v, want %v", rewritten, tc.rewrites)
			}
			if !slices.Equal(r.Rows, tc.rows) {
				t.Errorf("rows written %+v, want %+v", r.Rows, tc.rows)
			}
			if tc.lock != "" {
				if got := strongestOn(r, "orders"); got != tc.lock {
					t.Errorf("strongest lock on orders seen long enough to matter %q, want %q:\n%s", got, tc.lock, r.Text())
				}
			}
			if len(r.Notes) > 0 && tc.failed == "" {
				t.Errorf("notes %q: the measurement should be complete", r.Notes)
			}
			for i, x := range r.Warnings {
				if tc.briefStatement != "" && x.Statement != "" && x.Statement != tc.briefStatement {
					t.Errorf("warning %s names the statement %q, want %q", x.Code, x.Statement, tc.briefStatement)
				}
				if tc.briefStatement != "" {
					r.Warnings[i].Statement = ""
				}
			}
			checkGolden(t, tc.name+".golden", normalize(golden(r).Text()))
			if tc.name == "change-column-type" {
				checkGolden(t, tc.name+".md.golden", normalize(golden(r).Markdown()))
			}
		})
	}
}

// strongestOn is the strongest lock on table held long enough to be seen
// every time.
func strongestOn(r rehearsal.Report, table string) string {
	for _, l := range r.Locks {
		if l.Table == table && lasting(r, l) {
			return l.Mode
		}
	}
	return ""
}
