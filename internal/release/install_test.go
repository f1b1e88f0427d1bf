package release

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// releaseServer serves release v1.2.3 as GitHub's releases do: an archive
// per platform, each with a prenv that says which it is, and SHA256SUMS.
type releaseServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
	sums string // served instead of the right SHA256SUMS when set
}

func newReleaseServer(t *testing.T) *releaseServer {
	files := map[string][]byte{}
	var sums strings.Builder
	for _, tg := range Targets {
		prenv := []byte(fmt.Sprintf("#!/bin/sh\necho \"prenv v1.2.3 %s/%s\"\n", tg.OS, tg.Arch))
		archive, err := tarGz(time.Unix(0, 0), []file{{"prenv", 0o755, prenv}, {"README.md", 0o644, []byte("prenv\n")}})
		if err != nil {
			t.Fatal(err)
		}
		name := ArchiveName("v1.2.3", tg)
		files["/v1.2.3/"+name] = archive
		sum := sha256.Sum256(archive)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	}
	rs := &releaseServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.hits = append(rs.hits, r.URL.Path)
		bad := rs.sums
		rs.mu.Unlock()
		if r.URL.Path == "/v1.2.3/SHA256SUMS" {
			if bad != "" {
				w.Write([]byte(bad))
				return
			}
			w.Write([]byte(sums.String()))
			return
		}
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *releaseServer) takeHits() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	h := rs.hits
	rs.hits = nil
	return h
}

// install runs the action's install script as a step on a runner with
// this tool cache; it returns its output and exit error, and GITHUB_PATH.
func install(t *testing.T, rs *releaseServer, cache, version, runnerOS, arch string) (string, string, error) {
	t.Helper()
	ghPath := filepath.Join(t.TempDir(), "path")
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "install-action.sh"))
	cmd.Env = append(os.Environ(), "PRENV_VERSION="+version, "PRENV_RELEASE_URL="+rs.URL, "RUNNER_OS="+runnerOS, "RUNNER_ARCH="+arch,
		"RUNNER_TOOL_CACHE="+cache, "GITHUB_PATH="+ghPath)
	out, err := cmd.CombinedOutput()
	p, _ := os.ReadFile(ghPath)
	return string(out), string(p), err
}

// The GitHub Action's install (issue 13): the runner's archive, checked
// against SHA256SUMS, kept in the tool cache and reused.
func TestInstallAction_TheRunnersArchiveCheckedAndCached(t *testing.T) {
	rs := newReleaseServer(t)
	cache := t.TempDir()
	out, path, err := install(t, rs, cache, "v1.2.3", "Linux", "X64")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	dir := filepath.Join(cache, "prenv", "1.2.3", "amd64")
	if path != dir+"\n" || !strings.Contains(out, "prenv v1.2.3 linux/amd64") {
		t.Fatalf("GITHUB_PATH %q, output:\n%s", path, out)
	}
	if hits := rs.takeHits(); strings.Join(hits, " ") != "/v1.2.3/prenv_v1.2.3_linux_amd64.tar.gz /v1.2.3/SHA256SUMS" {
		t.Fatalf("requests: %v", hits)
	}
	// The next step on the runner: from the cache, nothing downloaded.
	out, path, err = install(t, rs, cache, "v1.2.3", "Linux", "X64")
	if err != nil || path != dir+"\n" || !strings.Contains(out, "from the tool cache") {
		t.Fatalf("second install: %v %q\n%s", err, path, out)
	}
	if hits := rs.takeHits(); len(hits) != 0 {
		t.Fatalf("the cached install downloaded %v", hits)
	}
	// Each platform its archive.
	for _, c := range []struct{ os, arch, want string }{{"macOS", "ARM64", "darwin/arm64"}, {"Linux", "ARM64", "linux/arm64"}, {"macOS", "X64", "darwin/amd64"}} {
		out, _, err := install(t, rs, t.TempDir(), "v1.2.3", c.os, c.arch)
		if err != nil || !strings.Contains(out, "prenv v1.2.3 "+c.want) {
			t.Fatalf("%s %s: %v\n%s", c.os, c.arch, err, out)
		}
	}
	if out, _, err := install(t, rs, t.TempDir(), "v1.2.3", "Windows", "X64"); err == nil || !strings.Contains(out, "RUNNER_OS=Windows") {
		t.Fatalf("a Windows runner: %v\n%s", err, out)
	}
	if out, _, err := install(t, rs, t.TempDir(), "v9.9.9", "Linux", "X64"); err == nil || !strings.Contains(out, "is v9.9.9 a prenv release?") {
		t.Fatalf("a version without a release: %v\n%s", err, out)
	}
}

func TestInstallAction_AnArchiveThatDoesNotMatchSHA256SUMSIsRefused(t *testing.T) {
	rs := newReleaseServer(t)
	rs.sums = strings.Repeat("0", 64) + "  prenv_v1.2.3_linux_amd64.tar.gz\n"
	cache := t.TempDir()
	out, path, err := install(t, rs, cache, "v1.2.3", "Linux", "X64")
	if err == nil || !strings.Contains(out, "prenv_v1.2.3_linux_amd64.tar.gz does not match SHA256SUMS") || path != "" {
		t.Fatalf("a tampered archive: %v, GITHUB_PATH %q\n%s", err, path, out)
	}
	if _, err := os.Stat(filepath.Join(cache, "prenv", "1.2.3", "amd64")); !os.IsNotExist(err) {
		t.Fatalf("the refused archive was unpacked into the cache: %v", err)
	}
	rs.sums = "deadbeef  prenv_v1.2.3_linux_arm64.tar.gz\n"
	if out, _, err := install(t, rs, cache, "v1.2.3", "Linux", "X64"); err == nil || !strings.Contains(out, "SHA256SUMS of v1.2.3 lists no prenv_v1.2.3_linux_amd64.tar.gz") {
		t.Fatalf("SHA256SUMS without the archive: %v\n%s", err, out)
	}
}
