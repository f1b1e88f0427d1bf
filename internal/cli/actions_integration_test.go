package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/github/githubtest"
)

// inActions makes h's prenv run as a step of a GitHub Actions job for a
// pull_request event of acme/shop#12 at head, reporting to gh.
func (h *harness) inActions(gh *githubtest.Server, action, head string) (output, summary string) {
	dir := h.t.TempDir()
	event, _ := json.Marshal(map[string]any{"action": action, "number": 12, "pull_request": map[string]any{
		"number": 12, "state": "open", "head": map[string]any{"sha": head, "repo": map[string]any{"full_name": "acme/shop"}},
		"base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}, "repository": map[string]any{"full_name": "acme/shop"}})
	eventPath := filepath.Join(dir, "event.json")
	os.WriteFile(eventPath, event, 0o644)
	output, summary = filepath.Join(dir, "output"), filepath.Join(dir, "summary")
	base := []string{}
	for _, e := range h.extra {
		if !strings.HasPrefix(e, "GITHUB_") {
			base = append(base, e)
		}
	}
	h.extra = append(base, "PRENV_REPOSITORY=acme/shop", "GITHUB_ACTIONS=true", "GITHUB_EVENT_NAME=pull_request", "GITHUB_EVENT_PATH="+eventPath, "GITHUB_REPOSITORY=acme/shop",
		"GITHUB_OUTPUT="+output, "GITHUB_STEP_SUMMARY="+summary, "GITHUB_TOKEN=tok", "GITHUB_API_URL="+gh.URL,
		"GITHUB_SERVER_URL=https://github.example.com", "GITHUB_RUN_ID=4242")
	return output, summary
}

func read(t *testing.T, path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func TestActions_UpFromTheEventReportsDeploymentsAndOneStickyComment(t *testing.T) {
	h := newHarness(t)
	c1, c2, bad := h.demoRepo()
	h.golden(30)
	gh := githubtest.New(t, "tok")
	gh.Comments["acme/shop#12"] = []*githubtest.Comment{{ID: 1, Body: "LGTM once the preview works"}}

	// The migration rehearsal's check run fails on a table rewrite.
	h.extra = append(h.extra, "PRENV_MIGRATION_CHECK=true", "PRENV_MIGRATION_FAIL_ON=table-rewrite")
	output, summary := h.inActions(gh, "opened", c1)
	if out, errs, code := h.run("up"); code != 0 || strings.Contains(errs, "warning: report") || strings.Contains(errs, "warning: post") || len(gh.Calls) == 0 { // no flags: the pull request and its head come from the event
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	st := h.status(12)
	if st.State != "ready" || st.Commit != c1 {
		t.Fatalf("status after up from the event: %+v", st)
	}
	if out := read(t, output); !strings.Contains(out, "url="+st.URL+"\n") || !strings.Contains(out, "environment=pr-12\n") {
		t.Fatalf("GITHUB_OUTPUT:\n%s", out)
	}
	if s := read(t, summary); !strings.Contains(s, "Preview environment `pr-12`") || !strings.Contains(s, st.URL) ||
		!strings.Contains(s, "### Migration rehearsal: no warnings") || !strings.Contains(s, "+ column orders.status: text not null default 'placed'::text") {
		t.Fatalf("GITHUB_STEP_SUMMARY:\n%s", s)
	}
	if runs := gh.CheckRunsOf("acme/shop"); len(runs) != 1 || runs[0].HeadSHA != c1 || runs[0].Conclusion != "success" || runs[0].Output.Title != "No warnings" {
		t.Fatalf("check runs after c1: %+v", runs)
	}
	if last := gh.LastStatus("acme/shop", "pr-12"); last["state"] != "success" || last["environment_url"] != st.URL ||
		last["log_url"] != "https://github.example.com/acme/shop/actions/runs/4242" {
		t.Fatalf("deployment status %v; calls %v", last, gh.Calls)
	}

	h.inActions(gh, "synchronize", c2)
	h.must("up")
	h.inActions(gh, "synchronize", bad)
	if _, errs, code := h.run("up"); code != 1 {
		t.Fatalf("up of a broken migration: exit %d\n%s", code, errs)
	}
	got := strings.Join(gh.StatusesOf("acme/shop", "pr-12"), " ")
	want := fmt.Sprintf("%s:in_progress %s:success %s:in_progress %s:success %s:in_progress %s:failure", c1, c1, c2, c2, bad, bad)
	if got != want {
		t.Fatalf("deployment statuses\n got %s\nwant %s", got, want)
	}
	var ours []string
	for _, c := range gh.CommentsOf("acme/shop", 12) {
		if strings.Contains(c.Body, github.Marker) {
			ours = append(ours, c.Body)
		}
	}
	if len(ours) != 1 || !strings.Contains(ours[0], "failed") || !strings.Contains(ours[0], bad[:12]) || !strings.Contains(ours[0], "0004_broken") ||
		!strings.Contains(ours[0], "golden data generation 1") || !strings.Contains(ours[0], "Last run: clone") ||
		!strings.Contains(ours[0], "### Migration rehearsal: failed, no warnings") {
		t.Fatalf("prenv's comments after three pushes (want one, edited):\n%s", strings.Join(ours, "\n-----\n"))
	}
	// The fix changes a column's type: orders is rewritten, which
	// migration.fail_on fails the check run on.
	fix := h.commit("retype quantity", map[string]string{"examples/demo/app/migrations/0004_broken.sql": "",
		"examples/demo/app/migrations/0004_quantity_bigint.sql": "ALTER TABLE orders ALTER COLUMN quantity TYPE bigint;\n"})
	h.inActions(gh, "synchronize", fix)
	h.must("up")
	var checks []string
	for _, c := range gh.CheckRunsOf("acme/shop") {
		checks = append(checks, c.HeadSHA+":"+c.Conclusion)
	}
	if want := fmt.Sprintf("%s:success %s:success %s:failure %s:failure", c1, c2, bad, fix); strings.Join(checks, " ") != want {
		t.Fatalf("check runs\n got %s\nwant %s", strings.Join(checks, " "), want)
	}
	if c := gh.CheckRunsOf("acme/shop")[3]; c.Output.Title != "1 of migration.fail_on: table-rewrite on orders" {
		t.Fatalf("the fix's check run: %+v", c)
	}
	if c := gh.CommentsOf("acme/shop", 12); !strings.Contains(c[1].Body, "### Migration rehearsal: 1 warning") || !strings.Contains(c[1].Body, "**table-rewrite** on `orders`") {
		t.Fatalf("the comment after the fix:\n%s", c[1].Body)
	}
	// A push that migrates nothing new does not clear the check: the
	// rewrite is still what the pull request does to orders.
	readme := h.commit("docs", map[string]string{"README.md": "the shop\n"})
	h.inActions(gh, "synchronize", readme)
	h.must("up")
	runs := gh.CheckRunsOf("acme/shop")
	if c := runs[len(runs)-1]; c.HeadSHA != readme || c.Conclusion != "failure" || c.Output.Title != "1 of migration.fail_on: table-rewrite on orders" ||
		!strings.Contains(c.Output.Summary, "Still on this database from earlier migrations") {
		t.Fatalf("the check run of a push after the rewrite: %+v", c)
	}

	// The pull request closes: down reports every deployment inactive.
	h.inActions(gh, "closed", bad)
	h.must("down")
	if got := gh.StatusesOf("acme/shop", "pr-12"); !strings.HasSuffix(strings.Join(got, " "), ":inactive") || gh.CallCount("POST /repos/acme/shop/deployments/") != 15 {
		t.Fatalf("after down: %v", got)
	}
	if c := gh.CommentsOf("acme/shop", 12); len(c) != 2 || !strings.Contains(c[1].Body, "torn down") {
		t.Fatalf("comments after down: %+v", c)
	}
}

func TestActions_AGitHubThatFailsNeverFailsTheTeardown(t *testing.T) {
	h := newHarness(t)
	h.golden(10)
	gh := githubtest.New(t, "other-token") // prenv's token is refused
	h.inActions(gh, "opened", "0000000000000000000000000000000000000000")
	if out, errs, code := h.run("up", "--sha", "c1"); code != 0 || !strings.Contains(errs, "warning: report") {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	h.inActions(gh, "closed", "0000000000000000000000000000000000000000")
	if out, errs, code := h.run("down"); code != 0 || !strings.Contains(errs, "warning: report the teardown to GitHub") || !strings.Contains(out, "pr-12 is gone") {
		t.Fatalf("down: exit %d\n%s%s", code, out, errs)
	}
}

func TestActions_AnEventThatIsNotAPullRequestsNeedsPR(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "event.json"), []byte(`{"ref":"refs/heads/main"}`), 0o644)
	h.extra = append(h.extra, "GITHUB_ACTIONS=true", "GITHUB_EVENT_NAME=push", "GITHUB_EVENT_PATH="+filepath.Join(dir, "event.json"))
	h.refused(2, "the workflow's event (push) is not a pull request's", "up")
	h.nothingRecorded()
}

func TestActions_AnUpRefusedBeforeItsFirstStepReportsNoDeployment(t *testing.T) {
	h := newHarness(t) // no golden data: up is refused before anything starts
	gh := githubtest.New(t, "tok")
	h.inActions(gh, "opened", "0000000000000000000000000000000000000000")
	if _, errs, code := h.run("up", "--sha", "c1"); code != 3 {
		t.Fatalf("up without golden data: exit %d\n%s", code, errs)
	}
	if n := gh.CallCount("POST /repos/acme/shop/deployments"); n != 0 {
		t.Fatalf("%d deployments created for an up that changed nothing", n)
	}
}
