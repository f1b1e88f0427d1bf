package cli_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUp_ServesThePullRequestAtItsURLBehindBasicAuth(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(100)
	out, errs, code := h.run("up", "--pr", "1", "--sha", c1, "-o", "json")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("up -o json: %v\n%s", err, out)
	}
	if s.PR != 1 || s.State != "ready" || s.Commit != c1 || !strings.HasPrefix(s.URL, "http://pr-1.localhost:") || s.Database.URL == "" {
		t.Fatalf("up -o json = %+v", s)
	}
	for _, step := range []string{"clone", "build", "migrate", "deploy"} {
		if !strings.Contains(errs, step) {
			t.Errorf("progress does not show step %s:\n%s", step, errs)
		}
	}
	if code, _ := h.get(s.URL, ""); code != 401 {
		t.Fatalf("without credentials: %d, want 401", code)
	}
	code, body := h.get(s.URL, s.Auth.Password)
	if code != 200 || !strings.Contains(body, "100 customers") || !strings.Contains(body, c1) || !strings.Contains(body, "0002_order_status") {
		t.Fatalf("GET %s: %d\n%s", s.URL, code, body)
	}
	st := h.status(1)
	if !strings.HasPrefix(st.stepNames(), "clone,") || st.Database.URL != s.Database.URL || st.Auth.User != "prenv" || st.Auth.Password == "" {
		t.Fatalf("status = %+v", st)
	}
	logs := h.must("logs", "--pr", "1")
	if !strings.Contains(logs, "applying 0002_order_status.sql") || !strings.Contains(logs, "listening") {
		t.Fatalf("logs do not show the migration and the app:\n%s", logs)
	}
}

func TestUp_TwiceWithTheSameCommitChangesNothing(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "1", "--sha", c1)
	release := func() string {
		data, _ := os.ReadFile(filepath.Join(h.home, "envs", "pr-1", "release.json"))
		return string(data)
	}
	before, db := release(), h.status(1).Database.URL
	h.must("up", "--pr", "1", "--sha", c1)
	st := h.status(1)
	if release() != before || st.Database.URL != db {
		t.Fatalf("second up changed the release or the database:\n%s\n%s", before, release())
	}
	if strings.Contains(st.stepNames(), "migrate") {
		t.Fatalf("second up ran %s", st.stepNames())
	}
	if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 1 {
		t.Fatalf("%d clones", n)
	}
}

func TestUp_ANewCommitMigratesAndRollsOutOnTheSameDatabase(t *testing.T) {
	h := newHarness(t)
	c1, c2, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "1", "--sha", c1)
	first := h.status(1)
	sql(t, first.Database.URL, "WITH i AS (INSERT INTO people (full_name, email, phone, street, city, postcode) VALUES ('Written In PR', 'pr@example.test', '1', '1 Road', 'Town', 'X') RETURNING 1) SELECT count(*) FROM i")
	h.must("up", "--pr", "1", "--sha", c2)
	second := h.status(1)
	if second.Database.URL != first.Database.URL || second.Commit != c2 || second.stepNames() != "clone,prepare,build,migrate,deploy" {
		t.Fatalf("second up: %+v", second)
	}
	if n := sql(t, second.Database.URL, "SELECT count(*) FROM people WHERE full_name = 'Written In PR'"); n != 1 {
		t.Fatal("data written before the new commit is gone")
	}
	_, body := h.get(second.URL, second.Auth.Password)
	if !strings.Contains(body, "0003_reviews") || !strings.Contains(body, c2) {
		t.Fatalf("page after the new commit:\n%s", body)
	}
}

func TestUp_AFailedMigrationKeepsThePreviousVersionServing(t *testing.T) {
	h := newHarness(t)
	c1, _, bad := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "1", "--sha", c1)
	out, errs, code := h.run("up", "--pr", "1", "--sha", bad)
	if code != 1 || !strings.Contains(errs, "migrate failed") {
		t.Fatalf("up with a broken migration: exit %d\n%s%s", code, out, errs)
	}
	st := h.status(1)
	if st.State != "failed" || st.Commit != c1 || !strings.Contains(st.LastRun.Output, `column "status" of relation "orders" already exists`) {
		t.Fatalf("status after a failed migration = %+v", st)
	}
	code, body := h.get(st.URL, st.Auth.Password)
	if code != 200 || !strings.Contains(body, c1) {
		t.Fatalf("the previous version is not serving: %d\n%s", code, body)
	}
	text := h.must("status", "--pr", "1")
	if !strings.Contains(text, "output of the failed step") || !strings.Contains(text, "already exists") {
		t.Fatalf("status text does not show the migration's output:\n%s", text)
	}
}

