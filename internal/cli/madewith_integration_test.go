package cli_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appPID is the pid of the app serving environment name, from the release
// the local runtime recorded.
func (h *harness) appPID(name string) int {
	h.t.Helper()
	var rel struct {
		PID int `json:"pid"`
	}
	data, err := os.ReadFile(filepath.Join(h.home, "envs", name, "release.json"))
	if err != nil || json.Unmarshal(data, &rel) != nil || rel.PID <= 0 {
		h.t.Fatalf("release of %s: %v\n%s", name, err, data)
	}
	return rel.PID
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Issue 9, section 6: 'prenv down --pr 2' run from a directory without the
// app's prenv.yaml printed "pr-2 is gone", deleted the database and left the
// app running behind the proxy, answering 500 without its database.
func TestDown_FromADirectoryWithoutTheConfigUsesTheProvidersTheEnvironmentWasMadeWith(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "2", "--sha", c1)
	st := h.status(2)
	pid := h.appPID("pr-2")
	demoConfig := filepath.Join(h.dir, "prenv.yaml")

	h.dir = t.TempDir() // no prenv.yaml here: the defaults say database-only
	out, errs, code := h.run("down", "--pr", "2")
	if code != 0 || !strings.Contains(out, "pr-2 is gone") {
		t.Fatalf("down from elsewhere: exit %d\n%s%s", code, out, errs)
	}
	if code, body := h.get(st.URL, st.Auth.Password); code != 404 {
		t.Fatalf("after down the URL answers %d, want 404 (the app is still proxied)\n%s", code, body)
	}
	waitFor(t, 10*time.Second, func() bool { return !alive(pid) })
	if _, err := os.Stat(filepath.Join(h.home, "envs", "pr-2")); !os.IsNotExist(err) {
		t.Fatalf("the environment's home is still there: %v", err)
	}
	if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 0 {
		t.Fatalf("%d clones after down", n)
	}
	if !strings.Contains(errs, demoConfig) {
		t.Fatalf("down does not say it used %s:\n%s", demoConfig, errs)
	}
}

func TestStatusAndLogs_FromADirectoryWithoutTheConfigShowTheEnvironmentAsItWasMade(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "2", "--sha", c1)
	st := h.status(2)
	demoConfig := filepath.Join(h.dir, "prenv.yaml")

	h.dir = t.TempDir()
	if got := h.status(2); got.Auth.Password != st.Auth.Password || got.URL != st.URL {
		t.Fatalf("status from elsewhere = %+v, want the login and URL of %+v", got, st)
	}
	if _, errs, code := h.run("status", "--pr", "2"); code != 0 || !strings.Contains(errs, demoConfig) {
		t.Fatalf("status from elsewhere: exit %d, want a note that it uses %s\n%s", code, demoConfig, errs)
	}
	if logs := h.must("logs", "--pr", "2"); !strings.Contains(logs, "applying 0002_order_status.sql") || !strings.Contains(logs, "listening") {
		t.Fatalf("logs from elsewhere do not show the app's log:\n%s", logs)
	}
}

// When the file the environment was made from is gone, down refuses and
// names it, rather than tearing down half of the environment.
func TestDown_WhenTheRecordedConfigIsGoneRefusesAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "2", "--sha", c1)
	st := h.status(2)
	pid := h.appPID("pr-2")
	demoConfig := filepath.Join(h.dir, "prenv.yaml")
	saved := filepath.Join(t.TempDir(), "prenv.yaml")
	if err := os.Rename(demoConfig, saved); err != nil {
		t.Fatal(err)
	}
	h.dir = t.TempDir()

	for _, args := range [][]string{{"down", "--pr", "2"}, {"logs", "--pr", "2"}, {"status", "--pr", "2"}} {
		out, errs, code := h.run(args...)
		if code != 2 || !strings.Contains(errs, "--config "+demoConfig) || strings.Contains(out, "gone") {
			t.Fatalf("prenv %s without the recorded config: exit %d, want 2 naming --config %s\n%s%s", strings.Join(args, " "), code, demoConfig, out, errs)
		}
	}
	if code, body := h.get(st.URL, st.Auth.Password); code != 200 || !strings.Contains(body, c1) || !alive(pid) {
		t.Fatalf("after the refused down: %d (app alive: %v)\n%s", code, alive(pid), body)
	}
	if n := sql(t, st.Database.URL, "SELECT count(*) FROM people"); n != 20 {
		t.Fatalf("the database after the refused down: %d people", n)
	}

	// With the file it names, down takes everything.
	if out, errs, code := h.run("--config", saved, "down", "--pr", "2"); code != 0 || !strings.Contains(out, "pr-2 is gone") {
		t.Fatalf("down --config %s: exit %d\n%s%s", saved, code, out, errs)
	}
	if code, _ := h.get(st.URL, st.Auth.Password); code != 404 {
		t.Fatalf("after down --config the URL answers %d, want 404", code)
	}
	waitFor(t, 10*time.Second, func() bool { return !alive(pid) })
}
