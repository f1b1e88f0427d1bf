package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/store/sqlite"
	"github.com/prenv/prenv/internal/webhook"
)

// routes stands in for the supervisor's route table: it sends environments
// to real apps (httptest servers) by name.
type routes struct {
	ports map[string]int
	api   http.Handler
}

func (r routes) Route(name string) (int, bool) { p, ok := r.ports[name]; return p, ok }

func (r routes) Handler() http.Handler {
	if r.api == nil {
		return http.NotFoundHandler()
	}
	return r.api
}

// app is an environment's app: it answers with its name and the Host it saw.
func app(t *testing.T, name string) int {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s, host %s, authorization %q", name, r.Host, r.Header.Get("Authorization"))
	}))
	t.Cleanup(ts.Close)
	port, _ := strconv.Atoi(ts.URL[strings.LastIndex(ts.URL, ":")+1:])
	return port
}

// run serves srv on a real loopback listener until the test ends; it sets
// srv.Listen to the listener's address unless srv.Listen names another host,
// and returns the address to dial.
func run(t *testing.T, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.Listen == "" {
		srv.Listen = l.Addr().String()
	}
	if srv.Password == "" {
		srv.Password = "pw"
	}
	if srv.Supervisor == nil {
		srv.Supervisor = routes{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l.Addr().String()
}

// send sends method path to addr with Host host.
func send(t *testing.T, method, addr, host, path string, body []byte, set func(*http.Request)) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(data)
}

// public is prenv serve behind https://prenv.example.com with previews
// under preview.example.com, receiving webhooks.
func public(t *testing.T, ports map[string]int) (*Server, string) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := &Server{PublicURL: "https://prenv.example.com", Domain: "preview.example.com", Store: st, Token: "tok",
		Supervisor: routes{ports: ports}, Webhooks: &webhook.Receiver{Secret: []byte("s3cret"), Queue: st}}
	return srv, run(t, srv)
}

func TestServer_WebhooksAnswerAtThePublicURLsHost(t *testing.T) {
	_, addr := public(t, nil)
	body := []byte(`{"zen":"Design for failure.","hook_id":1}`)
	for _, host := range []string{"prenv.example.com", "prenv.example.com:443", "PRENV.EXAMPLE.COM."} {
		code, _, reply := send(t, "POST", addr, host, webhook.Path, body, func(r *http.Request) {
			r.Header.Set("X-GitHub-Event", "ping")
			r.Header.Set("X-GitHub-Delivery", "d1")
			r.Header.Set("X-Hub-Signature-256", github.Sign([]byte("s3cret"), body))
		})
		if code != http.StatusOK || !strings.Contains(reply, "pong") {
			t.Errorf("GitHub's ping at https://%s%s: %d %s", host, webhook.Path, code, reply)
		}
	}
}

func TestServer_PrenvsOwnEndpointsAnswerOnItsOwnHostsOnly(t *testing.T) {
	srv, addr := public(t, map[string]int{"pr-4": app(t, "pr-4")})
	port := srv.Port()
	for _, host := range []string{"prenv.example.com", "localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "localhost"} {
		if code, h, _ := send(t, "GET", addr, host, "/api/v1/health", nil, nil); code != 200 || h.Get("X-Prenv") == "" {
			t.Errorf("health at %s: %d", host, code)
		}
		if code, _, body := send(t, "GET", addr, host, "/api/v1/envs", nil, auth("prenv", "pw")); code != 200 || !strings.HasPrefix(body, "[") {
			t.Errorf("the environments at %s: %d %s", host, code, body)
		}
	}
	// Hosts that are neither prenv's nor an environment's get neither the
	// API nor an app, whatever the path and the credentials.
	for _, host := range []string{"evil.example.org", "pr-4.example.com", "pr-4.localhost:" + port, "a.pr-4.preview.example.com",
		"prenv.example.com.evil.org", "preview.example.com", "www.preview.example.com", "pr-4-.preview.example.com", "pr_4.preview.example.com"} {
		for _, path := range []string{"/api/v1/health", "/api/v1/envs", "/", webhook.Path} {
			code, h, body := send(t, "GET", addr, host, path, nil, auth("prenv", "pw"))
			if code != http.StatusMisdirectedRequest || h.Get("X-Prenv") != "" || strings.Contains(body, "app pr-4") ||
				!strings.Contains(body, "pr-N.preview.example.com") || h.Get("WWW-Authenticate") != "" {
				t.Errorf("%s%s: %d %v %s", host, path, code, h, body)
			}
		}
	}
}

