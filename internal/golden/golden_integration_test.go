package golden_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/testenv"
)

func builder(t *testing.T, home string) *golden.Builder {
	t.Helper()
	bin, u := testenv.Postgres(t)
	return &golden.Builder{Home: home, Bin: bin, User: u, Database: "app", AppUser: "app", AllowPII: true} // synthetic people
}

func sqlFile(t *testing.T, body string) golden.Source {
	t.Helper()
	dir := t.TempDir()
	testenv.Reachable(t, dir)
	f := filepath.Join(dir, "source.sql")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return golden.Source{SQLFile: f}
}

func noBuildLeft(t *testing.T, home string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(golden.Root(home), ".build-*"))
	if len(left) > 0 {
		t.Errorf("build directories left: %v", left)
	}
}

// Issue 9: a source that restores to nothing is not promoted over a good
// generation, unless asked for.
func TestBuild_RefusesAGenerationWithoutTablesUnlessAllowed(t *testing.T) {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	b := builder(t, home)
	empty := sqlFile(t, "CREATE TABLE scratch (id int); DROP TABLE scratch; SELECT 1;")
	_, err := b.Build(context.Background(), empty)
	if !errors.Is(err, golden.ErrSource) {
		t.Fatalf("build of an empty source: err = %v, want it refused as golden.ErrSource", err)
	}
	for _, want := range []string{`has no tables in database "app"`, "--allow-empty", "generation 1 is still current"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	if g, err := golden.Current(home); err != nil || g.Number != 1 {
		t.Fatalf("current = %d, %v; want generation 1 still current", g.Number, err)
	}
	noBuildLeft(t, home)

	b.AllowEmpty = true
	g, err := b.Build(context.Background(), empty)
	if err != nil || g.Number != 2 {
		t.Fatalf("build with AllowEmpty: generation %d, %v", g.Number, err)
	}
}

// Issue 9: environments connect as database.user; a source that takes that
// role away (or makes it a superuser, which would hand the server to every
// pull request's migration) is not promoted.
func TestBuild_RefusesAGenerationWithoutAUsableApplicationRole(t *testing.T) {
	cases := map[string]struct{ sql, want string }{
		"renamed":   {"ALTER ROLE app RENAME TO app_old;", `leaves no role "app" (database.user)`},
		"nologin":   {"ALTER ROLE app NOLOGIN;", `leaves role "app" (database.user) unable to log in`},
		"superuser": {"ALTER ROLE app SUPERUSER;", `makes role "app" (database.user) a superuser`},
	}
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	b := builder(t, home)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			// The source runs as the application's role; a dump can still
			// switch back to the superuser that restores it.
			_, err := b.Build(context.Background(), sqlFile(t, testenv.PeopleSQL+"SET ROLE NONE;\n"+c.sql+"\n"))
			if !errors.Is(err, golden.ErrSource) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "generation 1 is still current") {
				t.Fatalf("err = %v, want it refused saying %q", err, c.want)
			}
			if g, err := golden.Current(home); err != nil || g.Number != 1 {
				t.Fatalf("current = %d, %v; want generation 1 still current", g.Number, err)
			}
			noBuildLeft(t, home)
		})
	}
}

// Issue 9: a builder killed with kill -9 leaves its directory; the next
// build removes it, but never one a live builder holds, nor anything that
// is not a build of prenv's.
func TestBuild_RemovesOnlyWhatDeadBuildersLeft(t *testing.T) {
	home := testenv.Home(t)
	root := golden.Root(home)
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dead := mk(".build-1-0123abcd")
	deadLocked := mk(".build-1-89abcdef") // its builder died holding the lock: the kernel dropped it
	live := mk(".build-1-feedbeef")
	unlock, err := lock.File(context.Background(), filepath.Join(live, "build.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	notOurs := mk(".build-1-00000000")
	if err := os.Chown(notOurs, 65534, 65534); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	otherName := mk(".build-notes")
	target := mk("elsewhere")
	link := filepath.Join(root, ".build-1-11111111")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deadLocked, "build.lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := builder(t, home).Build(context.Background(), sqlFile(t, testenv.PeopleSQL)); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{dead, deadLocked} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of a dead builder is still there (%v)", filepath.Base(gone), err)
		}
	}
	kept := []string{live, otherName, target, link}
	if os.Geteuid() == 0 {
		kept = append(kept, notOurs)
	}
	for _, k := range kept {
		if _, err := os.Stat(filepath.Join(k, "data", "PG_VERSION")); err != nil {
			t.Errorf("%s was touched: %v", filepath.Base(k), err)
		}
	}
}
