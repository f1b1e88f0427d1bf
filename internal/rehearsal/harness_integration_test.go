package rehearsal_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// cluster is one PostgreSQL shared by the package's tests, with the
// fixture database every case copies.
type cluster struct {
	srv  pgserver.Server
	base string
}

const (
	appRole     = "app"
	appPassword = "app-password"
	// migrationApp is the application_name of the migration's sessions in
	// the tests, as prenv sets PGAPPNAME for the migrate command.
	migrationApp = "migrate"
)

var shared struct {
	once sync.Once
	c    *cluster
	err  error
	n    int
	mu   sync.Mutex
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if c := shared.c; c != nil {
		c.srv.Stop(time.Minute)
		os.RemoveAll(c.base)
	}
	os.Exit(code)
}

// fixtureRows is the size of the golden: large enough that a rewrite, an
// index build or a validation takes hundreds of milliseconds, well above
// the tests' 10 ms sampling interval.
const (
	fixtureOrders    = 300_000
	fixtureCustomers = 30_000
)

// fixtureSQL is the golden database: customers, and orders that reference
// them (customer_id with a foreign key, billing_customer_id without one for
// the foreign-key cases). Rows go in before the keys are made.
var fixtureSQL = fmt.Sprintf(`
CREATE TABLE customers (id bigint NOT NULL, email text NOT NULL, name text NOT NULL);
CREATE TABLE orders (
  id bigint NOT NULL,
  customer_id bigint NOT NULL,
  billing_customer_id bigint NOT NULL,
  status text NOT NULL,
  total_cents integer NOT NULL,
  note text,
  placed_at timestamptz NOT NULL
);
INSERT INTO customers SELECT i, 'customer' || i || '@example.test', 'Customer ' || i FROM generate_series(1, %[2]d) i;
INSERT INTO orders
SELECT i, 1 + i %% %[2]d, 1 + (i * 7) %% %[2]d, (ARRAY['paid', 'shipped', 'delivered'])[1 + i %% 3], 100 + i %% 9000,
       CASE WHEN i %% 3 = 0 THEN 'leave at the door' END, timestamptz '2024-01-01' + i * interval '1 minute'
FROM generate_series(1, %[1]d) i;
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE orders ADD PRIMARY KEY (id), ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
`, fixtureOrders, fixtureCustomers)