func TestServer_EnvironmentsAnswerAtTheirNameUnderTheDomain(t *testing.T) {
	other := env.Key{Repo: "acme/api", PR: 3}.Name()
	_, addr := public(t, map[string]int{"pr-4": app(t, "pr-4"), other: app(t, other)})
	for host, want := range map[string]string{
		"pr-4.preview.example.com":             "app pr-4, host pr-4.preview.example.com,",
		"PR-4.preview.example.com:443":         "app pr-4, host PR-4.preview.example.com:443,",
		other + ".preview.example.com":         "app " + other + ",",
		"pr-4.preview.example.com.":            "app pr-4,",
		"pr-4.Preview.Example.Com:8080":        "app pr-4,",
		other + ".preview.example.com:" + "80": "app " + other + ",",
	} {
		if code, h, _ := send(t, "GET", addr, host, "/", nil, nil); code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s without the login: %d", host, code)
		}
		code, _, body := send(t, "GET", addr, host, "/api/v1/health", nil, auth("prenv", "pw"))
		if code != 200 || !strings.HasPrefix(body, want) || !strings.Contains(body, `authorization ""`) {
			t.Errorf("%s: %d %s, want %s", host, code, body, want)
		}
	}
	code, _, body := send(t, "GET", addr, "pr-5.preview.example.com", "/", nil, auth("prenv", "pw"))
	if code != 404 || !strings.Contains(body, "no environment pr-5 is running") {
		t.Errorf("an environment that does not run: %d %s", code, body)
	}
}

func TestServer_OwnHostsFollowTheListenAddress(t *testing.T) {
	for _, c := range []struct {
		listen, public, host string
		own                  bool
	}{
		{"127.0.0.1:8080", "", "127.0.0.1", true},
		{"127.0.0.1:8080", "", "::1", true},
		{"127.0.0.1:8080", "", "10.0.0.7", false},
		{"10.0.0.7:8080", "", "10.0.0.7", true},
		{"10.0.0.7:8080", "", "10.0.0.8", false},
		{"0.0.0.0:8080", "", "10.0.0.8", true}, // reachable at every address: a probe by pod IP
		{":8080", "", "fd00::8", true},
		{":8080", "", "prenv.internal", false},
		{"prenv.internal:8080", "", "prenv.internal", true},
		{"127.0.0.1:8080", "http://prenv.example.com:8080/", "prenv.example.com", true},
		{"127.0.0.1:8080", "https://prenv.example.com", "pr-1.prenv.example.com", false},
		{"127.0.0.1:8080", "", "", true}, // HTTP/1.0 sends no Host
	} {
		s := &Server{Listen: c.listen, PublicURL: c.public}
		if got := s.own(c.host); got != c.own {
			t.Errorf("listen %s, public_url %q: own(%q) = %v, want %v", c.listen, c.public, c.host, got, c.own)
		}
	}
}

func TestServer_EnvURLUsesTheDomain(t *testing.T) {
	for _, c := range []struct{ domain, public, want string }{
		{"", "", "http://pr-1.localhost:8080"},
		{"localhost", "https://prenv.example.com", "http://pr-1.localhost:8080"},
		{"preview.example.com", "", "http://pr-1.preview.example.com:8080"},
		{"preview.example.com", "https://prenv.example.com", "https://pr-1.preview.example.com"},
		{"preview.example.com", "https://prenv.example.com/", "https://pr-1.preview.example.com"},
		{"preview.example.com", "https://prenv.example.com:8443", "https://pr-1.preview.example.com:8443"},
		{"preview.example.com", "http://prenv.example.com", "http://pr-1.preview.example.com"},
		{"lvh.me", "", "http://pr-1.lvh.me:8080"},
	} {
		s := &Server{Listen: "127.0.0.1:8080", Domain: c.domain, PublicURL: c.public}
		got := s.EnvURL("pr-1")
		if got != c.want {
			t.Errorf("domain %q, public_url %q: EnvURL = %s, want %s", c.domain, c.public, got, c.want)
		}
		// What prenv reports is where the server answers for the environment.
		u, _ := url.Parse(got)
		if s.envName(hostname(u.Host)) != "pr-1" {
			t.Errorf("%s does not route to pr-1", got)
		}
	}
}
