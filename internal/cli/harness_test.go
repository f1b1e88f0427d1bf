package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/testenv"
)

// harness runs the real prenv binary against a home of its own, from a git
// repository that holds the demo app.
type harness struct {
	t      *testing.T
	bin    string
	home   string
	listen string
	repo   string // git repository with examples/demo/prenv.yaml
	dir    string // where prenv runs (the demo directory)
	extra  []string
	git    func(args ...string) string // runs git in repo
}

// commit writes files (path relative to the repository: content, "" to
// remove) and commits them in the demo repository; it returns the commit.
func (h *harness) commit(msg string, files map[string]string) string {
	h.t.Helper()
	for rel, content := range files {
		p := filepath.Join(h.repo, rel)
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	h.git("add", "-A")
	h.git("commit", "-qm", msg)
	return h.git("rev-parse", "HEAD")
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testenv.Postgres(t)
	h := &harness{t: t, bin: testenv.Build(t, "./cmd/prenv"), home: testenv.Home(t)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.listen = l.Addr().String()
	l.Close()
	first, last := testenv.PortRange(t, 10)
	h.extra = []string{fmt.Sprintf("PRENV_DATABASE_LOCALPG_PORTS=%d-%d", first, last)}
	t.Cleanup(h.stopServe)
	return h
}

func (h *harness) stopServe() {
	data, err := os.ReadFile(filepath.Join(h.home, "serve.pid"))
	if err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	testenv.StopServers(h.home)
}

func (h *harness) env() []string {
	e := append(os.Environ(), "PRENV_HOME="+h.home, "PRENV_LISTEN="+h.listen, "PRENV_PASSWORD=")
	return append(e, h.extra...)
}

// run runs prenv with args and returns its stdout, stderr and exit code.
func (h *harness) run(args ...string) (string, string, int) {
	h.t.Helper()
	cmd := h.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (h *harness) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env()
	cmd.Dir = h.dir
	if cmd.Dir == "" {
		cmd.Dir = h.home
	}
	return cmd
}

// must runs prenv and fails the test unless it exits 0.
func (h *harness) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("prenv %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (h *harness) golden(people int) {
	h.t.Helper()
	f := filepath.Join(h.t.TempDir(), "seed.sql")
	os.WriteFile(f, []byte(testenv.DemoSQL(people)), 0o644)
	h.must("golden", "build", "--allow-pii", "--from-sql", f) // synthetic people; masking has its own tests
}

type status struct {
	PR       int    `json:"pr"`
	State    string `json:"state"`
	URL      string `json:"url"`
	Commit   string `json:"commit"`
	Error    string `json:"error"`
	Database struct {
		URL        string `json:"url"`
		Generation int    `json:"generation"`
		Ready      string `json:"ready"`
	} `json:"database"`
	Auth struct {
		User, Password string
	} `json:"auth"`
	Steps []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
	} `json:"steps"`
	LastRun struct {
		State, Output string
	} `json:"last_run"`
}

func (h *harness) status(pr int) status {
	h.t.Helper()
	var s status
	out := h.must("status", "--pr", strconv.Itoa(pr), "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		h.t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return s
}

func (s status) stepNames() string {
	var n []string
	for _, st := range s.Steps {
		n = append(n, st.Name)
	}
	return strings.Join(n, ",")
}

// demoRepo makes a git repository with the demo app and its prenv.yaml, and
// returns the commits: c1 (migrations 0001-0002), c2 (adds 0003), and bad
// (adds a migration that fails).
func (h *harness) demoRepo() (c1, c2, bad string) {
	t := h.t
	root := testenv.ModuleRoot(t)
	repo := filepath.Join(t.TempDir(), "shop")
	testenv.Reachable(t, repo)
	copyFile := func(rel string) {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(repo, rel)), 0o755)
		os.WriteFile(filepath.Join(repo, rel), data, 0o644)
	}
	for _, f := range []string{"go.mod", "go.sum", "examples/demo/prenv.yaml", "examples/demo/app/main.go",
		"examples/demo/app/migrations/migrations.go", "examples/demo/app/migrations/0001_people_and_orders.sql",
		"examples/demo/app/migrations/0002_order_status.sql"} {
		copyFile(f)
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.test", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-qm", "shop")
	c1 = git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "examples/demo/app/migrations/0003_reviews.sql"), []byte("CREATE TABLE reviews (id bigserial PRIMARY KEY, order_id bigint REFERENCES orders(id), stars int NOT NULL);\n"), 0o644)
	git("add", "-A")
	git("commit", "-qm", "reviews")
	c2 = git("rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "examples/demo/app/migrations/0004_broken.sql"), []byte("ALTER TABLE orders ADD COLUMN status text;\n"), 0o644)
	git("add", "-A")
	git("commit", "-qm", "broken migration")
	bad = git("rev-parse", "HEAD")
	h.repo, h.dir, h.git = repo, filepath.Join(repo, "examples/demo"), git
	// Each environment builds in a home of its own: seeded with a warm Go
	// build cache, as a team would from its default branch.
	h.extra = append(h.extra, "PRENV_RUNTIME_LOCAL_HOME_SEED="+testenv.DemoHomeSeed(t))
	return c1, c2, bad
}

func (h *harness) get(url, password string) (int, string) {
	h.t.Helper()
	code, _, body, err := testenv.Get(url, password)
	if err != nil {
		h.t.Fatalf("GET %s: %v", url, err)
	}
	if code == 502 {
		h.dumpLogs(url)
	}
	return code, body
}

func sql(t *testing.T, url, q string) int {
	t.Helper()
	return testenv.QueryInt(t, url, q)
}

var _ = context.Background

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dumpLogs shows what the server and the apps said, for a failure's reader.
func (h *harness) dumpLogs(why string) {
	h.t.Helper()
	logs, _ := filepath.Glob(filepath.Join(h.home, "envs", "*", "app.log"))
	for _, p := range append(logs, filepath.Join(h.home, "serve.log")) {
		data, _ := os.ReadFile(p)
		h.t.Logf("%s (%s):\n%s", p, why, data)
	}
}

// anotherMachine is a harness with h's configuration and variables but a
// home and a listen address of its own: another runner, or another replica.
func (h *harness) anotherMachine() *harness {
	other := *h
	other.extra = append([]string(nil), h.extra...)
	other.home = testenv.Home(h.t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	other.listen = l.Addr().String()
	l.Close()
	return &other
}

// deliver sends prenv serve (at h.listen) a signed pull_request delivery
// for acme/shop#pr, retrying while serve does not listen yet; it must be
// accepted.
func (h *harness) deliver(secret, id string, pr int, action, sha, state string, at time.Time) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"action": action, "number": pr, "repository": map[string]any{"full_name": "acme/shop"},
		"pull_request": map[string]any{"number": pr, "state": state, "updated_at": at.Format(time.RFC3339),
			"head": map[string]any{"sha": sha, "repo": map[string]any{"full_name": "acme/shop"}}, "base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}})
	for i := 0; ; i++ { // until serve listens
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.listen+"/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", id)
		req.Header.Set("X-Hub-Signature-256", github.Sign([]byte(secret), body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				h.t.Fatalf("delivery %s: %s", id, resp.Status)
			}
			return
		}
		if i == 200 {
			h.t.Fatalf("delivery %s: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
