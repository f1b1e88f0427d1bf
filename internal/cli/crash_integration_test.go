package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/testenv"
)

// stamp is a shell snippet that appends "<what> <nanoseconds>" to path.
func stamp(path, what string) string {
	return `echo "` + what + ` $(date +%s%N)" >> "` + path + `"`
}

// stamps reads the lines a step wrote with stamp.
func stamps(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		what, _, _ := strings.Cut(l, " ")
		out = append(out, what)
	}
	return out
}

// A step that is still running when prenv up is killed (its work in a
// subshell, like a migration tool's own process) must be stopped by the
// next run before that run does anything: the two never overlap, and the
// old one writes nothing after the new one starts (issue 9, section 3).
func TestUp_KilledDuringAStepTheNextRunStopsItFirst(t *testing.T) {
	for _, step := range []string{"migrate", "build"} {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t)
			c1, _, _ := h.demoRepo()
			h.golden(20)
			// Where the step writes: open to the environment's user.
			logDir := t.TempDir()
			testenv.Reachable(t, logDir)
			os.Chmod(logDir, 0o777)
			path := filepath.Join(logDir, step+".log")
			log := path
			// The slow part runs in a subshell: killing prenv's direct child
			// (the shell) does not stop it.
			slow := `( ` + stamp(log, "start") + `; sleep 2.93; ` + stamp(log, "end") + `; touch "$PRENV_RELEASE_DIR/written-late" )`
			if step == "migrate" {
				h.extra = append(h.extra, `PRENV_APP_MIGRATE=`+slow+`; exec "$PRENV_RELEASE_DIR/app" migrate`)
			} else {
				h.extra = append(h.extra, `PRENV_APP_BUILD=`+slow+`; go build -trimpath -o "$PRENV_RELEASE_DIR/app" .`)
			}
			cmd := h.command("up", "--pr", "1", "--sha", c1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, func() bool { _, err := os.Stat(path); return err == nil })
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			// What the killed run left is shown as it is, not as still at work.
			if st := h.status(1); st.State != "interrupted" || st.LastRun.State != "interrupted" {
				t.Fatalf("after kill -9 during %s: state %q, last run %q; want interrupted and interrupted", step, st.State, st.LastRun.State)
			}

			h.must("up", "--pr", "1", "--sha", c1)
			// The new run's own step took as long as the old one had left,
			// so an old step still alive has written its end by now.
			got := strings.Join(stamps(t, path), ",")
			if got != "start,start,end" {
				t.Fatalf("%s runs (start/end in order): %s, want start,start,end: the interrupted run's step ran on after the next run started", step, got)
			}
			if st := h.status(1); st.State != "ready" || st.Commit != c1 {
				t.Fatalf("after kill -9 during %s and up: %+v", step, st)
			}
			if step == "build" {
				// The old build never writes into the new release.
				rels, _ := filepath.Glob(filepath.Join(h.home, "envs", "pr-1", "releases", "*", "written-late"))
				if len(rels) != 1 {
					t.Fatalf("release directories with the marker: %v, want only the new build's", rels)
				}
			}
		})
	}
}

// prenv serve killed with kill -9 leaves an app whose start command does
// not exec (the shell's child outlives it); the next prenv serve stops it
// before it starts the environment's app again.
func TestServe_KilledTheNextServeStopsTheAppItLeft(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.extra = append(h.extra, `PRENV_APP_START="$PRENV_RELEASE_DIR/app" serve; echo the app stopped`)
	h.must("up", "--pr", "1", "--sha", c1)
	apps := func() []int { return pidsMatching(filepath.Join(h.home, "envs", "pr-1", "releases")) }
	before := apps()
	if len(before) == 0 {
		t.Fatal("no app process of pr-1 found")
	}
	data, _ := os.ReadFile(filepath.Join(h.home, "serve.pid"))
	servePID, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	syscall.Kill(servePID, syscall.SIGKILL)
	waitFor(t, 10*time.Second, func() bool { return syscall.Kill(servePID, 0) != nil })
	os.Remove(filepath.Join(h.home, "serve.pid"))

	h.must("up", "--pr", "1", "--sha", c1) // starts a new prenv serve
	st := h.status(1)
	if code, _ := h.get(st.URL, st.Auth.Password); code != 200 {
		t.Fatalf("not serving after serve was killed and up ran again: %d", code)
	}
	// Stopped before the new app started, so gone when up returns (a
	// moment for the kernel to tear the processes down).
	alive := func() []string {
		var out []string
		for _, pid := range before {
			if syscall.Kill(pid, 0) == nil && isApp(pid) {
				status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
				cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
				out = append(out, fmt.Sprintf("%d %q\n%s", pid, cmdline, status))
			}
		}
		return out
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(alive()) > 0 {
		if time.Now().After(deadline) {
			h.dumpLogs("old app alive")
			t.Fatalf("the app the killed prenv serve left still runs:\n%s", strings.Join(alive(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidsMatching returns the processes whose command line contains s.
func pidsMatching(s string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []int
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid == os.Getpid() {
			continue
		}
		data, _ := os.ReadFile(p)
		if strings.Contains(strings.ReplaceAll(string(data), "\x00", " "), s) {
			out = append(out, pid)
		}
	}
	return out
}

func isApp(pid int) bool {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.Contains(string(data), "releases")
}
