package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
)

// ReflinkDirEnv names a directory on a reflink-capable filesystem (made by
// scripts/reflink-volume.sh); homes are made there when it is set.
const ReflinkDirEnv = "PRENV_TEST_REFLINK_DIR"

// Home returns a fresh PRENV_HOME that an unprivileged PostgreSQL user can
// reach, and stops every postgres under it when the test ends.
func Home(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	if d := os.Getenv(ReflinkDirEnv); d != "" {
		var err error
		base, err = os.MkdirTemp(d, "home-")
		if err != nil {
			t.Fatalf("%s=%s: %v", ReflinkDirEnv, d, err)
		}
		os.Chmod(base, 0o755)
		t.Cleanup(func() { os.RemoveAll(base) })
	}
	Reachable(t, base)
	home := filepath.Join(base, "prenv")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopServers(home) })
	return home
}

// Reachable opens dir and its parents up to the temp root for traversal,
// as t.TempDir makes them 0700 and postgres may run as another user.
func Reachable(t testing.TB, dir string) {
	t.Helper()
	tmp := os.TempDir()
	for d := dir; strings.HasPrefix(d, tmp) && d != tmp; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
}

// StopServers stops every postgres whose data directory is under home.
func StopServers(home string) { pgserver.StopUnder(home, 20*time.Second) }

// Postgres returns the server binaries, skipping the test under -short.
func Postgres(t testing.TB) (pgserver.Binaries, pgserver.User) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the PostgreSQL server binaries; runs without -short")
	}
	bin, err := pgserver.FindBinaries(context.Background(), "")
	if err != nil {
		t.Fatalf("%v (scripts/setup.sh installs them)", err)
	}
	u, err := pgserver.ResolveUser("postgres")
	if err != nil {
		t.Fatal(err)
	}
	return bin, u
}

// Golden builds a golden generation in home from sql and returns it.
func Golden(t testing.TB, home, sql string) golden.Generation {
	t.Helper()
	bin, u := Postgres(t)
	f := filepath.Join(t.TempDir(), "golden.sql")
	if err := os.WriteFile(f, []byte(sql), 0o644); err != nil {
		t.Fatal(err)
	}
	// The fixtures are synthetic people for tests of everything but
	// masking (internal/golden/mask and scan test that): promoted as is.
	b := &golden.Builder{Home: home, Bin: bin, User: u, Database: "app", AppUser: "app", AllowPII: true}
	g, err := b.Build(context.Background(), golden.Source{SQLFile: f})
	if err != nil {
		t.Fatalf("golden build: %v", err)
	}
	return g
}

// PeopleSQL is a small golden source: a table of people.
const PeopleSQL = `
CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL);
INSERT INTO people (name, email) SELECT 'Person ' || i, 'p' || i || '@example.test' FROM generate_series(1, 500) i;
`

// PortRange returns n consecutive free ports for one test's clones, so that
// tests running in parallel packages do not share a pool. The ports lie
// below the kernel's ephemeral range (32768 and up), where the apps' ports
// come from, spread by process id and wrapping around.
func PortRange(t testing.TB, n int) (int, int) {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	const lo, hi = 20000, 32700
	start := (os.Getpid()%100)*120 + nextPort
	for i := 0; i < (hi-lo)/n; i++ {
		m := hi - lo - n
		first := lo + ((start+i*n)%m+m)%m
		ok := true
		for p := first; p < first+n; p++ {
			if !pgserver.FreePort(p) {
				ok = false
				break
			}
		}
		if ok {
			nextPort = first + n - lo - (os.Getpid()%100)*120
			return first, first + n - 1
		}
	}
	t.Fatal("no free port range between 20000 and 32700")
	return 0, 0
}

var (
	portMu   sync.Mutex
	nextPort int
)

// QueryInt runs q (which returns one integer) against url.
func QueryInt(t testing.TB, url, q string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// Server starts an empty PostgreSQL server of its own for the test (stopped
// at its end) and returns the superuser's URL over the socket
// (postgres:///postgres?host=...): for stores and queues that live in
// PostgreSQL.
func Server(t testing.TB) string {
	t.Helper()
	bin, u := Postgres(t)
	dir := filepath.Join(Home(t), "server")
	first, _ := PortRange(t, 1)
	_, url, err := pgserver.StartEmpty(context.Background(), bin, u, dir, first, map[string]string{"fsync": "off"})
	t.Cleanup(func() { StopServers(filepath.Dir(dir)) })
	if err != nil {
		t.Fatal(err)
	}
	return url
}
