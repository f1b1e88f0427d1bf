package kubernetes

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/downloader"
	"helm.sh/helm/v4/pkg/getter"
	"helm.sh/helm/v4/pkg/registry"
	repo "helm.sh/helm/v4/pkg/repo/v1"

	"github.com/prenv/prenv/internal/runtime"
)

// ChartSource says where the team's chart comes from: a local path (a
// directory or a .tgz), a chart in a repository (Ref is the chart's name and
// Repo the repository's URL), or an OCI reference (oci://host/path/name).
type ChartSource struct {
	Ref     string
	Version string // a version or a semver range; empty is the latest
	Repo    string // URL of a chart repository (with index.yaml)
	// PlainHTTP talks to an OCI registry over http instead of https.
	PlainHTTP bool
	// Username and Password authenticate to the repository or registry;
	// without them an OCI registry uses the credentials 'helm registry
	// login' (or 'docker login') stored.
	Username, Password string
	// CacheDir is where downloaded charts are kept; empty is Helm's cache.
	CacheDir string
}

func (s ChartSource) remote() bool { return s.Repo != "" || registry.IsOCI(s.Ref) }

func (s ChartSource) String() string {
	out := s.Ref
	if s.Repo != "" {
		out = strings.TrimSuffix(s.Repo, "/") + " " + s.Ref
	}
	if s.Version != "" {
		out += " " + s.Version
	}
	return out
}

// chartCache loads a chart once per runtime: a remote chart is downloaded
// once per process, not once per step.
type chartCache struct {
	mu sync.Mutex
	ch *chart.Chart
}

func (c *chartCache) get(src ChartSource) (*chart.Chart, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		return c.ch, nil
	}
	path, err := locate(src)
	if err != nil {
		return nil, err
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("runtime.kubernetes.chart %s: %v: %w", src, err, runtime.ErrInvalid)
	}
	c.ch = ch
	return ch, nil
}

// locate returns the local path of src's chart, downloading it when it is
// remote.
func locate(src ChartSource) (string, error) {
	if src.Ref == "" {
		return "", fmt.Errorf("runtime.kubernetes.chart is empty: give a path, a chart name with chart_repo, or an oci:// reference: %w", runtime.ErrInvalid)
	}
	if !src.remote() {
		if _, err := os.Stat(src.Ref); err != nil {
			return "", fmt.Errorf("runtime.kubernetes.chart: %v: give the path of the chart's directory or .tgz, a chart name with chart_repo, or an oci:// reference: %w", err, runtime.ErrInvalid)
		}
		return src.Ref, nil
	}
	settings := cli.New()
	if src.CacheDir != "" {
		settings.RepositoryCache = filepath.Join(src.CacheDir, "repository")
		settings.ContentCache = filepath.Join(src.CacheDir, "content")
	}
	opts := []registry.ClientOption{registry.ClientOptCredentialsFile(settings.RegistryConfig)}
	if src.PlainHTTP {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	if src.Username != "" {
		opts = append(opts, registry.ClientOptBasicAuth(src.Username, src.Password))
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return "", fmt.Errorf("runtime.kubernetes.chart %s: registry client: %w", src, err)
	}
	path, err := download(src, settings, rc)
	if err != nil {
		return "", fmt.Errorf("runtime.kubernetes.chart %s cannot be fetched: %v: check chart, chart_version and chart_repo, and the credentials (helm registry login for OCI): %w", src, err, runtime.ErrInvalid)
	}
	return path, nil
}

// download fetches a remote chart into Helm's cache as 'helm pull' does,
// with Helm's own getters for http(s) and oci only. Helm's getter plugins
// are left out on purpose: loading them links a WebAssembly runtime into
// prenv (about 5 MB of its binary), and a plugin would run whatever sits in
// the machine's Helm plugin directory.
func download(src ChartSource, settings *cli.EnvSettings, rc *registry.Client) (string, error) {
	getters := getter.Getters()
	dl := downloader.ChartDownloader{
		Out:              io.Discard,
		Getters:          getters,
		Options:          []getter.Option{getter.WithPlainHTTP(src.PlainHTTP), getter.WithRegistryClient(rc)},
		RepositoryConfig: settings.RepositoryConfig,
		RepositoryCache:  settings.RepositoryCache,
		ContentCache:     settings.ContentCache,
		RegistryClient:   rc,
	}
	name, user, password := src.Ref, src.Username, src.Password
	if src.Repo != "" {
		u, err := repo.FindChartInRepoURL(src.Repo, src.Ref, getters,
			repo.WithChartVersion(src.Version), repo.WithUsernamePassword(src.Username, src.Password))
		if err != nil {
			return "", err
		}
		// The repository's credentials go only where the repository is: an
		// index.yaml naming an archive on another host does not get them
		// (Helm's rule without --pass-credentials).
		if !sameOrigin(src.Repo, u) {
			user, password = "", ""
		}
		name = u
	}
	dl.Options = append(dl.Options, getter.WithBasicAuth(user, password))
	if err := os.MkdirAll(settings.RepositoryCache, 0o755); err != nil {
		return "", err
	}
	path, _, err := dl.DownloadToCache(name, src.Version)
	if err != nil {
		return "", err
	}
	return filepath.Abs(path)
}

// sameOrigin says whether two URLs have the same scheme, host and port.
func sameOrigin(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if u.Scheme == "http" {
			return "80"
		}
		return "443"
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Hostname(), ub.Hostname()) && port(ua) == port(ub)
}
