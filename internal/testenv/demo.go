package testenv

import (
	"context"
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
