package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/testenv"
)

// A pull request's app is hostile: it reports who it runs as, its
// environment, and tries to read prenv's secrets and the other
// environment's files and processes (issue 9, section 1).
func TestUp_PullRequestCodeRunsUnprivilegedAndSeesNoSecret(t *testing.T) {
	h := newHarness(t)
	h.golden(20)
	app := testenv.Build(t, "./internal/cli/testdata/leakapp")
	h.dir = t.TempDir()
	testenv.Reachable(t, h.dir)
	const secret = "webhook-secret-that-must-not-leak"
	h.extra = append(h.extra, "PRENV_APP_START=exec "+app, "PRENV_APP_HEALTH=/healthz",
		"PRENV_GITHUB_WEBHOOK_SECRET="+secret, "PRENV_PASSWORD=basic-auth-password-not-for-apps")
	h.must("up", "--pr", "1", "--sha", "c1")
	h.must("up", "--pr", "2", "--sha", "c2")
	s1 := h.status(1)
	pass := "basic-auth-password-not-for-apps"

	ask := func(path string) map[string]any {
		t.Helper()
		code, body := h.get(s1.URL+path, pass)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
		return out
	}
	who := ask("/whoami")
	token, _ := os.ReadFile(filepath.Join(h.home, "serve.token"))
	var env []string
	for _, kv := range who["env"].([]any) {
		env = append(env, kv.(string))
	}
	sort.Strings(env)
	allowed := map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "LANG": true, "PORT": true, "DATABASE_URL": true,
		"PRENV_PR": true, "PRENV_SHA": true, "PRENV_ENV": true, "PRENV_REPOSITORY": true, "PRENV_RELEASE_DIR": true,
		"PWD": true} // PWD: set by the shell that starts the app
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if !allowed[k] {
			t.Errorf("the app's environment has %s, which prenv did not give it", k)
		}
		for _, s := range []string{secret, pass, strings.TrimSpace(string(token))} {
			if s != "" && strings.Contains(v, s) {
				t.Errorf("the app's environment carries a secret of prenv's in %s", k)
			}
		}
	}
	if home := strings.TrimPrefix(find(env, "HOME="), "HOME="); home != filepath.Join(h.home, "envs", "pr-1", "home") {
		t.Errorf("HOME is %q, want the environment's own home", home)
	}

	if os.Geteuid() == 0 {
		uid := int(who["uid"].(float64))
		if uid == 0 {
			t.Fatal("the app runs as root")
		}
		code, body := h.get(h.status(2).URL+"/whoami", pass)
		var other map[string]any
		json.Unmarshal([]byte(body), &other)
		if code != 200 || int(other["uid"].(float64)) == uid {
			t.Errorf("the two environments' apps run as the same user %d (%d %s)", uid, code, body)
		}
	} else {
		t.Log("not root: apps run as the invoking user; only the environment is checked")
	}

	var rel2 struct{ PID int }
	data, err := os.ReadFile(filepath.Join(h.home, "envs", "pr-2", "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(data, &rel2)
	servePID, _ := os.ReadFile(filepath.Join(h.home, "serve.pid"))
	targets := []string{
		h.home,
		filepath.Join(h.home, "serve.token"),
		filepath.Join(h.home, "password"),
		filepath.Join(h.home, "prenv.db"),
		filepath.Join(h.home, "envs"),
		filepath.Join(h.home, "envs", "pr-2"),
		filepath.Join(h.home, "envs", "pr-2", "release.json"),
		filepath.Join(h.home, "envs", "pr-2", "home"),
		filepath.Join(h.home, "envs", "pr-2", "releases"),
		filepath.Join(h.home, "envs", "pr-1", "release.json"), // its own, with prenv's record of it
		filepath.Join(h.home, "clones"),
		filepath.Join(h.home, "clones", "pr-2", "prenv-clone.json"),
		fmt.Sprintf("/proc/%d/environ", rel2.PID),
		fmt.Sprintf("/proc/%s/environ", strings.TrimSpace(string(servePID))),
	}
	if os.Geteuid() != 0 {
		targets = nil // one user: nothing is isolated, as the README says
	}
	for _, p := range targets {
		got := ask("/read?path=" + p)
		if got["error"] == nil {
			t.Errorf("the app of pr-1 read %s: %v", p, got["content"])
		}
	}
}

func find(env []string, prefix string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, prefix) {
			return kv
		}
	}
	return ""
}
