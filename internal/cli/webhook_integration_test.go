package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/github/githubtest"
)

func TestServe_WebhooksBringEnvironmentsUpAndDownWithReports(t *testing.T) {
	h := newHarness(t)
	c1, c2, _ := h.demoRepo()
	h.golden(40)
	gh := githubtest.New(t, "tok")
	const secret = "webhook-secret"
	h.extra = append(h.extra, "PRENV_REPOSITORY=acme/shop", "PRENV_GITHUB_WEBHOOK_SECRET="+secret, "PRENV_GITHUB_TOKEN=tok",
		"PRENV_GITHUB_API_URL="+gh.URL, "PRENV_GITHUB_RECONCILE=0s", "PRENV_PUBLIC_URL=http://"+h.listen)
	serve := h.command("serve")
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() })
	deliver := func(id, action, sha, state string, at time.Time) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"action": action, "number": 5, "repository": map[string]any{"full_name": "acme/shop"},
			"pull_request": map[string]any{"number": 5, "state": state, "updated_at": at.Format(time.RFC3339),
				"head": map[string]any{"sha": sha, "repo": map[string]any{"full_name": "acme/shop"}}, "base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}})
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ { // until serve listens
			req, _ := http.NewRequest(http.MethodPost, "http://"+h.listen+"/webhooks/github", bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", id)
			req.Header.Set("X-Hub-Signature-256", github.Sign([]byte(secret), body))
			if resp, err = http.DefaultClient.Do(req); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	until := func(what string, cond func(status) bool) status {
		t.Helper()
		var st status
		for i := 0; i < 600; i++ {
			out, _, code := h.run("status", "--pr", "5", "-o", "json")
			if code == 0 && json.Unmarshal([]byte(out), &st) == nil && cond(st) {
				return st
			}
			time.Sleep(100 * time.Millisecond)
		}
		h.dumpLogs(what)
		t.Fatalf("not within a minute: %s (last %+v)", what, st)
		return st
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	deliver("d-open", "opened", c1, "open", t0)
	st := until("pr-5 ready at c1", func(s status) bool { return s.State == "ready" && s.Commit == c1 })
	if code, body := h.get(st.URL, st.Auth.Password); code != 200 || !strings.Contains(body, "40 customers") {
		t.Fatalf("GET %s: %d\n%s", st.URL, code, body)
	}
	deliver("d-push", "synchronize", c2, "open", t0.Add(time.Minute))
	until("pr-5 ready at c2", func(s status) bool { return s.State == "ready" && s.Commit == c2 })
	deliver("d-close", "closed", c2, "closed", t0.Add(2*time.Minute))
	until("pr-5 deleted", func(s status) bool { return s.State == "deleted" })
	for i := 0; i < 100 && !strings.HasSuffix(strings.Join(gh.StatusesOf("acme/shop", "pr-5"), " "), ":inactive"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if got := strings.Join(gh.StatusesOf("acme/shop", "pr-5"), " "); !strings.Contains(got, c1+":success") || !strings.Contains(got, c2+":success") || !strings.HasSuffix(got, ":inactive") {
		t.Fatalf("deployment statuses: %s", got)
	}
	// The deployment's log link leads to prenv serve's page for the environment.
	var logURL string
	for _, d := range gh.Deployments {
		for _, raw := range d.Statuses {
			var st map[string]string
			json.Unmarshal(raw, &st)
			if st["state"] == "success" {
				logURL = st["log_url"]
			}
		}
	}
	if logURL != "http://"+h.listen+"/envs/pr-5/log" {
		t.Fatalf("log_url %q", logURL)
	}
	if code, body := h.get(logURL, st.Auth.Password); code != 200 || !strings.Contains(body, "pr-5") || !strings.Contains(body, "last run: down") {
		t.Fatalf("GET %s: %d\n%s", logURL, code, body)
	}
	if c := gh.CommentsOf("acme/shop", 5); len(c) != 1 || !strings.Contains(c[0].Body, "torn down") {
		t.Fatalf("comments: %+v", c)
	}
	// Prometheus reads, without a login, what serve did: two ups and a
	// down, each up's clone step (the second adopts the clone) under its
	// provider, an empty queue.
	resp, err := http.Get("http://" + h.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`prenv_run_duration_seconds_count{kind="up",state="succeeded"} 2`, `prenv_run_duration_seconds_count{kind="down",state="succeeded"} 1`,
		`prenv_step_duration_seconds_count{provider="localpg",step="clone"} 2`, "prenv_webhook_queue_depth 0", "prenv_store_up 1"} {
		if resp.StatusCode != 200 || !strings.Contains(string(metrics), want+"\n") {
			var lines []string
			for _, l := range strings.Split(string(metrics), "\n") {
				if strings.HasPrefix(l, "prenv_") && strings.Contains(l, "_count") {
					lines = append(lines, l)
				}
			}
			t.Errorf("GET /metrics: %s lacks %s:\n%s", resp.Status, want, strings.Join(lines, "\n"))
		}
	}
}

func TestServe_AGitHubAppKeyThatDoesNotParseIsRefusedAtStart(t *testing.T) {
	h := newHarness(t)
	key := t.TempDir() + "/app.pem"
	os.WriteFile(key, []byte("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"), 0o600)
	h.extra = append(h.extra, "PRENV_GITHUB_WEBHOOK_SECRET=s", "PRENV_GITHUB_APP_ID=12345", "PRENV_GITHUB_APP_KEY_FILE="+key)
	h.refused(2, "does not parse", "serve")
	if _, err := http.Get("http://" + h.listen + "/api/v1/health"); err == nil {
		t.Fatal("prenv serve answers after refusing to start")
	}
}
