package scan_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/examples/demo/app/migrations"
	"github.com/prenv/prenv/internal/golden/scan"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/testenv"
)

// serve builds a golden generation from sql, starts a server on it and
// returns a connection to its application database.
func serve(t *testing.T, sql string) *pgx.Conn {
	t.Helper()
	home := testenv.Home(t)
	g := testenv.Golden(t, home, sql)
	bin, u := testenv.Postgres(t)
	port, _ := testenv.PortRange(t, 1)
	srv := pgserver.Server{Bin: bin, User: u, DataDir: g.DataDir(),
		SocketDir: pgserver.SocketDir(filepath.Join(home, "run")), Port: port, LogFile: filepath.Join(g.Dir, "scan-test.log")}
	ctx := context.Background()
	if err := srv.Start(ctx, time.Minute, map[string]string{"listen_addresses": ""}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(time.Minute) })
	conn, err := pgx.Connect(ctx, srv.ConnString(g.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// fixtureSQL has people with every kind of personal data and orders with
// none (issue 11, section 5).
const fixtureSQL = `
CREATE TABLE people (
    id         serial PRIMARY KEY,
    full_name  text NOT NULL,
    email      text NOT NULL UNIQUE,
    phone      text,
    ssn        text,
    last_ip    inet,
    notes      text,
    profile    jsonb,
    verified   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO people (full_name, email, phone, ssn, last_ip, notes, profile, created_at)
SELECT (ARRAY['Jane','Omar','Priya','Lukas','Sofia','Kenji'])[1 + i % 6] || ' ' || (ARRAY['Doe','Haddad','Sharma','Weber','Rossi','Sato','Okafor'])[1 + i % 7],
       'person' || i || '@example.org',
       CASE WHEN i % 2 = 0 THEN '+1 415 555 ' || lpad(i::text, 4, '0') ELSE '(212) 555-' || lpad(i::text, 4, '0') END,
       lpad((100 + i)::text, 3, '0') || '-' || lpad((10 + i % 80)::text, 2, '0') || '-' || lpad((1000 + i)::text, 4, '0'),
       CASE WHEN i % 3 = 0 THEN ('2001:db8::' || to_hex(i))::inet ELSE ('203.0.113.' || (i % 250 + 1))::inet END,
       CASE WHEN i % 3 = 0 THEN 'Asked us to write to backup' || i || '@example.net instead of the usual address.'
            ELSE 'Prefers delivery after 6pm, leave at the door.' END,
       jsonb_build_object('theme', 'dark', 'contacts', jsonb_build_array(jsonb_build_object('kind', 'work', 'email', 'work' || i || '@corp.example.com'))),
       timestamptz '2024-01-01' + i * interval '7 hours'
FROM generate_series(1, 300) i;

CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    person_id  int NOT NULL REFERENCES people(id),
    status     text NOT NULL,
    total      numeric(10,2) NOT NULL,
    created_at timestamptz NOT NULL,
    sku        text NOT NULL,
    ref        uuid NOT NULL,
    quantity   int NOT NULL,
    shipped_on date,
    gift       boolean NOT NULL,
    tags       text[] NOT NULL,
    meta       jsonb NOT NULL
);
INSERT INTO orders (person_id, status, total, created_at, sku, ref, quantity, shipped_on, gift, tags, meta)
SELECT 1 + i % 300, (ARRAY['placed','paid','shipped','delivered','refunded'])[1 + i % 5],
       round((i * 37 % 100000) / 100.0 + 0.99, 2), timestamptz '2025-01-01' + i * interval '13 minutes',
       'SKU-' || lpad((i % 9000 + 1000)::text, 4, '0') || '-' || (ARRAY['RED','BLU','GRN'])[1 + i % 3],
       md5(i::text)::uuid, 1 + i % 4, date '2025-01-03' + i % 300, i % 7 = 0,
       ARRAY['promo-' || (i % 12), 'batch-2025-' || lpad((i % 52)::text, 2, '0')],
       jsonb_build_object('channel', 'web', 'cart_items', i % 9, 'tracking', '1Z' || upper(substr(md5(i::text), 1, 16)), 'amount', to_char(i * 1.5, 'FM999990.00'))
FROM generate_series(1, 2000) i;
`

func columnsOf(findings []scan.Finding) map[string]string {
	out := map[string]string{}
	for _, f := range findings {
		key := f.Table + "." + f.Column
		if out[key] != "" {
			out[key] += ","
		}
		out[key] += f.Detector
	}
	return out
}

func TestScan_FindsExactlyThePersonalColumns(t *testing.T) {
	conn := serve(t, fixtureSQL)
	ctx := context.Background()
	t0 := time.Now()
	findings, err := scan.Scan(ctx, conn, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scan of 2 tables, 2300 rows: %v", time.Since(t0))
	want := map[string]string{
		"people.full_name": "person_name",
		"people.email":     "email",
		"people.phone":     "phone",
		"people.ssn":       "ssn",
		"people.last_ip":   "ip",
		"people.notes":     "email",
		"people.profile":   "email",
	}
	got := columnsOf(findings)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: found %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if want[k] == "" {
			t.Errorf("false positive: %s found as %s", k, v)
		}
	}
	for _, f := range findings {
		if f.Table == "people" && f.Column == "notes" && (f.Rate < 0.2 || f.Rate > 0.5) {
			t.Errorf("people.notes rate = %.2f, want about a third", f.Rate)
		}
		if f.Column != "notes" && f.Rate != 1 {
			t.Errorf("%s.%s rate = %.2f, want 1", f.Table, f.Column, f.Rate)
		}
	}

	var b bytes.Buffer
	scan.Report(&b, findings)
	if raw := regexp.MustCompile(`[a-z0-9]+@[a-z.]+\.(org|net|com)`).FindString(b.String()); raw != "" {
		t.Errorf("report shows the raw address %q:\n%s", raw, b.String())
	}
	if !strings.Contains(b.String(), "people: {notes: redact}") {
		t.Errorf("report does not suggest redacting the free-text notes:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "people.email") || !strings.Contains(b.String(), "p***@e***.org") {
		t.Errorf("report does not show people.email with a masked sample:\n%s", b.String())
	}
	t.Logf("report:\n%s", b.String())

	t.Run("Skip hides a column", func(t *testing.T) {
		f, err := scan.Scan(ctx, conn, scan.Options{Skip: map[string]bool{"people.ssn": true, "people.notes": true}})
		if err != nil {
			t.Fatal(err)
		}
		got := columnsOf(f)
		if got["people.ssn"] != "" || got["people.notes"] != "" || got["people.email"] != "email" {
			t.Errorf("findings with people.ssn and people.notes skipped: %v", got)
		}
	})

	t.Run("a table added later is scanned", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA marketing;
CREATE TABLE marketing.signups (id serial, contact text, source text);
INSERT INTO marketing.signups (contact, source) SELECT 'lead' || i || '@example.com', 'footer' FROM generate_series(1, 50) i;`); err != nil {
			t.Fatal(err)
		}
		f, err := scan.Scan(ctx, conn, scan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := columnsOf(f)
		if got["marketing.signups.contact"] != "email" || got["marketing.signups.source"] != "" {
			t.Errorf("after adding marketing.signups: %v", got)
		}
		skipped, err := scan.Scan(ctx, conn, scan.Options{Skip: map[string]bool{"marketing.signups.contact": true}})
		if err != nil {
			t.Fatal(err)
		}
		if got := columnsOf(skipped)["marketing.signups.contact"]; got != "" {
			t.Errorf("marketing.signups.contact skipped by its schema-qualified name: found %q", got)
		}
		if f[len(f)-1].Table != "people" || f[0].Table != "marketing.signups" {
			t.Errorf("findings not sorted by table: first %s, last %s", f[0].Table, f[len(f)-1].Table)
		}
	})

	t.Run("a column added later is scanned", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `ALTER TABLE orders ADD COLUMN billing_contact text;
UPDATE orders SET billing_contact = 'Call Jane on +44 7700 900' || lpad((id % 1000)::text, 3, '0') WHERE id > 1800;`); err != nil {
			t.Fatal(err)
		}
		f, err := scan.Scan(ctx, conn, scan.Options{SampleRows: 500})
		if err != nil {
			t.Fatal(err)
		}
		if got := columnsOf(f)["orders.billing_contact"]; got != "phone" {
			t.Errorf("orders.billing_contact filled in the newest 10%% of rows: found %q, want phone", got)
		}
	})
}

// The demo's golden source, as examples/demo/seed writes it and migration
// 0002 changes it: its personal columns are found (the street and postcode
// by their names) and none of its other columns are.
func TestScan_DemoDataHasNoFalsePositives(t *testing.T) {
	testenv.Postgres(t)
	seed := testenv.Build(t, "./examples/demo/seed")
	out, err := exec.Command(seed, "-people", "3000").Output()
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	m2, err := fs.ReadFile(migrations.FS, "0002_order_status.sql")
	if err != nil {
		t.Fatal(err)
	}
	sql := string(out) + string(m2) + `UPDATE orders SET status = (ARRAY['placed','paid','shipped','delivered'])[1 + id % 4];
INSERT INTO schema_migrations (version) VALUES ('0002_order_status');`
	conn := serve(t, sql)
	t0 := time.Now()
	findings, err := scan.Scan(context.Background(), conn, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scan of the demo (3000 people, about 15000 orders): %v", time.Since(t0))
	got := columnsOf(findings)
	personal := map[string]string{
		"people.full_name": "person_name", "people.email": "email", "people.phone": "phone",
		"people.street": "hint:address", "people.postcode": "hint:address",
	}
	for k, v := range personal {
		if got[k] != v {
			t.Errorf("%s: found %q, want %q", k, got[k], v)
		}
	}
	var cols []string
	rows, err := conn.Query(context.Background(), `SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	fp, clean := 0, 0
	for _, c := range cols {
		if personal[c] != "" {
			continue
		}
		clean++
		if got[c] != "" {
			fp++
			t.Errorf("false positive on the demo: %s found as %s", c, got[c])
		}
	}
	if clean < 10 {
		t.Fatalf("only %d non-personal columns in the demo: %v", clean, cols)
	}
	t.Logf("demo: %d of %d non-personal columns flagged", fp, clean)
	if os.Getenv("SCAN_REPORT") != "" {
		var b bytes.Buffer
		scan.Report(&b, findings)
		fmt.Print(b.String())
	}
}
