package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prenv/prenv/internal/release"
)

// installBench (issue 13): the seconds from the GitHub Action's install step
// starting to 'prenv version' answering, with the release archive (first on
// a runner, then from its tool cache) against go install from source with
// an empty build cache, as a fresh runner has.
func installBench(ctx context.Context, root, work string) {
	dir := filepath.Join(work, "install")
	check(os.MkdirAll(dir, 0o755))
	defer os.RemoveAll(dir)
	fmt.Fprintln(os.Stderr, "bench: install: building the release archive for this platform...")
	dist := filepath.Join(dir, "dist")
	version := "v0.0.0-bench"
	_, err := release.Build(ctx, release.Options{Module: root, Out: dist, Version: version, Commit: strings.Repeat("0", 40),
		Date: time.Now().UTC().Truncate(time.Second), Targets: []release.Target{{OS: runtime.GOOS, Arch: runtime.GOARCH}}})
	check(err)
	srv := httptest.NewServer(http.StripPrefix("/"+version, http.FileServer(http.Dir(dist))))
	defer srv.Close()
	runnerOS := map[string]string{"linux": "Linux", "darwin": "macOS"}[runtime.GOOS]
	runnerArch := map[string]string{"amd64": "X64", "arm64": "ARM64"}[runtime.GOARCH]
	cache := filepath.Join(dir, "toolcache")
	step := func() float64 {
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "install-action.sh"))
		cmd.Env = append(os.Environ(), "PRENV_VERSION="+version, "PRENV_RELEASE_URL="+srv.URL, "RUNNER_OS="+runnerOS, "RUNNER_ARCH="+runnerArch,
			"RUNNER_TOOL_CACHE="+cache, "GITHUB_PATH="+filepath.Join(dir, "path"))
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			check(fmt.Errorf("install-action.sh: %v\n%s", err, out))
		}
		return time.Since(t0).Seconds()
	}
	first, cached := step(), step()
	fmt.Fprintln(os.Stderr, "bench: install: go install with an empty build cache (as on a fresh runner)...")
	gocache, gobin := filepath.Join(dir, "gocache"), filepath.Join(dir, "gobin")
	t0 := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(gobin, "prenv"), "./cmd/prenv")
	build.Dir = root
	build.Env = append(os.Environ(), "GOCACHE="+gocache, "GOFLAGS=-mod=readonly")
	if out, err := build.CombinedOutput(); err != nil {
		check(fmt.Errorf("go build: %v\n%s", err, out))
	}
	check(exec.CommandContext(ctx, filepath.Join(gobin, "prenv"), "version").Run())
	source := time.Since(t0).Seconds()
	archive, _ := filepath.Glob(filepath.Join(dist, "*.tar.gz"))
	st, _ := os.Stat(archive[0])
	fmt.Printf("The GitHub Action's install: from the step's start to 'prenv version' answering (one run each; the archive, %s, from a local server):\n", human(st.Size()))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "how\tseconds")
	fmt.Fprintf(tw, "release archive, checked against SHA256SUMS, first on the runner\t%.2f\n", first)
	fmt.Fprintf(tw, "release archive, from the runner's tool cache\t%.2f\n", cached)
	fmt.Fprintf(tw, "go build from source, empty build cache (what go install did; modules already downloaded)\t%.1f\n", source)
	tw.Flush()
	fmt.Println()
}
