package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// The conventions gh, helm and kubectl users expect (issue 13): the
// environment as an argument, ls --repo, down -o json, exit 2 for an
// unknown command, 5 for a missing environment, and a mistyped PRENV_
// variable named.
func TestCLI_ConventionsOfTheToolsTeamsKnow(t *testing.T) {
	h := newHarness(t)
	h.extra = append(h.extra, "PRENV_REPOSITORY=acme/shop")
	h.golden(10)
	h.must("up", "--pr", "5", "--sha", "c0ffee")

	byFlag, byName, byNumber := h.must("status", "--pr", "5", "-o", "json"), h.must("status", "pr-5", "-o", "json"), h.must("status", "5", "-o", "json")
	if byName != byFlag || byNumber != byFlag || !strings.Contains(byFlag, `"name": "pr-5"`) {
		t.Fatalf("status pr-5 and status 5 differ from status --pr 5:\n%s\n%s\n%s", byFlag, byName, byNumber)
	}
	h.refused(2, "prenv status names pr-5 and --pr 6: give one", "status", "pr-5", "--pr", "6")
	h.refused(2, `"pr-five" is not an environment: want pr-N or N`, "status", "pr-five")
	h.refused(2, "prenv status takes one environment, not 2 arguments", "status", "5", "6")
	// up names it the same way: the commit already served changes nothing.
	if out := h.must("up", "pr-5", "--sha", "c0ffee", "-o", "json"); !strings.Contains(out, `"name": "pr-5"`) {
		t.Fatalf("up pr-5:\n%s", out)
	}
	h.refused(2, `--log-format "xml": want text or json`, "--log-format", "xml", "ls")

	count := func(args ...string) int {
		t.Helper()
		var list []any
		if err := json.Unmarshal([]byte(h.must(append([]string{"ls", "-o", "json"}, args...)...)), &list); err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	if n, m, all := count("--repo", "acme/shop"), count("--repo", "other/repo"), count(); n != 1 || m != 0 || all != 1 {
		t.Fatalf("ls --repo acme/shop: %d, --repo other/repo: %d, all: %d", n, m, all)
	}
	h.refused(2, `--repo "shop": want owner/name`, "ls", "--repo", "shop")

	h.refused(2, `unknown command "bogus" for "prenv"`, "bogus")
	h.refused(2, `unknown command "bogus" for "prenv golden"`, "golden", "bogus")
	if _, errs, code := h.run("logs", "--pr", "99"); code != 5 {
		t.Fatalf("logs of a missing environment: exit %d\n%s", code, errs)
	}
	extra := h.extra
	h.extra = append(h.extra, "PRENV_DATABASE_LOCALPG_PORT=5500-5599")
	h.refused(2, "PRENV_DATABASE_LOCALPG_PORT is not a prenv.yaml field: did you mean PRENV_DATABASE_LOCALPG_PORTS?", "ls")
	h.extra = extra

	var down struct{ Name, State string }
	if err := json.Unmarshal([]byte(h.must("down", "pr-5", "-o", "json")), &down); err != nil || down.Name != "pr-5" || down.State != "deleted" {
		t.Fatalf("down pr-5 -o json: %+v %v", down, err)
	}
}
