package golden_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/testenv"
)

const (
	builderHomeEnv = "PRENV_TEST_KILLED_BUILDER_HOME"
	builderSQLEnv  = "PRENV_TEST_KILLED_BUILDER_SQL"
)

// Not a test of its own: the golden build that
// TestLeftovers_ListsAndRemovesWhatAKilledBuildLeft runs in a process of
// its own and kills with kill -9.
func TestHelper_GoldenBuildToBeKilled(t *testing.T) {
	home := os.Getenv(builderHomeEnv)
	if home == "" {
		t.Skip("run by TestLeftovers_ListsAndRemovesWhatAKilledBuildLeft as the build it kills")
	}
	_, err := builder(t, home).Build(context.Background(), golden.Source{SQLFile: os.Getenv(builderSQLEnv)})
	t.Fatalf("the build to be killed ended by itself: %v", err)
}

// until polls cond until it holds, failing the test after timeout.
func until(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postmaster returns the pid in the build's postmaster.pid if it runs.
func postmaster(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid, pid > 0 && alive(pid)
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && !strings.Contains(string(status), "zombie")
}

func leftoverIDs(rs []env.Resource) map[string]env.Resource {
	out := map[string]env.Resource{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// Issue 10: what a golden build killed with kill -9 leaves (its directory,
// its postgres running) is listed and removed by the sweeper; a build in
// progress is neither.
func TestLeftovers_ListsAndRemovesWhatAKilledBuildLeft(t *testing.T) {
	home := testenv.Home(t)
	_, u := testenv.Postgres(t)
	ctx := context.Background()
	q := env.Query{Owner: "prenv", Now: time.Now()}
	l := golden.Leftovers{Home: home, ServerUID: u.UID}

	src := sqlFile(t, testenv.PeopleSQL+"\nSELECT pg_sleep(120);\n")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelper_GoldenBuildToBeKilled$")
	cmd.Env = append(os.Environ(), builderHomeEnv+"="+home, builderSQLEnv+"="+src.SQLFile)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	var dir string
	until(t, "the build to restore its source", time.Minute, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the build ended early (%v):\n%s", err, out.String())
		default:
		}
		builds, _ := filepath.Glob(filepath.Join(golden.Root(home), ".build-*"))
		if len(builds) != 1 {
			return false
		}
		dir = builds[0]
		_, running := postmaster(dir)
		return running && psqlRuns(src.SQLFile)
	})
	id := filepath.Base(dir)

	// In progress: not listed, not removed.
	rs, err := l.Resources(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 0 {
		t.Fatalf("a build in progress is listed: %+v", rs)
	}
	err = l.Remove(ctx, q, env.Resource{Provider: "golden", Kind: "build", ID: id, Local: true})
	if err == nil || !strings.Contains(err.Error(), "a golden build is running now") {
		t.Fatalf("Remove of the build in progress: %v, want it refused", err)
	}
	pid, running := postmaster(dir)
	if !running {
		t.Fatal("Remove of the build in progress stopped its postgres")
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if _, still := postmaster(dir); !still {
		t.Fatalf("precondition: the build's postgres %d outlives a kill -9 of its builder", pid)
	}
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}

	rs, err = l.Resources(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := leftoverIDs(rs)[id]
	if len(rs) != 1 || !ok {
		t.Fatalf("listed %+v, want the killed build %s", rs, id)
	}
	if r.Provider != "golden" || r.Kind != "build" || !r.Local || r.Problem != "" || !r.CreatedAt.Equal(old) {
		t.Errorf("the killed build is listed as %+v; want golden/build, local, created at its mtime %v", r, old)
	}
	if want := fmt.Sprintf("a golden build was interrupted; its postgres still runs (pid %d)", pid); r.HalfMade != want {
		t.Errorf("half-made %q, want %q", r.HalfMade, want)
	}

	if err := l.Remove(ctx, q, r); err != nil {
		t.Fatal(err)
	}
	until(t, "the killed build's postgres to exit", 10*time.Second, func() bool { return !alive(pid) })
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Remove (%v)", dir, err)
	}
	if err := l.Remove(ctx, q, r); err != nil {
		t.Errorf("Remove of a build already gone: %v, want nil", err)
	}
	if rs, _ := l.Resources(ctx, q); len(rs) != 0 {
		t.Errorf("listed after Remove: %+v", rs)
	}
}

// psqlRuns reports whether a psql restoring file runs.
func psqlRuns(file string) bool {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), "psql") && strings.Contains(string(cmdline), file) {
			return true
		}
	}
	return false
}

// Issue 10: a build directory whose builder holds its lock is at work and
// never listed; one prenv cannot claim is listed with the reason and left.
func TestLeftovers_SkipsABuildInProgressAndLeavesWhatIsNotOurs(t *testing.T) {
	home := testenv.Home(t)
	ctx := context.Background()
	q := env.Query{Owner: "prenv"}
	root := golden.Root(home)
	mk := func(name string) string {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dead := mk(".build-3-0123abcd")
	live := mk(".build-3-feedbeef")
	unlock, err := lock.File(ctx, filepath.Join(live, "build.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	mk(".build-notes") // not a name a build gets
	mk("elsewhere")
	if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(root, ".build-3-11111111")); err != nil {
		t.Fatal(err)
	}
	var stranger string
	if os.Geteuid() == 0 {
		stranger = mk(".build-3-00000000")
		if err := os.Chown(stranger, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	l := golden.Leftovers{Home: home}
	rs, err := l.Resources(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got := leftoverIDs(rs)
	if _, ok := got[filepath.Base(live)]; ok {
		t.Error("a build whose builder holds its lock is listed")
	}
	for _, name := range []string{".build-notes", "elsewhere"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s, not a build directory, is listed", name)
		}
	}
	if r := got[filepath.Base(dead)]; r.HalfMade != "a golden build was interrupted" || r.Problem != "" {
		t.Errorf("the dead build: %+v", r)
	}
	notOurs := []string{".build-3-11111111"}
	if stranger != "" {
		notOurs = append(notOurs, filepath.Base(stranger))
	}
	for _, id := range notOurs {
		r, ok := got[id]
		if !ok || r.HalfMade != "" || !strings.Contains(r.Problem, "left alone") {
			t.Errorf("%s: %+v, want it listed with a problem, not half-made", id, r)
		}
		if err := l.Remove(ctx, q, r); !errors.Is(err, env.ErrNotOurs) {
			t.Errorf("Remove %s: %v, want ErrNotOurs", id, err)
		}
	}
	if err := l.Remove(ctx, q, got[filepath.Base(dead)]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead build is still there (%v)", err)
	}
	err = l.Remove(ctx, q, env.Resource{Provider: "golden", Kind: "build", ID: filepath.Base(live), Local: true})
	if err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Errorf("Remove of a build whose builder holds it: %v, want it refused", err)
	}
	for _, keep := range []string{live, filepath.Join(root, "elsewhere"), filepath.Join(root, ".build-notes"), stranger} {
		if keep == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(keep, "data")); err != nil {
			t.Errorf("%s was touched: %v", filepath.Base(keep), err)
		}
	}
	if err := l.Remove(ctx, q, env.Resource{Provider: "golden", Kind: "build", ID: "../../etc"}); err == nil {
		t.Error("Remove of a path outside the golden root succeeded")
	}
}
