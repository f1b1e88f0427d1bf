package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prenv/prenv/examples/demo/app/migrations"
	"github.com/prenv/prenv/internal/lock"
)

// ModuleRoot returns the directory of prenv's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var builds sync.Map // package path -> *built

type built struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the main package pkg (relative to the module root, such as
// ./cmd/prenv) once per test process and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &built{})
	b := v.(*built)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "prenv-bin-")
		if err != nil {
			b.err = err
			return
		}
		os.Chmod(dir, 0o755)
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// DemoSQL is a golden source for the demo app: the schema of migration 0001
// with n synthetic people and their orders.
func DemoSQL(n int) string {
	schema, _ := fs.ReadFile(migrations.FS, "0001_people_and_orders.sql")
	return string(schema) + fmt.Sprintf(`
CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO schema_migrations (version) VALUES ('0001_people_and_orders');
INSERT INTO people (full_name, email, phone, street, city, postcode)
  SELECT 'Person ' || i, 'person' || i || '@example.test', '+44 7000 ' || i, i || ' Mill Close', 'Northwick', 'NW1 2AB' FROM generate_series(1, %d) i;
INSERT INTO orders (person_id, item, quantity, total_cents, ordered_at)
  SELECT 1 + (i %% %d), 'Ceramic mug', 1, 1200, now() - i * interval '1 minute' FROM generate_series(1, %d) i;
`, n, n, 3*n)
}

// Client returns an HTTP client that sends every *.localhost name to
// 127.0.0.1, as browsers do.
func Client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
}

// Get fetches url with basic auth prenv:password and returns the status and body.
func Get(url, password string) (int, http.Header, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	if password != "" {
		req.SetBasicAuth("prenv", password)
	}
	resp, err := Client().Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body), err
}

// DemoHomeSeed returns a home for runtime.local.home_seed in which the demo
// app has been built once (its modules downloaded, its build cache warm),
// as a team would make one from its default branch. Built once per machine
// for this Go and go.sum (under ~/.cache/prenv), from the module cache the
// tests already have, without the network.
func DemoHomeSeed(t testing.TB) string {
	t.Helper()
	root := ModuleRoot(t)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion, err := exec.Command("go", "env", "GOVERSION", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	lines := strings.Fields(string(goVersion))
	modcache := lines[len(lines)-1]
	key := sha256.Sum256(append(sum, goVersion...))
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "prenv", "demo-home-seed-"+hex.EncodeToString(key[:8]))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	// Two test processes may get here at once: one builds, the other waits.
	unlock, err := lock.File(context.Background(), dir+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	// The same environment prenv gives an app's build (HOME, PATH), with
	// the modules taken from the local module cache.
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "app"), "./examples/demo/app")
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod",
		"GOPROXY=file://" + filepath.Join(modcache, "cache", "download"), "GONOSUMDB=*"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the demo app into a home seed: %v\n%s", err, out)
	}
	// Go makes the module cache read-only; the seed is copied, so it must be
	// removable by whoever cleans it.
	_ = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}
