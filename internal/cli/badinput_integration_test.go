package cli_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refused runs prenv, expects exit code want with msg in stderr, and checks
// that nothing was recorded.
func (h *harness) refused(want int, msg string, args ...string) {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != want || !strings.Contains(errs, msg) {
		h.t.Fatalf("prenv %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, msg, out, errs)
	}
}

func (h *harness) nothingRecorded() {
	h.t.Helper()
	// Read with the defaults: the configuration under test may not load.
	if out, _, _ := h.run("--config", os.DevNull, "ls", "--all", "-o", "json"); strings.TrimSpace(out) != "[]" {
		h.t.Fatalf("something was recorded: %s", out)
	}
}

func TestBadInput_IsRefusedWithAClearErrorAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	t.Run("UnknownConfigField", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "prenv.yaml"), []byte("version: 1\ndatabase:\n  localpg:\n    shared_bufers: 8MB\n"), 0o644)
		h.dir = dir
		defer func() { h.dir = "" }()
		h.refused(2, `unknown field "database.localpg.shared_bufers" (did you mean "database.localpg.shared_buffers"?)`, "up", "--pr", "1")
		if _, err := os.Stat(filepath.Join(h.home, "prenv.db")); !os.IsNotExist(err) {
			t.Fatal("a refused config still opened the store")
		}
	})
	for _, pr := range []string{"0", "-3", "abc"} {
		t.Run("PR "+pr, func(t *testing.T) {
			for _, cmd := range []string{"up", "down", "status", "logs"} {
				h.refused(2, "positive integer", cmd, "--pr", pr)
			}
		})
	}
	t.Run("MissingPR", func(t *testing.T) { h.refused(2, "--pr is required", "up") })
	t.Run("UnknownOutputFormat", func(t *testing.T) { h.refused(2, `-o "xml": want text, json or yaml`, "ls", "-o", "xml") })
	t.Run("UpBeforeAnyGoldenSource", func(t *testing.T) {
		h.refused(3, "golden source not built: run 'prenv golden build", "up", "--pr", "1")
		h.nothingRecorded()
	})
	t.Run("GoldenBuildWithoutASource", func(t *testing.T) {
		h.refused(2, "no source: give --from-sql FILE, --from-dump FILE or --from-url URL, or set golden.source in prenv.yaml", "golden", "build")
		h.refused(2, "give exactly one of --from-sql FILE, --from-dump FILE, --from-url URL", "golden", "build", "--from-sql", "/etc/hostname", "--from-url", "postgres://x/y")
		h.refused(2, "no such file", "golden", "build", "--from-sql", "/nonexistent.sql")
	})
	t.Run("PostgreSQLBinariesMissing", func(t *testing.T) {
		empty := t.TempDir()
		h.extra = append(h.extra, "PRENV_DATABASE_LOCALPG_BIN_DIR="+empty)
		defer func() { h.extra = h.extra[:len(h.extra)-1] }()
		h.refused(3, "no postgres in "+empty, "golden", "build", "--from-sql", "/etc/hostname")
		h.refused(3, "install PostgreSQL 14 or newer", "up", "--pr", "1")
		h.nothingRecorded()
	})
	t.Run("PostgreSQLBinariesTooOld", func(t *testing.T) {
		old := t.TempDir()
		for _, tool := range []string{"postgres", "initdb", "pg_dump", "pg_restore"} {
			os.WriteFile(filepath.Join(old, tool), []byte("#!/bin/sh\necho 'postgres (PostgreSQL) 13.11'\n"), 0o755)
		}
		h.extra = append(h.extra, "PRENV_DATABASE_LOCALPG_BIN_DIR="+old)
		defer func() { h.extra = h.extra[:len(h.extra)-1] }()
		h.refused(3, "is PostgreSQL 13, prenv needs 14 or newer", "up", "--pr", "1")
		h.nothingRecorded()
	})
	h.golden(10)
	t.Run("ADirectoryInTheWayThatIsNotOurs", func(t *testing.T) {
		dir := filepath.Join(h.home, "clones", "pr-7")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("someone's"), 0o644)
		h.refused(6, "not owned by prenv", "up", "--pr", "7")
		h.refused(6, "not owned by prenv", "down", "--pr", "7")
		if data, err := os.ReadFile(filepath.Join(dir, "keep.txt")); err != nil || string(data) != "someone's" {
			t.Fatal("a directory not ours was touched")
		}
		h.nothingRecorded()
		os.RemoveAll(dir)
	})
	t.Run("PortPoolExhausted", func(t *testing.T) {
		first, _ := portsOf(h.extra)
		h.extra = append(h.extra, fmt.Sprintf("PRENV_DATABASE_LOCALPG_PORTS=%d-%d", first, first))
		defer func() { h.extra = h.extra[:len(h.extra)-1] }()
		h.must("up", "--pr", "1")
		h.refused(3, "every port of database.localpg.ports", "up", "--pr", "2")
		if _, err := os.Stat(filepath.Join(h.home, "clones", "pr-2")); !os.IsNotExist(err) {
			t.Fatal("a refused clone left a directory")
		}
		if out := h.must("ls"); strings.Contains(out, "pr-2") {
			t.Fatalf("a refused environment was recorded:\n%s", out)
		}
		h.must("down", "--pr", "1")
	})
	t.Run("StatusOfAnUnknownEnvironment", func(t *testing.T) {
		h.refused(5, "no environment pr-99", "status", "--pr", "99")
	})
}

func portsOf(extra []string) (int, int) {
	var a, b int
	for _, e := range extra {
		if strings.HasPrefix(e, "PRENV_DATABASE_LOCALPG_PORTS=") {
			fmt.Sscanf(strings.TrimPrefix(e, "PRENV_DATABASE_LOCALPG_PORTS="), "%d-%d", &a, &b)
		}
	}
	return a, b
}

func TestUp_WhenAnotherProgramHoldsTheListenAddressSaysSo(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(10)
	l, err := net.Listen("tcp", h.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.NotFoundHandler())
	_, errs, code := h.run("up", "--pr", "1", "--sha", c1)
	if code != 1 || !strings.Contains(errs, "is taken by a program that is not prenv serve") || !strings.Contains(errs, "PRENV_LISTEN") {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	// Said at once: no prenv serve was started to wait on.
	if _, err := os.Stat(filepath.Join(h.home, "serve.log")); !os.IsNotExist(err) || strings.Contains(errs, "started prenv serve") {
		t.Fatalf("prenv serve was started all the same (serve.log: %v)\n%s", err, errs)
	}
}

func TestPR_AloneResolvesToTheOneRepositoryThatHasIt(t *testing.T) {
	h := newHarness(t)
	h.golden(10)
	h.must("up", "--pr", "3", "--repo", "acme/api", "--sha", "c1")
	if st := h.status(3); st.State != "ready" {
		t.Fatalf("--pr 3 alone, with only acme/api#3 on record: %+v", st)
	}
	h.must("up", "--pr", "3", "--repo", "acme/web", "--sha", "c1")
	h.refused(2, "pull request 3 has environments in acme/api and acme/web: say which with --repo", "status", "--pr", "3")
	h.refused(2, "say which with --repo", "down", "--pr", "3")
	h.must("down", "--pr", "3", "--repo", "acme/web")
}
