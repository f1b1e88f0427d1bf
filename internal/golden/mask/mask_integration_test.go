package mask_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/testenv"
)

// server starts a throwaway PostgreSQL for one test, the way golden builds
// run theirs (fsync off: a crashed test throws it away).
func server(t *testing.T) pgserver.Server {
	t.Helper()
	bin, u := testenv.Postgres(t)
	home := testenv.Home(t)
	srv := pgserver.Server{Bin: bin, User: u, DataDir: filepath.Join(home, "data"),
		SocketDir: pgserver.SocketDir(filepath.Join(home, "run")), LogFile: filepath.Join(home, "pg.log")}
	if err := os.MkdirAll(srv.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := u.Own(home); err != nil {
		t.Fatal(err)
	}
	if err := u.Own(srv.DataDir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin.Path("initdb"), "-D", srv.DataDir, "-U", pgserver.Superuser, "--auth-local=peer", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = home
	u.Prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if err := pgserver.WriteAuth(srv.DataDir, u, nil); err != nil {
		t.Fatal(err)
	}
	lo, _ := testenv.PortRange(t, 1)
	srv.Port = lo
	settings := map[string]string{"listen_addresses": "", "fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
		"wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "4GB", "maintenance_work_mem": "256MB"}
	if err := srv.Start(context.Background(), time.Minute, settings); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(time.Minute) })
	return srv
}

// database creates db from sql and returns a connection to it.
func database(t *testing.T, srv pgserver.Server, db, sql string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, db, sql); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.ConnString(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// fixture is issue 11's schema: people with the usual personal columns,
// orders that reference them by id and by email; n people, 2n orders.
func fixture(n int) string { return fixtureOrders(n, 2*n) }

// fixtureOrders is fixture with its own number of orders: order i belongs to
// person 1 + i % people. The rows go in before the keys are made (one sort
// per index, one query per foreign key): 1,000,000 people and 2,000,000
// orders loaded in 12 s this way, 46 s with the keys checked row by row.
// The constraints get the names they would get inline (people_email_key,
// orders_customer_email_fkey).
func fixtureOrders(people, orders int) string {
	return fmt.Sprintf(`
CREATE TABLE people (
  id int NOT NULL,
  email text NOT NULL,
  username text NOT NULL,
  full_name text NOT NULL,
  phone text,
  address text,
  dob date,
  notes text,
  profile jsonb
);
CREATE TABLE orders (
  id int NOT NULL,
  person_id int NOT NULL,
  customer_email text NOT NULL,
  shipping_address text,
  total numeric(10,2) NOT NULL CHECK (total >= 0),
  status text NOT NULL
);
INSERT INTO people
SELECT i, 'Customer.' || i || '@Corp.example', 'cust' || i, 'Real Name ' || i,
       CASE WHEN i %% 10 = 0 THEN NULL ELSE '+44 20 7946 ' || lpad(i::text, 4, '0') END,
       i || ' Real Street, Realtown',
       date '1970-01-01' + (i %% 15000),
       'Call me at real' || i || '@corp.example or on the phone.' || E'\tTabbed\nline',
       jsonb_build_object('address', i || ' Real Street', 'theme', 'dark',
         'contacts', jsonb_build_array(jsonb_build_object('email', 'friend' || i || '@corp.example', 'kind', 'friend'),
                                       jsonb_build_object('email', 'Customer.' || i || '@Corp.example', 'kind', 'self')))
FROM generate_series(1, %[1]d) i;
INSERT INTO orders
SELECT i, 1 + i %% %[1]d, 'Customer.' || (1 + i %% %[1]d) || '@Corp.example', i || ' Real Street', (i %% 500) + 0.99,
       CASE WHEN i %% 3 = 0 THEN 'shipped' ELSE 'paid' END
FROM generate_series(1, %[2]d) i;
ALTER TABLE people ADD PRIMARY KEY (id), ADD UNIQUE (email), ADD UNIQUE (username);
ALTER TABLE orders ADD PRIMARY KEY (id),
  ADD FOREIGN KEY (person_id) REFERENCES people(id) ON DELETE CASCADE,
  ADD FOREIGN KEY (customer_email) REFERENCES people(email);
`, people, orders)
}

func fixtureRules(salt string) mask.Rules {
	return mask.Rules{
		Salt: salt,
		Tables: map[string]map[string]mask.Rule{
			"people": {
				"email":     {Transformer: "email"},
				"username":  {Transformer: "template", Template: "user{{.id}}"},
				"full_name": {Transformer: "person_name"},
				"phone":     {Transformer: "phone"},
				"address":   {Transformer: "address", Where: "id % 2 = 0"},
				"dob":       {Transformer: "date_shift", Days: 30},
				"notes":     {Transformer: "redact"},
				"profile":   {JSON: map[string]string{"$.address": "address", "$.contacts[*].email": "email"}, Transformer: "json"},
			},
			"orders": {
				"customer_email":   {Transformer: "email"},
				"shipping_address": {Transformer: "sql", SQL: "'Locker ' || (id % 100)"},
			},
		},
		Keep: []string{"orders.total", "orders.status"},
	}
}

// dump returns every masked row as text, in key order.
func dump(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
SELECT p::text FROM people p ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows, err = conn.Query(context.Background(), `SELECT o::text FROM orders o ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	more, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return append(out, more...)
}

func count(t *testing.T, conn *pgx.Conn, q string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestApply_MasksTheFixtureDeterministicallyAndKeepsEveryKey(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	const n = 2000
	a := database(t, srv, "a", fixture(n))
	b := database(t, srv, "b", fixture(n))
	c := database(t, srv, "c", fixture(n))
	source := dump(t, a)

	rep, err := mask.Apply(ctx, a, fixtureRules("salt-one"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, tr := range rep.Tables {
		got[tr.Table] = tr.Rows
	}
	if got["people"] != n || got["orders"] != 2*n || len(rep.Tables) != 2 {
		t.Errorf("report = %+v, want people %d rows and orders %d", rep.Tables, n, 2*n)
	}
	if _, err := mask.Apply(ctx, b, fixtureRules("salt-one")); err != nil {
		t.Fatal(err)
	}
	if _, err := mask.Apply(ctx, c, fixtureRules("salt-two")); err != nil {
		t.Fatal(err)
	}
	masked, again, other := dump(t, a), dump(t, b), dump(t, c)
	if len(masked) != 3*n {
		t.Fatalf("%d rows after masking, want %d", len(masked), 3*n)
	}
	for i := range masked {
		if masked[i] == source[i] {
			t.Fatalf("row unchanged by masking: %s", masked[i])
		}
		if masked[i] != again[i] {
			t.Fatalf("two runs with the same salt differ:\n%s\n%s", masked[i], again[i])
		}
	}
	sameOther := 0
	for i := range masked {
		if masked[i] == other[i] {
			sameOther++
		}
	}
	if sameOther > 0 {
		t.Errorf("%d rows the same under another salt", sameOther)
	}

	// Nothing of the source is left where a rule applies.
	for q, want := range map[string]int64{
		`SELECT count(*) FROM people WHERE email ILIKE '%corp.example'`:                                                                  0,
		`SELECT count(*) FROM people WHERE email !~ '^[a-z]+\.[0-9a-f]{16}@example\.com$'`:                                               0,
		`SELECT count(*) FROM people WHERE full_name LIKE 'Real Name%' OR full_name !~ '^[A-Z][a-z]+ [A-Z][a-z]+$'`:                      0,
		`SELECT count(*) FROM people WHERE phone !~ '^\+1-[2-9][0-9]{2}-555-01[0-9]{2}$'`:                                                0,
		`SELECT count(*) FROM people WHERE phone IS NULL`:                                                                                n / 10, // NULL stays NULL
		`SELECT count(*) FROM people WHERE notes <> '[redacted]'`:                                                                        0,
		`SELECT count(*) FROM people WHERE username <> 'user' || id`:                                                                     0,
		`SELECT count(*) FROM people WHERE profile::text ILIKE '%corp.example%' OR profile::text LIKE '%Real Street%'`:                   0,
		`SELECT count(*) FROM people WHERE profile->>'theme' <> 'dark' OR profile->'contacts'->0->>'kind' <> 'friend'`:                   0,
		`SELECT count(*) FROM people WHERE profile->'contacts'->1->>'email' <> email`:                                                    0, // the same email in JSON and column
		`SELECT count(*) FROM people WHERE dob = date '1970-01-01' + (id % 15000) OR abs(dob - (date '1970-01-01' + (id % 15000))) > 30`: 0,
		// where: only even ids are masked.
		`SELECT count(*) FROM people WHERE id % 2 = 1 AND address <> id || ' Real Street, Realtown'`: 0,
		`SELECT count(*) FROM people WHERE id % 2 = 0 AND address LIKE '%Real Street%'`:              0,
		`SELECT count(*) FROM orders WHERE shipping_address <> 'Locker ' || (id % 100)`:              0,
		// keep: untouched.
		`SELECT count(*) FROM orders WHERE total <> (id % 500) + 0.99 OR status <> CASE WHEN id % 3 = 0 THEN 'shipped' ELSE 'paid' END`: 0,
		// Joins on the natural key still work, and every foreign key holds.
		`SELECT count(*) FROM orders o JOIN people p ON p.id = o.person_id WHERE o.customer_email <> p.email`:      0,
		`SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.email = o.customer_email)`: 0,
		`SELECT count(*) FROM orders o JOIN people p ON p.email = o.customer_email`:                                2 * n,
	} {
		if got := count(t, a, q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	// The salt is nowhere in the database.
	if got := count(t, a, `SELECT count(*) FROM people p WHERE p::text LIKE '%salt-one%'`); got != 0 {
		t.Errorf("the salt is in %d rows", got)
	}
}

func TestApply_ACollisionOnAUniqueIndexFailsNamingItAndChangesNothing(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	conn := database(t, srv, "app", fixture(50))
	before := dump(t, conn)
	r := fixtureRules("salt")
	r.Tables["people"]["email"] = mask.Rule{Transformer: "redact"}
	r.Tables["orders"]["customer_email"] = mask.Rule{Transformer: "redact"}
	_, err := mask.Apply(ctx, conn, r)
	var ce *mask.ConstraintError
	if !errors.As(err, &ce) || !errors.Is(err, mask.ErrConstraint) {
		t.Fatalf("err = %v, want a ConstraintError", err)
	}
	if ce.Constraint != "people_email_key" || ce.Kind != "unique index" || !strings.Contains(err.Error(), "email: redact") {
		t.Errorf("err = %v, want it to name unique index people_email_key and the rule email: redact", err)
	}
	if after := dump(t, conn); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Error("a failed Apply changed the data")
	}
}

func TestApply_AForeignKeyBrokenByMaskingOneSideFailsNamingIt(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	conn := database(t, srv, "app", fixture(50))
	r := fixtureRules("salt")
	r.Tables["orders"]["customer_email"] = mask.Rule{Transformer: "hash"}
	_, err := mask.Apply(ctx, conn, r)
	var ce *mask.ConstraintError
	if !errors.As(err, &ce) || ce.Constraint != "orders_customer_email_fkey" || ce.Kind != "foreign key" {
		t.Fatalf("err = %v, want foreign key orders_customer_email_fkey named", err)
	}
	if !strings.Contains(err.Error(), "100 rows of orders") {
		t.Errorf("err = %v, want it to count the 100 orphaned orders", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM orders o JOIN people p ON p.email = o.customer_email`); n != 100 {
		t.Errorf("after a refused Apply %d orders join their person by email, want all 100", n)
	}
}

func TestApply_KeepsUniqueColumnsUniqueOnAMillionPeople(t *testing.T) {
	if testing.Short() {
		t.Skip("masks 1,000,000 people (issue 11's size), about 50 s on 2 cores; runs without -short")
	}
	srv := server(t)
	ctx := context.Background()
	// Issue 11 asks for 1,000,000 rows. One order per person (not the
	// fixture's two) still puts the email foreign key on every person, at
	// half the orders' cost. Measured on the 2 cores this was written on,
	// over 3 runs with little else running: 48 to 53 s in all (load 12 to
	// 16 s; Apply 30 to 36 s, most of it people's 8 rules with JSON and a
	// template among them: 26 s of 30 in the quickest run, orders 2.4 s;
	// checks 3 to 4 s); 67 to 71 s while other tests were building and
	// running.
	const people, orders = 1_000_000, 1_000_000
	t0 := time.Now()
	// source_people keeps the unmasked keys (no rule names the table) to
	// compare with.
	conn := database(t, srv, "app", fixtureOrders(people, orders)+`
CREATE TABLE source_people AS SELECT id, email, username FROM people;`)
	load := time.Since(t0)
	t0 = time.Now()
	rep, err := mask.Apply(ctx, conn, fixtureRules("salt"))
	if err != nil {
		t.Fatal(err)
	}
	apply := time.Since(t0)
	t0 = time.Now()
	got := map[string]int64{}
	for _, tr := range rep.Tables {
		got[tr.Table] = tr.Rows
	}
	if got["people"] != people || got["orders"] != orders {
		t.Errorf("report = %+v, want people %d rows and orders %d", rep.Tables, people, orders)
	}
	for _, col := range []string{"email", "username"} {
		if n := count(t, conn, `SELECT count(DISTINCT `+col+`) FROM people`); n != people {
			t.Errorf("%d distinct %s for %d people", n, col, people)
		}
	}
	for q, want := range map[string]int64{
		// Every person is still there with the key it had, and neither their
		// email (whatever its case) nor their username is the source's.
		`SELECT count(*) FROM people p JOIN source_people s USING (id) WHERE lower(p.email) <> lower(s.email) AND p.username <> s.username`: people,
		// Every order joins its person by id and by email, the same person.
		`SELECT count(*) FROM orders o JOIN people p ON p.id = o.person_id AND p.email = o.customer_email`: orders,
	} {
		if n := count(t, conn, q); n != want {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
	// The unique indexes were kept up to date as the masked rows went back
	// in, and are still valid, ready and live.
	var valid []string
	if err := conn.QueryRow(ctx, `
SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid IN ('people'::regclass, 'orders'::regclass) AND i.indisunique
  AND i.indisvalid AND i.indisready AND i.indislive`).Scan(&valid); err != nil {
		t.Fatal(err)
	}
	if want := "orders_pkey people_email_key people_pkey people_username_key"; strings.Join(valid, " ") != want {
		t.Errorf("valid unique indexes after masking: %v, want %s", valid, want)
	}
	t.Logf("%d people and %d orders: loaded in %v, masked in %v (%+v), checked in %v", people, orders,
		load.Round(time.Millisecond), apply.Round(time.Millisecond), rep.Tables, time.Since(t0).Round(time.Millisecond))
}

func TestValidate_RefusesBadRulesNamingTheColumn(t *testing.T) {
	srv := server(t)
	ctx := context.Background()
	conn := database(t, srv, "app", fixture(5))
	rule := func(table, col string, r mask.Rule) mask.Rules {
		return mask.Rules{Salt: "s", Tables: map[string]map[string]mask.Rule{table: {col: r}}}
	}
	cases := []struct {
		name  string
		rules mask.Rules
		want  []string
	}{
		{"unknown table", rule("peple", "email", mask.Rule{Transformer: "email"}), []string{`table "peple" does not exist`, `did you mean "people"?`}},
		{"unknown column", rule("people", "emial", mask.Rule{Transformer: "email"}), []string{"people.emial", `no column "emial"`, `did you mean "email"?`}},
		{"unknown transformer", rule("people", "email", mask.Rule{Transformer: "emails"}), []string{"people.email", `unknown transformer "emails"`, `did you mean "email"?`}},
		{"email on an integer", rule("orders", "person_id", mask.Rule{Transformer: "email"}), []string{"orders.person_id", "transformer email does not fit type integer"}},
		{"set_null on NOT NULL", rule("people", "full_name", mask.Rule{Transformer: "set_null"}), []string{"people.full_name", "NOT NULL"}},
		{"missing salt", mask.Rules{Tables: map[string]map[string]mask.Rule{"people": {"email": {Transformer: "email"}}}}, []string{"salt: missing"}},
		{"where that does not parse", rule("people", "email", mask.Rule{Transformer: "email", Where: "id >> AND"}), []string{"people.email", `where "id >> AND" does not parse`}},
		{"where over an unknown column", rule("people", "email", mask.Rule{Transformer: "email", Where: "idd > 3"}), []string{"people.email", "does not parse", "idd"}},
		{"sql that does not parse", rule("orders", "status", mask.Rule{Transformer: "sql", SQL: "'x' ||"}), []string{"orders.status", "does not parse"}},
		{"a bad JSON path", rule("people", "profile", mask.Rule{JSON: map[string]string{"contacts": "email"}, Transformer: "json"}), []string{"people.profile", "must start with $"}},
		{"unknown keep", mask.Rules{Keep: []string{"orders.totl"}}, []string{"keep orders.totl", `did you mean "total"?`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := mask.Validate(ctx, conn, c.rules)
			if !errors.Is(err, mask.ErrRules) {
				t.Fatalf("err = %v, want ErrRules", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
		})
	}
	if err := mask.Validate(ctx, conn, fixtureRules("s")); err != nil {
		t.Errorf("the fixture's rules: %v", err)
	}
	if n := count(t, conn, `SELECT count(*) FROM people WHERE email ILIKE '%corp.example'`); n != 5 {
		t.Errorf("Validate changed the data: %d source emails left of 5", n)
	}
}