func TestUp_TwoAtOnceEndAtTheNewerCommit(t *testing.T) {
	h := newHarness(t)
	c1, c2, _ := h.demoRepo()
	h.golden(20)
	older := h.command("up", "--pr", "1", "--sha", c1)
	var olderOut syncBuffer
	older.Stdout, older.Stderr = &olderOut, &olderOut
	if err := older.Start(); err != nil {
		t.Fatal(err)
	}
	// The newer push arrives while the older run is underway.
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(olderOut.String(), "clone") })
	h.must("up", "--pr", "1", "--sha", c2)
	err := older.Wait()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 4) {
		t.Fatalf("older up: %v\n%s", err, olderOut.String())
	}
	st := h.status(1)
	if st.Commit != c2 || st.State != "ready" {
		t.Fatalf("ended at %s (%s), want %s ready", st.Commit, st.State, c2)
	}
	_, body := h.get(st.URL, st.Auth.Password)
	if !strings.Contains(body, c2) {
		t.Fatalf("serving:\n%s", body)
	}
	if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 1 {
		t.Fatalf("%d clones", n)
	}
}

func TestUp_KilledMidwayThenRunAgainConvergesWithNothingLeaked(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(3000)
	for _, when := range []string{"clones/pr-1", "envs/pr-1/releases"} {
		cmd := h.command("up", "--pr", "1", "--sha", c1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, func() bool { _, err := os.Stat(filepath.Join(h.home, when)); return err == nil })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		h.must("up", "--pr", "1", "--sha", c1)
		st := h.status(1)
		if st.State != "ready" || st.Commit != c1 {
			t.Fatalf("after kill -9 at %s and up: %+v", when, st)
		}
		if n := sql(t, st.Database.URL, "SELECT count(*) FROM people"); n != 3000 {
			t.Fatalf("%d people", n)
		}
		if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 1 {
			t.Fatalf("%d clones after kill at %s", n, when)
		}
		if n := postgresFor(t, filepath.Join(h.home, "clones", "pr-1")); n != 1 {
			t.Fatalf("%d postmasters for pr-1 after kill at %s", n, when)
		}
		code, _ := h.get(st.URL, st.Auth.Password)
		if code != 200 {
			t.Fatalf("not serving after kill at %s: %d", when, code)
		}
		h.must("down", "--pr", "1")
	}
}

func TestDown_TwiceSucceedsAndStopsEverything(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "1", "--sha", c1)
	st := h.status(1)
	for i := 0; i < 2; i++ {
		if out := h.must("down", "--pr", "1"); !strings.Contains(out, "pr-1 is gone") {
			t.Fatalf("down #%d: %s", i+1, out)
		}
	}
	if code, _ := h.get(st.URL, st.Auth.Password); code != 404 {
		t.Fatalf("after down the URL answers %d, want 404", code)
	}
	if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 0 {
		t.Fatalf("%d clones after down", n)
	}
	if n := postgresFor(t, filepath.Join(h.home, "clones", "pr-1")); n != 0 {
		t.Fatalf("%d postmasters still running", n)
	}
	if out := h.must("ls"); !strings.Contains(out, "no environments") {
		t.Fatalf("ls after down:\n%s", out)
	}
	if out := h.must("down", "--pr", "77"); !strings.Contains(out, "gone") {
		t.Fatalf("down of what never existed: %s", out)
	}
}

func TestUp_WithoutAnAppGivesAnIsolatedDatabaseOnly(t *testing.T) {
	h := newHarness(t) // no prenv.yaml: the defaults
	h.golden(10)
	out1 := h.must("up", "--pr", "1")
	h.must("up", "--pr", "2")
	if !strings.Contains(out1, "DATABASE_URL=postgres://") {
		t.Fatalf("up of a database-only environment does not print DATABASE_URL:\n%s", out1)
	}
	a, b := h.status(1), h.status(2)
	if a.URL != "" || a.State != "ready" || a.Database.URL == b.Database.URL {
		t.Fatalf("statuses %+v %+v", a, b)
	}
	sql(t, a.Database.URL, "WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d")
	if n := sql(t, b.Database.URL, "SELECT count(*) FROM orders"); n != 30 {
		t.Fatalf("PR 2 has %d orders after PR 1 deleted its own", n)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func dirs(t *testing.T, path string) []string {
	entries, _ := os.ReadDir(path)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// postgresFor counts postmasters serving a data directory under dir.
func postgresFor(t *testing.T, dir string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) > 2 && strings.HasSuffix(args[0], "postgres") && args[1] == "-D" && strings.HasPrefix(args[2], dir) {
			n++
		}
	}
	return n
}
