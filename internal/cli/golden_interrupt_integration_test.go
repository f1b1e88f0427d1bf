package cli_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/testenv"
)

// cmdlinesContaining returns the command lines of the processes whose
// arguments contain s.
func cmdlinesContaining(s string) []string {
	procs, _ := os.ReadDir("/proc")
	var found []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil || p.Name() == strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		found = append(found, p.Name()+": "+strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " "))
	}
	return found
}

// untilDeadline polls cond until it holds or the deadline passes.
func untilDeadline(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowBuild starts 'prenv golden build' from a source that restores for a
// minute, and returns once psql is running it, with the build's directory.
func (h *harness) slowBuild() (cmd *exec.Cmd, exited chan error, stderr *syncBuffer, buildDir string) {
	t := h.t
	t.Helper()
	dir := t.TempDir()
	testenv.Reachable(t, dir)
	seed := filepath.Join(dir, "slow-seed.sql")
	if err := os.WriteFile(seed, []byte(testenv.DemoSQL(10)+"\nSELECT pg_sleep(120);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = h.command("golden", "build", "--allow-pii", "--from-sql", seed)
	stderr = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	untilDeadline(t, "psql to restore the slow source", 60*time.Second, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("golden build exited early (%v):\n%s", err, stderr)
		default:
		}
		for _, c := range cmdlinesContaining(seed) {
			if strings.Contains(c, "psql") {
				return true
			}
		}
		return false
	})
	builds, _ := filepath.Glob(filepath.Join(h.home, "golden", ".build-*"))
	if len(builds) != 1 {
		t.Fatalf("build directories during the build: %v", builds)
	}
	return cmd, exited, stderr, builds[0]
}

// buildPostmaster returns the pid in the build's postmaster.pid, and whether
// that process runs.
func buildPostmaster(buildDir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(buildDir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid, pid > 0 && syscall.Kill(pid, 0) == nil
}

// Issue 9, section 3: kill -9 of a golden build left its postgres running
// and its .build-* directory behind for good. The next build stops and
// removes them.
func TestGoldenBuild_AfterKillNineTheNextBuildStopsAndRemovesTheDeadOne(t *testing.T) {
	h := newHarness(t)
	cmd, exited, _, buildDir := h.slowBuild()
	pid, running := buildPostmaster(buildDir)
	if !running {
		t.Fatalf("the build's postgres is not running during the restore (pid %d)", pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if _, still := buildPostmaster(buildDir); !still {
		t.Fatalf("precondition: the build's postgres %d should outlive a kill -9 of prenv", pid)
	}

	h.golden(10)

	if left := cmdlinesContaining(buildDir); len(left) > 0 {
		t.Errorf("processes of the killed build still run:\n%s", strings.Join(left, "\n"))
	}
	if err := syscall.Kill(pid, 0); err == nil && len(cmdlinesContaining(buildDir)) > 0 {
		t.Errorf("the killed build's postgres %d still runs", pid)
	}
	if _, err := os.Stat(buildDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there (%v)", buildDir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(h.home, "golden", ".build-*")); len(left) > 0 {
		t.Errorf("build directories left: %v", left)
	}
	if out := h.must("golden", "ls"); !strings.Contains(out, "1 (current)") {
		t.Errorf("golden ls after the second build:\n%s", out)
	}
}

// Issue 9, section 3: SIGINT or SIGTERM of a golden build exits 130 and
// leaves no postgres and no build directory.
func TestGoldenBuild_InterruptedExits130AndLeavesNothing(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			h := newHarness(t)
			cmd, exited, stderr, buildDir := h.slowBuild()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-time.After(90 * time.Second):
				t.Fatalf("golden build still runs 90s after %v:\n%s", sig, stderr)
			}
			if code := cmd.ProcessState.ExitCode(); code != 130 {
				t.Errorf("exit code %d after %v, want 130:\n%s", code, sig, stderr)
			}
			if !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("stderr does not say the build was interrupted:\n%s", stderr)
			}
			if left := cmdlinesContaining(buildDir); len(left) > 0 {
				t.Errorf("processes of the interrupted build still run:\n%s", strings.Join(left, "\n"))
			}
			if left, _ := filepath.Glob(filepath.Join(h.home, "golden", ".build-*")); len(left) > 0 {
				t.Errorf("build directories left: %v", left)
			}
			if out := h.must("golden", "ls"); !strings.Contains(out, "no golden generations") {
				t.Errorf("an interrupted build was promoted:\n%s", out)
			}
		})
	}
}

// Issue 9, section 5: a source with no tables is refused with exit 2 and
// the previous generation stays current; --allow-empty promotes it.
func TestGoldenBuild_RefusesAnEmptySourceUnlessAllowed(t *testing.T) {
	h := newHarness(t)
	h.golden(10)
	dir := t.TempDir()
	testenv.Reachable(t, dir)
	empty := filepath.Join(dir, "empty.sql")
	if err := os.WriteFile(empty, []byte("SELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := h.run("golden", "build", "--from-sql", empty)
	if code != 2 || !strings.Contains(errs, `has no tables in database "app"`) || !strings.Contains(errs, "--allow-empty") || !strings.Contains(errs, "generation 1 is still current") {
		t.Fatalf("build of an empty source: exit %d\n%s%s", code, out, errs)
	}
	if ls := h.must("golden", "ls"); !strings.Contains(ls, "1 (current)") || strings.Contains(ls, "\n2") {
		t.Fatalf("golden ls after the refused build:\n%s", ls)
	}
	if out := h.must("golden", "build", "--from-sql", empty, "--allow-empty"); !strings.Contains(out, "generation 2") {
		t.Fatalf("build with --allow-empty: %s", out)
	}
}
