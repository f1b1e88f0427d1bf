package localpg

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/testenv"
)

func newCloner(t *testing.T, home, owner string) *Cloner {
	c := New(home, owner, nil)
	c.FirstPort, c.LastPort = testenv.PortRange(t, 10)
	return c
}

func TestCloner_Conformance(t *testing.T) {
	testenv.Postgres(t)
	var home string
	dbclonetest.Run(t, dbclonetest.Harness{
		New: func(t *testing.T, owner string) dbclone.Cloner {
			if owner == "suite" {
				home = testenv.Home(t)
			}
			return newCloner(t, home, owner)
		},
		Golden: func(t *testing.T, c dbclone.Cloner) {
			if gens, _ := os.ReadDir(filepath.Join(home, "golden")); len(gens) == 0 {
				testenv.Golden(t, home, testenv.PeopleSQL)
			}
		},
		Foreign: func(t *testing.T, c dbclone.Cloner, k env.Key) {
			dir := filepath.Join(home, "clones", k.Name())
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("not prenv's"), 0o644)
			t.Cleanup(func() {
				if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
					t.Errorf("a directory not ours was touched: %v", err)
				}
			})
		},
	})
}

func TestClone_IsIsolatedPopulatedAndHasItsOwnPassword(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	ctx := context.Background()
	a, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 1}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if n := testenv.QueryInt(t, a.URL, "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("clone has %d people, want the golden 500", n)
	}
	testenv.QueryInt(t, a.URL, "WITH i AS (INSERT INTO people (name, email) VALUES ('only in one', 'x@y') RETURNING 1) SELECT count(*) FROM i")
	if n := testenv.QueryInt(t, b.URL, "SELECT count(*) FROM people WHERE name = 'only in one'"); n != 0 {
		t.Fatalf("a row written in PR 1 is in PR 2")
	}
	if a.Password == b.Password {
		t.Fatal("two clones share the application password")
	}
	wrong := strings.Replace(b.URL, b.Password, a.Password, 1)
	if _, err := pgx.Connect(ctx, wrong); err == nil {
		t.Fatal("PR 1's password opens PR 2's database")
	}
	if !strings.Contains(a.Ready, "select 1") {
		t.Errorf("Ready = %q, want the check named", a.Ready)
	}
}

func TestClone_RestartsAStoppedServerAndKeepsItsData(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	ctx := context.Background()
	k := env.Key{PR: 1}
	a, err := c.Clone(ctx, dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	testenv.QueryInt(t, a.URL, "WITH d AS (DELETE FROM people WHERE id <= 100 RETURNING 1) SELECT count(*) FROM d")
	testenv.StopServers(home) // as a reboot would
	if c.Running(k) {
		t.Fatal("server still running after stop")
	}
	b, err := c.Clone(ctx, dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	if n := testenv.QueryInt(t, b.URL, "SELECT count(*) FROM people"); n != 400 {
		t.Fatalf("after restart the clone has %d people, want 400", n)
	}
}

func TestClone_AnInterruptedCopyIsRedoneNotAdopted(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	k := env.Key{PR: 1}
	// What kill -9 in the middle of a copy leaves: our manifest, incomplete.
	dir := filepath.Join(home, "clones", k.Name())
	os.MkdirAll(filepath.Join(dir, "data", "base"), 0o755)
	writeManifest(dir, Manifest{Owner: "prenv", Key: k.String(), Name: k.Name(), Port: c.FirstPort})
	db, err := c.Clone(context.Background(), dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	if n := testenv.QueryInt(t, db.URL, "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("%d people", n)
	}
	if list, _ := c.List(context.Background()); len(list) != 1 {
		t.Fatalf("List = %d clones, want 1", len(list))
	}
}

func TestClone_PortPoolExhaustedIsAClearErrorAndLeavesNothing(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	c.LastPort = c.FirstPort // a pool of one
	ctx := context.Background()
	if _, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 1})); err != nil {
		t.Fatal(err)
	}
	_, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 2}))
	if !errors.Is(err, dbclone.ErrCapacity) || !strings.Contains(err.Error(), "database.localpg.ports") {
		t.Fatalf("err = %v, want ErrCapacity naming the setting", err)
	}
	if _, err := os.Stat(filepath.Join(home, "clones", "pr-2")); !os.IsNotExist(err) {
		t.Fatalf("a refused clone left %s behind", filepath.Join(home, "clones", "pr-2"))
	}
}

func TestClone_OlderGenerationsKeepWorkingAfterANewBuild(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	c := newCloner(t, home, "prenv")
	ctx := context.Background()
	a, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 1}))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Golden(t, home, testenv.PeopleSQL+"DELETE FROM people WHERE id > 10;")
	b, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if a.Generation != 1 || b.Generation != 2 {
		t.Fatalf("generations %d and %d, want 1 and 2", a.Generation, b.Generation)
	}
	if n := testenv.QueryInt(t, a.URL, "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("generation 1 clone has %d people", n)
	}
	if n := testenv.QueryInt(t, b.URL, "SELECT count(*) FROM people"); n != 10 {
		t.Fatalf("generation 2 clone has %d people", n)
	}
}

// from connects to url from the local address src, as a pod on another
// network would.
func from(ctx context.Context, url, src string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	cfg.DialFunc = d.DialContext
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func TestClone_ListensWhereConfiguredAndAdmitsOnlyTheAllowedNetworks(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	ctx := context.Background()
	// 127.0.0.2 stands for this machine's address on the cluster's network,
	// 127.0.0.3 for a pod's, 127.0.0.4 for anyone else.
	c := newCloner(t, home, "prenv")
	c.Listen, c.Allow = "127.0.0.1,127.0.0.2", []string{"127.0.0.3/32"}
	c.Host = "127.0.0.2"
	db, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if db.Host != "127.0.0.2" || !strings.Contains(db.URL, "@127.0.0.2:") {
		t.Fatalf("database %s at %s, want the configured host", db.URL, db.Host)
	}
	if err := from(ctx, db.URL, "127.0.0.3"); err != nil {
		t.Fatalf("an allowed network cannot connect: %v", err)
	}
	if err := from(ctx, db.URL, "127.0.0.4"); err == nil || !strings.Contains(err.Error(), "no pg_hba.conf entry") {
		t.Fatalf("a network not allowed connected: %v", err)
	}
	// A clone made with the defaults listens on loopback only.
	c2 := newCloner(t, home, "prenv")
	db2, err := c2.Clone(ctx, dbclonetest.Request(env.Key{PR: 4}))
	if err != nil {
		t.Fatal(err)
	}
	if err := from(ctx, strings.Replace(db2.URL, "@127.0.0.1:", "@127.0.0.2:", 1), "127.0.0.2"); err == nil {
		t.Fatal("a default clone answers on 127.0.0.2")
	}
}
