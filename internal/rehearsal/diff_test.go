package rehearsal_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"
)

func TestDiff_ReportsEveryKindOfObjectAddedDroppedOrChanged(t *testing.T) {
	before := rehearsal.Schema{
		Tables: []rehearsal.Table{
			{
				Name: "public.orders",
				Columns: []rehearsal.Column{
					{Name: "id", Type: "bigint", NotNull: true, Identity: "by default"},
					{Name: "total", Type: "integer", NotNull: true, Default: "0"},
					{Name: "note", Type: "text"},
					{Name: "status", Type: "text"},
					{Name: "tax", Type: "integer", Default: "(total / 5)", Generated: true},
					{Name: "kept", Type: "text"},
				},
				Indexes: []rehearsal.Index{
					{Name: "orders_pkey", Definition: "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)", Valid: true, Constraint: true},
					{Name: "orders_status_idx", Definition: "CREATE INDEX orders_status_idx ON public.orders USING btree (status)", Valid: true},
					{Name: "orders_note_idx", Definition: "CREATE INDEX orders_note_idx ON public.orders USING btree (note)", Valid: true},
					{Name: "orders_total_idx", Definition: "CREATE INDEX orders_total_idx ON public.orders USING btree (total)", Valid: true},
				},
				Constraints: []rehearsal.Constraint{
					{Name: "orders_pkey", Type: "primary key", Definition: "PRIMARY KEY (id)", Validated: true},
					{Name: "orders_total_check", Type: "check", Definition: "CHECK ((total >= 0))", Validated: true},
					{Name: "orders_customer_fkey", Type: "foreign key", Definition: "FOREIGN KEY (customer_id) REFERENCES customers(id) NOT VALID"},
					{Name: "orders_gone_check", Type: "check", Definition: "CHECK ((id > 0))", Validated: true},
				},
				Triggers: []rehearsal.Trigger{
					{Name: "orders_touch", Definition: "CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION touch()"},
					{Name: "orders_audit", Definition: "CREATE TRIGGER orders_audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION audit()"},
				},
			},
			{Name: "public.legacy", Columns: []rehearsal.Column{{Name: "id", Type: "integer"}}},
			{Name: "billing.invoices", Columns: []rehearsal.Column{{Name: "id", Type: "integer"}}},
		},
		Views: []rehearsal.View{
			{Name: "public.big_orders", Definition: " SELECT id FROM orders WHERE total > 100;"},
			{Name: "public.daily", Definition: " SELECT 1;"},
			{Name: "public.old_report", Definition: " SELECT 2;"},
		},
		Functions: []rehearsal.Function{
			{Name: "public.fee(integer)", Kind: "function", Returns: "integer", Language: "sql", Definition: "SELECT $1 / 10"},
			{Name: "public.touch()", Kind: "function", Returns: "trigger", Language: "plpgsql", Definition: "v1"},
			{Name: "public.gone()", Kind: "function", Returns: "integer", Language: "sql", Definition: "SELECT 1"},
		},
		Extensions: []rehearsal.Extension{
			{Name: "citext", Version: "1.4", Schema: "public"},
			{Name: "hstore", Version: "1.8", Schema: "public"},
			{Name: "plpgsql", Version: "1.0", Schema: "pg_catalog"},
		},
	}
	after := rehearsal.Schema{
		Tables: []rehearsal.Table{
			{
				Name: "billing.invoices", Columns: []rehearsal.Column{{Name: "id", Type: "integer"}},
			},
			{
				Name: "public.orders",
				Columns: []rehearsal.Column{
					{Name: "id", Type: "bigint", NotNull: true, Identity: "always"},
					{Name: "total", Type: "bigint"},
					{Name: "status", Type: "text", NotNull: true, Default: "'new'::text"},
					{Name: "tax", Type: "integer", Default: "(total / 4)", Generated: true},
					{Name: "kept", Type: "text"},
					{Name: "priority", Type: "integer", NotNull: true, Default: "0"},
				},
				Indexes: []rehearsal.Index{
					{Name: "orders_pkey", Definition: "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)", Valid: true, Constraint: true},
					{Name: "orders_status_idx", Definition: "CREATE INDEX orders_status_idx ON public.orders USING btree (status)"},
					{Name: "orders_total_idx", Definition: "CREATE INDEX orders_total_idx ON public.orders USING btree (total, id)", Valid: true},
					{Name: "orders_lower_status_idx", Definition: "CREATE UNIQUE INDEX orders_lower_status_idx ON public.orders USING btree (lower(status)) WHERE (status IS NOT NULL)", Valid: true},
				},
				Constraints: []rehearsal.Constraint{
					{Name: "orders_pkey", Type: "primary key", Definition: "PRIMARY KEY (id)", Validated: true},
					{Name: "orders_total_check", Type: "check", Definition: "CHECK ((total >= 1))", Validated: true},
					{Name: "orders_customer_fkey", Type: "foreign key", Definition: "FOREIGN KEY (customer_id) REFERENCES customers(id)", Validated: true},
					{Name: "orders_status_check", Type: "check", Definition: "CHECK ((status <> ''::text)) NOT VALID"},
				},
				Triggers: []rehearsal.Trigger{
					{Name: "orders_touch", Definition: "CREATE TRIGGER orders_touch BEFORE UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION touch()", Disabled: true},
					{Name: "orders_audit", Definition: "CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION audit()"},
					{Name: "orders_notify", Definition: "CREATE TRIGGER orders_notify AFTER DELETE ON public.orders FOR EACH STATEMENT EXECUTE FUNCTION notify()"},
				},
			},
			{Name: "public.payouts", Columns: []rehearsal.Column{{Name: "id", Type: "bigint", NotNull: true}, {Name: "cents", Type: "bigint"}}},
		},
		Views: []rehearsal.View{
			{Name: "public.big_orders", Definition: " SELECT id FROM orders WHERE total > 500;"},
			{Name: "public.daily", Materialized: true, Definition: " SELECT 1;"},
			{Name: "public.regions", Definition: " SELECT 3;"},
		},
		Functions: []rehearsal.Function{
			{Name: "public.fee(integer)", Kind: "function", Returns: "bigint", Language: "sql", Definition: "SELECT $1 / 10"},
			{Name: "public.touch()", Kind: "function", Returns: "trigger", Language: "plpgsql", Definition: "v2"},
			{Name: "public.refund(bigint)", Kind: "procedure", Language: "plpgsql", Definition: "..."},
		},
		Extensions: []rehearsal.Extension{
			{Name: "citext", Version: "1.6", Schema: "public"},
			{Name: "pg_trgm", Version: "1.6", Schema: "public"},
			{Name: "plpgsql", Version: "1.0", Schema: "pg_catalog"},
		},
	}
	want := []rehearsal.Change{
		{Kind: "table", Object: "legacy", Action: "dropped"},
		{Kind: "column", Object: "id", Table: "orders", Action: "changed", Detail: "identity by default -> always"},
		{Kind: "column", Object: "total", Table: "orders", Action: "changed", Detail: "type integer -> bigint, default 0 -> none, not null -> nullable"},
		{Kind: "column", Object: "status", Table: "orders", Action: "changed", Detail: "default none -> 'new'::text, nullable -> not null"},
		{Kind: "column", Object: "tax", Table: "orders", Action: "changed", Detail: "generated (total / 5) -> (total / 4)"},
		{Kind: "column", Object: "priority", Table: "orders", Action: "added", Detail: "integer not null default 0"},
		{Kind: "column", Object: "note", Table: "orders", Action: "dropped", Detail: "text"},
		{Kind: "constraint", Object: "orders_customer_fkey", Table: "orders", Action: "changed", Detail: "not valid -> valid"},
		{Kind: "constraint", Object: "orders_gone_check", Table: "orders", Action: "dropped", Detail: "CHECK ((id > 0))"},
		{Kind: "constraint", Object: "orders_status_check", Table: "orders", Action: "added", Detail: "CHECK ((status <> ''::text)) NOT VALID"},
		{Kind: "constraint", Object: "orders_total_check", Table: "orders", Action: "changed", Detail: "CHECK ((total >= 0)) -> CHECK ((total >= 1))"},
		{Kind: "index", Object: "orders_lower_status_idx", Table: "orders", Action: "added", Detail: "unique btree (lower(status)) WHERE (status IS NOT NULL)"},
		{Kind: "index", Object: "orders_note_idx", Table: "orders", Action: "dropped", Detail: "btree (note)"},
		{Kind: "index", Object: "orders_status_idx", Table: "orders", Action: "changed", Detail: "valid -> invalid"},
		{Kind: "index", Object: "orders_total_idx", Table: "orders", Action: "changed", Detail: "btree (total) -> btree (total, id)"},
		{Kind: "trigger", Object: "orders_audit", Table: "orders", Action: "changed", Detail: "AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION audit() -> AFTER INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION audit()"},
		{Kind: "trigger", Object: "orders_notify", Table: "orders", Action: "added", Detail: "AFTER DELETE ON public.orders FOR EACH STATEMENT EXECUTE FUNCTION notify()"},
		{Kind: "trigger", Object: "orders_touch", Table: "orders", Action: "changed", Detail: "enabled -> disabled"},
		{Kind: "table", Object: "payouts", Action: "added", Detail: "id bigint, cents bigint"},
		{Kind: "view", Object: "big_orders", Action: "changed", Detail: "definition changed"},
		{Kind: "view", Object: "daily", Action: "changed", Detail: "view -> materialized view"},
		{Kind: "view", Object: "old_report", Action: "dropped"},
		{Kind: "view", Object: "regions", Action: "added"},
		{Kind: "function", Object: "fee(integer)", Action: "changed", Detail: "returns integer -> bigint"},
		{Kind: "function", Object: "gone()", Action: "dropped"},
		{Kind: "function", Object: "refund(bigint)", Action: "added", Detail: "procedure, language plpgsql"},
		{Kind: "function", Object: "touch()", Action: "changed", Detail: "definition changed"},
		{Kind: "extension", Object: "citext", Action: "changed", Detail: "version 1.4 -> 1.6"},
		{Kind: "extension", Object: "hstore", Action: "dropped"},
		{Kind: "extension", Object: "pg_trgm", Action: "added", Detail: "version 1.6"},
	}
	got := rehearsal.Diff(before, after)
	if !slices.Equal(got, want) {
		t.Errorf("Diff:")
		for i := 0; i < max(len(got), len(want)); i++ {
			var g, w rehearsal.Change
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			mark := "  "
			if g != w {
				mark = "! "
			}
			t.Logf("%sgot  %+v\n  want %+v", mark, g, w)
		}
	}

	// The caller stores the golden's schema as JSON and diffs against it later.
	data, err := json.Marshal(before)
	if err != nil {
		t.Fatal(err)
	}
	var stored rehearsal.Schema
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	if d := rehearsal.Diff(stored, before); len(d) != 0 {
		t.Errorf("a schema differs from its JSON round trip: %+v", d)
	}
	if !slices.Equal(rehearsal.Diff(stored, after), want) {
		t.Error("the diff from a stored schema differs from the diff from the schema read")
	}
}

func TestOptionsValidate_NamesTheFieldOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		opts rehearsal.Options
		want string
	}{
		{rehearsal.Options{}, ""},
		{rehearsal.DefaultOptions(), ""},
		{rehearsal.Options{LockBudget: -1}, "lock_budget"},
		{rehearsal.Options{LargeTableRows: -5}, "large_table_rows"},
		{rehearsal.Options{LongBackfill: -1}, "long_backfill"},
		{rehearsal.Options{Interval: time.Millisecond}, "interval 1ms is below 5ms"},
		{rehearsal.Options{Settle: -time.Second}, "settle"},
	} {
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want no error", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, rehearsal.ErrInvalidOptions)):
			t.Errorf("%+v: %v, want an ErrInvalidOptions naming %q", tc.opts, err, tc.want)
		}
	}
}