// fixture returns the shared cluster, starting it and loading the fixture
// on first use (skipped under -short).
func fixture(t testing.TB) *cluster {
	t.Helper()
	bin, u := testenv.Postgres(t)
	shared.once.Do(func() {
		start := time.Now()
		shared.c, shared.err = startCluster(t, bin, u)
		t.Logf("fixture: %d orders, %d customers loaded in %v", fixtureOrders, fixtureCustomers, time.Since(start).Round(time.Millisecond))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

func startCluster(t testing.TB, bin pgserver.Binaries, u pgserver.User) (*cluster, error) {
	base, err := os.MkdirTemp("", "rehearsal-")
	if err != nil {
		return nil, err
	}
	os.Chmod(base, 0o755)
	c := &cluster{base: base}
	c.srv = pgserver.Server{Bin: bin, User: u, DataDir: filepath.Join(base, "data"),
		SocketDir: pgserver.SocketDir(filepath.Join(base, "run")), LogFile: filepath.Join(base, "pg.log")}
	if err := os.MkdirAll(c.srv.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := u.Own(base); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin.Path("initdb"), "-D", c.srv.DataDir, "-U", pgserver.Superuser, "--auth-local=peer", "-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = base
	u.Prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := pgserver.WriteAuth(c.srv.DataDir, u, nil); err != nil {
		return nil, err
	}
	c.srv.Port, _ = testenv.PortRange(t, 1)
	// Autovacuum off: a worker's ANALYZE or VACUUM would change reltuples
	// and take locks at random moments between the cases.
	settings := map[string]string{"listen_addresses": "", "fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
		"wal_level": "minimal", "max_wal_senders": "0", "max_wal_size": "4GB", "maintenance_work_mem": "256MB", "autovacuum": "off"}
	if err := c.srv.Start(context.Background(), time.Minute, settings); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := c.srv.Exec(ctx, "postgres",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", appRole, appPassword),
		"CREATE DATABASE fixture OWNER "+appRole); err != nil {
		return nil, err
	}
	// The application's role owns the tables, as in an environment: the
	// migration and the watcher run as it.
	conn, err := pgx.Connect(ctx, c.dsn("fixture"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fixtureSQL); err != nil {
		return nil, fmt.Errorf("load the fixture: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, err
	}
	return c, nil
}

// dsn is the application role's connection string for db.
func (c *cluster) dsn(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5", c.srv.SocketDir, c.srv.Port, appRole, appPassword, db)
}

// copyOf makes a new database from the fixture, as a clone of the golden
// generation, and drops it when the test ends.
func (c *cluster) copyOf(t testing.TB, template string) string {
	t.Helper()
	shared.mu.Lock()
	shared.n++
	db := fmt.Sprintf("env_%d", shared.n)
	shared.mu.Unlock()
	strategy := ""
	if c.srv.Bin.Major >= 15 {
		strategy = " STRATEGY = FILE_COPY"
	}
	ctx := context.Background()
	if err := c.srv.Exec(ctx, "postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s%s", db, template, appRole, strategy)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.srv.Exec(context.Background(), "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	return db
}

// migrate runs sql as a migration tool would: psql in its own process, as
// the application's role, one statement at a time, stopping at the first
// error. The error carries psql's message.
func (c *cluster) migrate(ctx context.Context, db, sql string) error {
	cmd, stderr, err := c.psql(ctx, db, sql)
	if err != nil {
		return err
	}
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return errors.New(msg)
		}
		return err
	}
	return nil
}

// psql prepares the migration's process; the file is named migration.sql
// in psql's working directory, so its messages read "psql:migration.sql:3:".
func (c *cluster) psql(ctx context.Context, db, sql string) (*exec.Cmd, *bytes.Buffer, error) {
	dir, err := os.MkdirTemp(c.base, "migration-")
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "migration.sql"), []byte(sql), 0o644); err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, c.srv.Bin.Path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "migration.sql")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PGHOST=" + c.srv.SocketDir, fmt.Sprintf("PGPORT=%d", c.srv.Port),
		"PGUSER=" + appRole, "PGPASSWORD=" + appPassword, "PGDATABASE=" + db, "PGAPPNAME=" + migrationApp, "PGCONNECT_TIMEOUT=5"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr, nil
}

// testOptions make the outcome of every case deterministic on the
// fixture: sampling every 10 ms, a 100 ms lock budget (a catalog-only
// ALTER holds its lock for a few ms, a rewrite of 300,000 rows for
// hundreds), a 200 ms backfill threshold.
func testOptions() rehearsal.Options {
	return rehearsal.Options{
		Interval:        10 * time.Millisecond,
		LockBudget:      100 * time.Millisecond,
		LongBackfill:    200 * time.Millisecond,
		ApplicationName: migrationApp,
	}
}

// lasting says whether a lock hold is one that is seen every time, not by
// chance: a catalog-only ALTER holds its lock for milliseconds (seen in one
// sample, or none, while psql's start takes most of its migration's time);
// the fixture's rewrites, index builds and validations hold theirs for most
// of their migration, 50 ms and more on a fast machine, 300 ms and more on
// a busy one. No one duration parts them on every machine (a busy one makes
// a few ms tens, a fast one makes an index build 0.1 s), so a hold counts
// when it spans three samples and at least 40% of the migration. Holds that
// do not are left out of the golden files.
func lasting(r rehearsal.Report, l rehearsal.LockHold) bool {
	return l.Seconds >= 3*r.Interval && l.Seconds >= 0.4*r.Seconds
}

var (
	durationRE = regexp.MustCompile(`\b\d+(\.\d+)? s\b`)
	pidRE      = regexp.MustCompile(`\bpid \d+\b`)
)

// golden renders the report as a user sees it in a terminal, without what
// changes from run to run: durations, process ids, and lock holds too brief
// to be seen every time.
func golden(r rehearsal.Report) rehearsal.Report {
	var locks []rehearsal.LockHold
	for _, l := range r.Locks {
		if lasting(r, l) {
			locks = append(locks, l)
		}
	}
	r.Locks = locks
	return r
}

func normalize(text string) string {
	text = durationRE.ReplaceAllString(text, "x.xx s")
	return pidRE.ReplaceAllString(text, "pid <n>")
}

// checkGolden compares got with testdata/name, or writes it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/rehearsal -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("the report differs from %s (go test ./internal/rehearsal -update rewrites it; review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
