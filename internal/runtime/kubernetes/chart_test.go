package kubernetes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/registry"
	repo "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/prenv/prenv/internal/runtime"
)

// packaged writes the demo chart at each version as .tgz files into dir.
func packaged(t *testing.T, dir string, versions ...string) []string {
	t.Helper()
	var out []string
	for _, v := range versions {
		ch, err := loader.Load(filepath.Join("..", "..", "..", "examples", "demo", "chart"))
		if err != nil {
			t.Fatal(err)
		}
		ch.Metadata.Version = v
		p, err := chartutil.Save(ch, dir)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// chartRepo serves a Helm chart repository (index.yaml and archives) over
// real HTTP, as 'helm repo add' sees one.
func chartRepo(t *testing.T, versions ...string) string {
	dir := t.TempDir()
	packaged(t, dir, versions...)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	idx, err := repo.IndexDirectory(dir, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// ociRegistry runs an OCI distribution registry (the one registries such
// as Harbor and GitLab's are built on) in memory, pushes the demo chart at
// each version with Helm's registry client, and returns oci://host/charts.
func ociRegistry(t *testing.T, versions ...string) string {
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	cfg.HTTP.Secret = "prenv-test"
	cfg.Log.AccessLog.Disabled = true
	logrus.SetOutput(io.Discard) // the registry logs every request through logrus
	srv := httptest.NewServer(handlers.NewApp(context.Background(), cfg))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	rc, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range packaged(t, t.TempDir(), versions...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Push(data, host+"/charts/demo:"+versions[i]); err != nil {
			t.Fatal(err)
		}
	}
	return "oci://" + host + "/charts"
}

func TestChart_FromARepositoryTheNewestOrTheVersionAsked(t *testing.T) {
	url := chartRepo(t, "0.1.0", "0.2.0", "1.0.0")
	cache := t.TempDir()
	for _, tc := range []struct{ version, want string }{{"", "1.0.0"}, {"0.1.0", "0.1.0"}, {"~0.2", "0.2.0"}} {
		var c chartCache
		ch, err := c.get(ChartSource{Ref: "demo", Repo: url, Version: tc.version, CacheDir: cache})
		if err != nil {
			t.Fatalf("version %q: %v", tc.version, err)
		}
		if ch.Metadata.Version != tc.want || ch.Name() != "demo" {
			t.Fatalf("version %q: got %s %s, want %s", tc.version, ch.Name(), ch.Metadata.Version, tc.want)
		}
	}
	var c chartCache
	_, err := c.get(ChartSource{Ref: "demo", Repo: url, Version: "9.9.9", CacheDir: cache})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "9.9.9") || !strings.Contains(err.Error(), "chart_version") {
		t.Fatalf("a version the repository lacks: %v", err)
	}
	_, err = c.get(ChartSource{Ref: "no-such-chart", Repo: url, CacheDir: cache})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "no-such-chart") {
		t.Fatalf("a chart the repository lacks: %v", err)
	}
}

func TestChart_FromAnOCIRegistryTheNewestOrTheVersionAsked(t *testing.T) {
	ref := ociRegistry(t, "0.1.0", "0.3.0") + "/demo"
	for _, tc := range []struct{ version, want string }{{"", "0.3.0"}, {"0.1.0", "0.1.0"}} {
		var c chartCache
		ch, err := c.get(ChartSource{Ref: ref, Version: tc.version, PlainHTTP: true, CacheDir: t.TempDir()})
		if err != nil {
			t.Fatalf("version %q: %v", tc.version, err)
		}
		if ch.Metadata.Version != tc.want {
			t.Fatalf("version %q: got %s, want %s", tc.version, ch.Metadata.Version, tc.want)
		}
	}
	var c chartCache
	_, err := c.get(ChartSource{Ref: strings.TrimSuffix(ref, "demo") + "missing", PlainHTTP: true, CacheDir: t.TempDir()})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("a reference the registry lacks: %v", err)
	}
}

func TestChart_ALocalPathThatDoesNotExistSaysWhatToGive(t *testing.T) {
	var c chartCache
	_, err := c.get(ChartSource{Ref: filepath.Join(t.TempDir(), "chart")})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "oci://") {
		t.Fatalf("err = %v", err)
	}
}

// A chart repository behind basic auth gets its credentials, and only it:
// an index.yaml that names archives on another host (a mirror, or a
// hostile index) does not hand that host the repository's password.
func TestChart_ARepositorysCredentialsGoOnlyToItsOwnHost(t *testing.T) {
	dir := t.TempDir()
	packaged(t, dir, "0.1.0")
	var mu sync.Mutex
	seen := map[string]string{} // what each server was sent as Authorization, by server and path
	serve := func(name string, h http.Handler) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name+" "+r.URL.Path] = r.Header.Get("Authorization")
			mu.Unlock()
			if u, p, ok := r.BasicAuth(); name == "repo" && (!ok || u != "ci" || p != "s3cret") {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	index := func(base string) string {
		idx, err := repo.IndexDirectory(dir, base)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "index.yaml")
		if err := idx.WriteFile(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := serve("other", http.FileServer(http.Dir(dir)))
	mux := http.NewServeMux()
	own := serve("repo", mux)
	elsewhere, here := index(other.URL), index(own.URL) // archives on the other host, on the repository's
	mux.HandleFunc("/elsewhere/index.yaml", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, elsewhere) })
	mux.HandleFunc("/here/index.yaml", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, here) })
	mux.Handle("/", http.FileServer(http.Dir(dir)))

	var c chartCache
	if _, err := c.get(ChartSource{Ref: "demo", Repo: own.URL + "/here", Username: "ci", Password: "s3cret", CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("a repository behind basic auth: %v", err)
	}
	if seen["repo /demo-0.1.0.tgz"] == "" {
		t.Fatalf("the archive on the repository's own host was fetched without its credentials: %v", seen)
	}
	var c2 chartCache
	if _, err := c2.get(ChartSource{Ref: "demo", Repo: own.URL + "/elsewhere", Username: "ci", Password: "s3cret", CacheDir: t.TempDir()}); err != nil {
		t.Fatalf("archives on another host: %v", err)
	}
	if got, ok := seen["other /demo-0.1.0.tgz"]; !ok || got != "" {
		t.Fatalf("the other host was sent Authorization %q (fetched: %v)", got, ok)
	}
	var c3 chartCache
	_, err := c3.get(ChartSource{Ref: "demo", Repo: own.URL + "/here", CacheDir: t.TempDir()})
	if !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("without credentials: %v", err)
	}
}
