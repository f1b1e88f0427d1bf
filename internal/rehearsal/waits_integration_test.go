package rehearsal_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/rehearsal"
)

// connect opens a session as the application's role with an
// application_name, closed when the test ends.
func connect(t *testing.T, c *cluster, db, app string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(c.dsn(db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitFor polls until cond holds, failing the test after a minute with what
// was awaited.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waiting reports whether a session of application app waits for a lock
// of locktype.
func waiting(conn *pgx.Conn, app, locktype string) func() (bool, error) {
	return func() (bool, error) {
		var n int
		err := conn.QueryRow(context.Background(), `
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE a.application_name = $1 AND l.locktype = $2 AND NOT l.granted`, app, locktype).Scan(&n)
		return n > 0, err
	}
}

// TestWatch_ShowsTheApplicationWaitingOnTheMigration holds the migration in
// its transaction after its ALTER (it waits for an advisory lock a release
// gate holds) while the running application reads the table: the report
// says the application waited for ACCESS SHARE on orders behind the
// migration, and the migration behind the gate.
func TestWatch_ShowsTheApplicationWaitingOnTheMigration(t *testing.T) {
	c := fixture(t)
	ctx := context.Background()
	db := c.copyOf(t, "fixture")
	gate := connect(t, c, db, "release-gate")
	probe := connect(t, c, db, "probe")
	if _, err := gate.Exec(ctx, "SELECT pg_advisory_lock(12)"); err != nil {
		t.Fatal(err)
	}

	w, err := rehearsal.Begin(ctx, c.dsn(db), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	cmd, stderr, err := c.psql(ctx, db, "BEGIN;\nALTER TABLE orders ALTER COLUMN total_cents TYPE bigint;\nSELECT pg_advisory_xact_lock(12);\nCOMMIT;\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the migration waiting at the gate with orders altered", waiting(probe, migrationApp, "advisory"))

	app := connect(t, c, db, "shop")
	counted := make(chan error, 1)
	go func() {
		var n int
		err := app.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n)
		if err == nil && n != fixtureOrders {
			err = fmt.Errorf("the application counted %d orders", n)
		}
		counted <- err
	}()
	waitFor(t, "the application waiting for orders", waiting(probe, "shop", "relation"))
	seen := rehearsal.SamplesTaken(w) + 2 // a whole sample after both waits began
	waitFor(t, "the watcher sampling both waits", func() (bool, error) { return rehearsal.SamplesTaken(w) >= seen, nil })

	if _, err := gate.Exec(ctx, "SELECT pg_advisory_unlock(12)"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("migration: %v: %s", err, stderr)
	}
	if err := <-counted; err != nil {
		t.Fatal(err)
	}
	r, err := w.Finish(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}

	var waits []string
	for _, x := range r.Waits {
		waits = append(waits, x.Waiter.Application+" waited for "+x.Mode+" "+x.Lock+" "+x.Table+" held by "+x.Blocker.Application)
	}
	want := []string{
		"migrate waited for EXCLUSIVE advisory  held by release-gate",
		"shop waited for ACCESS SHARE relation orders held by migrate",
	}
	slices.Sort(waits)
	if !slices.Equal(waits, want) {
		t.Errorf("waits:\n%s\nwant:\n%s", strings.Join(waits, "\n"), strings.Join(want, "\n"))
	}
	for _, x := range r.Waits {
		if x.Waiter.Application == "shop" && (x.Waiter.Query != "SELECT count(*) FROM orders" || !x.Blocker.Migration || x.Blocker.Query != "SELECT pg_advisory_xact_lock(12)") {
			t.Errorf("the application's wait shows %+v", x)
		}
	}
	checkGolden(t, "application-waits.golden", normalize(golden(r).Text()))
}
