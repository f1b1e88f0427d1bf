package cli_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/github/githubtest"
)

// runLog runs prenv with stdout and stderr on one file, as a job's log
// interleaves them, and returns that log and the exit code.
func (h *harness) runLog(args ...string) (string, int) {
	h.t.Helper()
	f, err := os.Create(filepath.Join(h.t.TempDir(), "log"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	cmd := h.command(args...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	data, _ := os.ReadFile(f.Name())
	return string(data), code
}

// maskedBeforeShown fails unless every secret that appears in log appears
// first in its own ::add-mask:: line, and says which secrets log shows.
func maskedBeforeShown(t *testing.T, what, log string, secrets ...string) {
	t.Helper()
	masked := map[string]bool{}
	for n, line := range strings.Split(log, "\n") {
		value, isMask := strings.CutPrefix(line, "::add-mask::")
		for _, s := range secrets {
			if isMask && value == s {
				continue
			}
			if strings.Contains(line, s) && !masked[s] {
				t.Fatalf("%s: line %d shows %q before any ::add-mask:: of it:\n%s", what, n+1, s, log)
			}
		}
		if isMask {
			masked[value] = true
		}
	}
	for _, s := range secrets {
		if !masked[s] {
			t.Errorf("%s: %q is never masked:\n%s", what, s, log)
		}
	}
}

// Issue 9, section 7: in GitHub Actions every password prenv prints, and
// every URL carrying one, is masked first; a failed step's output is in the
// job's log and its summary.
func TestActions_SecretsAreMaskedBeforeTheyArePrintedAndAFailedMigrationShowsItsOutput(t *testing.T) {
	h := newHarness(t)
	c1, _, bad := h.demoRepo()
	h.golden(20)
	gh := githubtest.New(t, "tok")
	output, summary := h.inActions(gh, "opened", c1)

	log, code := h.runLog("up")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, log)
	}
	st := h.status(12) // -o json: the masks go to stderr, stdout stays JSON
	u, err := url.Parse(st.Database.URL)
	if err != nil || st.Auth.Password == "" {
		t.Fatalf("status: %+v (%v)", st, err)
	}
	dbPassword, _ := u.User.Password()
	secrets := []string{st.Auth.Password, dbPassword, st.Database.URL}
	if !strings.Contains(log, "DATABASE_URL="+st.Database.URL) || !strings.Contains(log, st.Auth.Password) {
		t.Fatalf("up does not print the database URL and the login:\n%s", log)
	}
	maskedBeforeShown(t, "up's log", log, secrets...)

	out, errs, code := h.run("status", "--pr", "12")
	if code != 0 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	maskedBeforeShown(t, "status's stdout", out, secrets...)

	out, errs, code = h.run("status", "--pr", "12", "-o", "json")
	var parsed map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &parsed) != nil {
		t.Fatalf("status -o json is not JSON in Actions: exit %d\n%s", code, out)
	}
	maskedBeforeShown(t, "status -o json's stderr then stdout", errs+out, secrets...)

	if o := read(t, output); !strings.Contains(o, "url="+st.URL+"\n") {
		t.Fatalf("GITHUB_OUTPUT:\n%s", o)
	}
	for _, s := range secrets {
		if strings.Contains(read(t, output), s) || strings.Contains(read(t, summary), s) {
			t.Fatalf("a secret is in GITHUB_OUTPUT or the summary:\n%s\n%s", read(t, output), read(t, summary))
		}
	}

	_, summary = h.inActions(gh, "synchronize", bad)
	log, code = h.runLog("up")
	const why = `column "status" of relation "orders" already exists`
	if code != 1 || !strings.Contains(log, why) {
		t.Fatalf("up of a broken migration: exit %d, want 1 with the migration's output in the job's log:\n%s", code, log)
	}
	maskedBeforeShown(t, "the failed up's log", log, secrets...)
	if s := read(t, summary); !strings.Contains(s, why) {
		t.Fatalf("the step summary does not show the migration's output:\n%s", s)
	}
}

// A database-only environment's step has its database URL as an output,
// masked in the job's log before it is written (issue 13).
func TestActions_ADatabaseOnlyEnvironmentOutputsItsMaskedDatabaseURL(t *testing.T) {
	h := newHarness(t)
	h.golden(10)
	gh := githubtest.New(t, "tok")
	output, _ := h.inActions(gh, "opened", "c0ffee")
	log, code := h.runLog("up")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, log)
	}
	st := h.status(12)
	if st.URL != "" || st.Database.URL == "" {
		t.Fatalf("not a database-only environment: %+v", st)
	}
	if o := read(t, output); !strings.Contains(o, "database-url="+st.Database.URL+"\n") || !strings.Contains(o, "url=\n") {
		t.Fatalf("GITHUB_OUTPUT:\n%s", o)
	}
	if !strings.Contains(log, "::add-mask::"+st.Database.URL) {
		t.Fatalf("the database URL is not masked in the job's log:\n%s", log)
	}
}
