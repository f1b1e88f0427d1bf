package cli_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/github"
)

func TestServe_AnswersAtPublicURLsHostAndServesEnvironmentsUnderTheDomain(t *testing.T) {
	h := newHarness(t)
	h.extra = append(h.extra, "PRENV_PUBLIC_URL=https://prenv.example.test", "PRENV_SERVE_DOMAIN=preview.example.test",
		"PRENV_GITHUB_WEBHOOK_SECRET=s3cret", "PRENV_GITHUB_RECONCILE=0s")
	serve := h.command("serve")
	var logs syncBuffer
	serve.Stderr = &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() })
	do := func(method, host, path string, body []byte, set func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+h.listen+path, bytes.NewReader(body))
		req.Host = host
		if set != nil {
			set(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	waitFor(t, 30*time.Second, func() bool { code, _ := do("GET", h.listen, "/api/v1/health", nil, nil); return code == 200 })

	// GitHub delivers to the URL the docs give it.
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":7}`)
	code, body := do("POST", "prenv.example.test", "/webhooks/github", ping, func(r *http.Request) {
		r.Header.Set("X-GitHub-Event", "ping")
		r.Header.Set("X-GitHub-Delivery", "p1")
		r.Header.Set("X-Hub-Signature-256", github.Sign([]byte("s3cret"), ping))
	})
	if code != 200 || !strings.Contains(body, "pong") {
		t.Fatalf("GitHub's ping at https://prenv.example.test/webhooks/github: %d %s", code, body)
	}
	// An environment's host is behind the login (none runs here).
	if code, body := do("GET", "pr-1.preview.example.test", "/", nil, nil); code != 401 {
		t.Fatalf("pr-1.preview.example.test: %d %s", code, body)
	}
	// Any other host reaches neither prenv nor an environment.
	if code, body := do("GET", "pr-1.example.test", "/api/v1/health", nil, nil); code != http.StatusMisdirectedRequest {
		t.Fatalf("pr-1.example.test: %d %s", code, body)
	}
	// It says where the environments will be.
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "https://pr-N.preview.example.test") })
}
