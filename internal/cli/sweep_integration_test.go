package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone/localpg"
	"github.com/prenv/prenv/internal/testenv"
)

type sweepPlan struct {
	Applied bool `json:"applied"`
	Items   []struct {
		Provider    string `json:"provider"`
		Kind        string `json:"kind"`
		ID          string `json:"id"`
		Environment string `json:"environment"`
		Verdict     string `json:"verdict"`
		Reason      string `json:"reason"`
		Outcome     string `json:"outcome"`
	} `json:"items"`
	Notes []string `json:"notes"`
}

func (h *harness) sweep(args ...string) sweepPlan {
	h.t.Helper()
	var p sweepPlan
	out := h.must(append([]string{"sweep", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		h.t.Fatalf("sweep -o json: %v\n%s", err, out)
	}
	return p
}

// verdicts maps "provider/kind/id" to "verdict" (and ": outcome").
func (p sweepPlan) verdicts() map[string]string {
	m := map[string]string{}
	for _, it := range p.Items {
		v := it.Verdict
		if it.Outcome != "" {
			v += ": " + it.Outcome
		}
		m[it.Provider+"/"+it.Kind+"/"+it.ID] = v
	}
	return m
}

// localInventory is what the local providers have made, as the file
// system and /proc show it: every entry under clones, envs and locks,
// and every process running from them or as an environment's user.
func localInventory(t *testing.T, home string) []string {
	t.Helper()
	var out []string
	// prenv's bookkeeping, not anything an environment made (a trash
	// directory's contents are listed).
	bookkeeping := map[string]bool{".ports.lock": true, ".no-reflink-noted": true, ".trash": true, ".sweep.lock": true}
	for _, dir := range []string{"clones", "clones/.trash", "envs", "envs/.trash", "locks"} {
		entries, _ := os.ReadDir(filepath.Join(home, dir))
		for _, e := range entries {
			if !bookkeeping[e.Name()] {
				out = append(out, dir+"/"+e.Name())
			}
		}
	}
	for _, pid := range pidsMatching(home) {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if len(cmd) > 0 {
			out = append(out, "process "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	sort.Strings(out)
	return out
}

// The leaks the sweeper exists for, on the local providers: a prenv serve
// killed with its apps still running, an up killed during its migration,
// and the store lost. A dry run changes nothing; --apply removes every one
// of them, as the file system and /proc show it, and leaves a foreign
// clone alone; up and down still work afterwards.
func TestSweep_WhatKilledRunsAndALostStoreLeftIsGoneLocally(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.extra = append(h.extra, "PRENV_SWEEP_GRACE=0s")
	h.must("up", "--pr", "1", "--sha", c1)

	// pr-2: killed while it migrates.
	logDir := t.TempDir()
	testenv.Reachable(t, logDir)
	os.Chmod(logDir, 0o777)
	started := filepath.Join(logDir, "migrate.log")
	base := h.extra
	h.extra = append(append([]string{}, base...), `PRENV_APP_MIGRATE=echo started > "`+started+`"; sleep 30`)
	cmd := h.command("up", "--pr", "2", "--sha", c1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, func() bool { _, err := os.Stat(started); return err == nil })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	h.extra = base

	// A clone of another installation sharing the machine's home layout.
	foreign := filepath.Join(h.home, "clones", "pr-9")
	os.MkdirAll(foreign, 0o700)
	m, _ := json.Marshal(localpg.Manifest{Owner: "someone-else", Key: "#9", Name: "pr-9", CreatedAt: time.Now().Add(-100 * time.Hour), Complete: true})
	os.WriteFile(filepath.Join(foreign, localpg.ManifestName), m, 0o600)

	// prenv serve dies (its apps run on), and the store is lost.
	data, _ := os.ReadFile(filepath.Join(h.home, "serve.pid"))
	servePID, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	syscall.Kill(servePID, syscall.SIGKILL)
	waitFor(t, 10*time.Second, func() bool { return syscall.Kill(servePID, 0) != nil })
	os.Remove(filepath.Join(h.home, "serve.pid"))
	for _, f := range []string{"prenv.db", "prenv.db-wal", "prenv.db-shm"} {
		os.Remove(filepath.Join(h.home, f))
	}

	before := localInventory(t, h.home)
	plan := h.sweep()
	if after := localInventory(t, h.home); !reflect.DeepEqual(before, after) {
		t.Fatalf("a dry run changed what exists:\nbefore %q\nafter  %q", before, after)
	}
	got := plan.verdicts()
	for _, want := range []string{"localpg/clone/pr-1", "local/home/pr-1", "localpg/clone/pr-2", "local/home/pr-2"} {
		if v := got[want]; v != "orphaned" && v != "half-made" {
			t.Errorf("%s: %q; want orphaned or half-made (the plan: %v)", want, v, got)
		}
	}
	if _, shown := got["localpg/clone/pr-9"]; shown {
		t.Errorf("a foreign clone is listed without --show-foreign: %v", got)
	}
	if v := h.sweep("--show-foreign").verdicts()["localpg/clone/pr-9"]; v != "foreign" {
		t.Errorf("pr-9 with --show-foreign: %q, want foreign", v)
	}
	if len(pidsMatching(filepath.Join(h.home, "envs", "pr-1"))) == 0 {
		t.Fatal("the test is void: pr-1's app is not running after its prenv serve was killed")
	}

	applied := h.sweep("--apply")
	for key, v := range applied.verdicts() {
		if strings.Contains(v, "failed") {
			t.Errorf("%s: %s", key, v)
		}
	}
	left := localInventory(t, h.home)
	if want := []string{"clones/pr-9"}; !reflect.DeepEqual(left, want) {
		h.dumpLogs("left after sweep --apply")
		t.Fatalf("left after sweep --apply: %q; want only the foreign clone %q", left, want)
	}

	// Gone out of band is fine for the lifecycle too.
	h.must("up", "--pr", "1", "--sha", c1)
	if st := h.status(1); st.State != "ready" {
		t.Fatalf("up after the sweep: %+v", st)
	}
	h.must("down", "--pr", "1")
}

func TestSweep_BadInputIsRefusedAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.refused(2, "not a verdict", "sweep", "--apply", "--only", "gone")
	h.refused(2, "never deletes", "sweep", "--apply", "--only", "keep")
	h.refused(2, "sweep.legacy selects nothing", "sweep", "--apply", "--legacy")
	h.extra = append(h.extra, "PRENV_SWEEP_INTERVAL=-1h")
	h.refused(2, "sweep.interval", "sweep")
	h.extra = h.extra[:len(h.extra)-1]
	h.extra = append(h.extra, "PRENV_SWEEP_MAX_DELETIONS=-3")
	h.refused(2, "sweep.max_deletions", "sweep")
	h.extra = h.extra[:len(h.extra)-1]
	h.extra = append(h.extra, "PRENV_SWEEP_MAX_DELETIONS=0")
	if out := h.must("sweep", "--apply"); !strings.Contains(out, "0 expired") {
		t.Fatalf("sweep with max_deletions 0: %s", out)
	}
	h.extra = h.extra[:len(h.extra)-1]
	// Aurora (or Kubernetes) with the owner id every installation shares.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prenv.yaml"), []byte("version: 1\ndatabase:\n  provider: aurora\n  aurora:\n    source_cluster: golden\n    require_security_groups: false\n    region: eu-west-1\n"), 0o644)
	h.dir = dir
	h.refused(2, "set owner in prenv.yaml", "sweep", "--apply")
}

// prenv serve sweeps every sweep.interval with apply, and logs the plan.
func TestServe_SweepsEveryIntervalAndLogsThePlan(t *testing.T) {
	h := newHarness(t)
	h.extra = append(h.extra, "PRENV_SWEEP_INTERVAL=1s", "PRENV_SWEEP_GRACE=0s")
	stale := filepath.Join(h.home, "locks", "pr-41.lock")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, nil, 0o644)
	leftover := filepath.Join(h.home, "clones", ".pr-42.new") // a copy an up killed midway left
	os.MkdirAll(leftover, 0o700)
	var log strings.Builder
	cmd := h.command("serve")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(t, 30*time.Second, func() bool {
		_, a := os.Stat(stale)
		_, b := os.Stat(leftover)
		return os.IsNotExist(a) && os.IsNotExist(b)
	})
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	out := log.String()
	if !strings.Contains(out, `msg="sweep plan"`) || !strings.Contains(out, "pr-41.lock") || !strings.Contains(out, "outcome=deleted") {
		t.Fatalf("serve's log does not show the sweep's plan and outcome:\n%s", out)
	}
}
