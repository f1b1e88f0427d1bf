package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime/local"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
)

func newServer(t *testing.T) *httptest.Server {
	home := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(home, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Request(context.Background(), env.Key{PR: 4}, "pr-4", "abc", false); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listen: "127.0.0.1:8080", Password: "pw", Token: "tok", Store: s,
		Supervisor: local.NewSupervisor(context.Background(), home, "prenv", nil)}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url, host string, set func(*http.Request)) (int, http.Header, string) {
	req, _ := http.NewRequest(method, url, nil)
	if host != "" {
		req.Host = host
	}
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func auth(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }

func TestServer_IndexAndListNeedTheLogin(t *testing.T) {
	ts := newServer(t)
	if code, h, _ := do(t, "GET", ts.URL+"/", "", nil); code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("index without login: %d %v", code, h)
	}
	if code, _, _ := do(t, "GET", ts.URL+"/", "", auth("prenv", "wrong")); code != 401 {
		t.Fatalf("index with a wrong password: %d", code)
	}
	code, h, body := do(t, "GET", ts.URL+"/", "", auth("prenv", "pw"))
	if code != 200 || !strings.Contains(body, "#4") || h.Get("X-Robots-Tag") == "" {
		t.Fatalf("index: %d %v\n%s", code, h, body)
	}
	code, _, body = do(t, "GET", ts.URL+"/api/v1/envs", "", auth("prenv", "pw"))
	var list []struct {
		PR    int
		State string
	}
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].PR != 4 || list[0].State != "pending" {
		t.Fatalf("envs: %d %s", code, body)
	}
}

func TestServer_TheRuntimeAPINeedsTheToken(t *testing.T) {
	ts := newServer(t)
	for _, set := range []func(*http.Request){nil, func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, auth("prenv", "pw")} {
		if code, _, _ := do(t, "POST", ts.URL+"/api/v1/local/stop/pr-4", "", set); code != 401 {
			t.Fatalf("stop without the token: %d", code)
		}
	}
	if code, _, _ := do(t, "POST", ts.URL+"/api/v1/local/stop/pr-4", "", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }); code != 204 {
		t.Fatalf("stop with the token: %d", code)
	}
	if code, h, _ := do(t, "GET", ts.URL+"/api/v1/health", "", nil); code != 200 || h.Get("X-Prenv") == "" {
		t.Fatalf("health: %d", code)
	}
}

func TestServer_AHostNamesTheEnvironment(t *testing.T) {
	ts := newServer(t)
	if code, _, _ := do(t, "GET", ts.URL+"/", "pr-4.localhost:8080", nil); code != 401 {
		t.Fatalf("environment without login: %d", code)
	}
	code, _, body := do(t, "GET", ts.URL+"/", "pr-4.localhost:8080", auth("prenv", "pw"))
	if code != 404 || !strings.Contains(body, "no environment pr-4 is running") {
		t.Fatalf("environment with no app: %d %s", code, body)
	}
	srv := &Server{Listen: "127.0.0.1:8080"} // the default domain, localhost
	for host, want := range map[string]string{"pr-12.localhost:8080": "pr-12", "PR-3.localhost": "pr-3", "PR-3.example.com": "", "localhost:8080": "", "127.0.0.1:8080": "", "[::1]:8080": ""} {
		if got := srv.envName(hostname(host)); got != want {
			t.Errorf("envName(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestServer_AnEnvironmentsLogPageShowsTheFailedRunBehindTheLogin(t *testing.T) {
	home := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(home, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	k := env.Key{PR: 6}
	seq, _ := s.Request(ctx, k, "pr-6", "bad", false)
	run := &store.Run{Key: k, Seq: seq, Kind: "up", Commit: "bad", State: "failed", Error: "migrate failed: exit status 1",
		Output: "applying 0004_broken.sql ... failed", StartedAt: time.Now(),
		Migration: []byte(`{"seconds":0.4,"failed":"migrate failed: exit status 1","diff_base":"begin","warnings":[{"code":"table-rewrite","table":"orders","message":"orders was rewritten"}],"interval":0.05}`)}
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, "pr-6.log"), []byte("listening on :8080\n"), 0o644)
	srv := &Server{Listen: "127.0.0.1:8080", Password: "pw", Store: s, Supervisor: local.NewSupervisor(ctx, home, "prenv", nil),
		LogFile: func(name string) string { return filepath.Join(home, name+".log") }}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if code, _, _ := do(t, "GET", ts.URL+"/envs/pr-6/log", "", nil); code != 401 {
		t.Fatalf("without the login: %d", code)
	}
	code, _, body := do(t, "GET", ts.URL+"/envs/pr-6/log", "", auth("prenv", "pw"))
	if code != 200 || !strings.Contains(body, "migrate failed") || !strings.Contains(body, "applying 0004_broken.sql ... failed") || !strings.Contains(body, "listening on :8080") ||
		!strings.Contains(body, "--- the migration rehearsal of bad ---\nMigration failed after 0.40 s.") || !strings.Contains(body, "! table-rewrite on orders") {
		t.Fatalf("log page: %d\n%s", code, body)
	}
	if code, _, _ := do(t, "GET", ts.URL+"/envs/pr-9/log", "", auth("prenv", "pw")); code != 404 {
		t.Fatalf("an unknown environment: %d", code)
	}
}

// A probe's view: alive while the process answers, ready only while the
// store answers too (a replica that lost its store takes no deliveries);
// neither needs the login.
func TestServer_ReadyWhileTheStoreAnswers(t *testing.T) {
	home := t.TempDir()
	s, err := sqlite.Open(context.Background(), filepath.Join(home, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listen: ":8080", Password: "pw", Token: "tok", Store: s, Ready: s.Ping,
		Supervisor: local.NewSupervisor(context.Background(), home, "prenv", nil)}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	// A kubelet probes by the pod's IP.
	if code, _, body := do(t, "GET", ts.URL+"/api/v1/ready", "10.244.0.7:8080", nil); code != 200 || body != "ready\n" {
		t.Fatalf("ready with the store open: %d %q", code, body)
	}
	s.Close()
	if code, _, body := do(t, "GET", ts.URL+"/api/v1/ready", "10.244.0.7:8080", nil); code != 503 || !strings.Contains(body, "not ready: ") {
		t.Fatalf("ready with the store closed: %d %q", code, body)
	}
	if code, _, _ := do(t, "GET", ts.URL+"/api/v1/health", "10.244.0.7:8080", nil); code != 200 {
		t.Fatalf("alive with the store closed: %d", code)
	}
}
