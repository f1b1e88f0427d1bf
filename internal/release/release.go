// Package release builds prenv's release archives: a stripped, static
// binary per platform in a tar.gz with README.md, and a SHA256SUMS file, the
// same bytes from the same commit on any machine (no build paths, no build
// ids, the commit's time on every file).
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Target is a platform prenv is released for.
type Target struct{ OS, Arch string }

// Targets are the platforms of a release.
var Targets = []Target{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}}

// ParseTargets reads "linux/amd64,darwin/arm64".
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	for _, t := range strings.Split(s, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(t), "/")
		if !ok || goos == "" || arch == "" {
			return nil, fmt.Errorf("target %q: want os/arch, for example linux/amd64", t)
		}
		out = append(out, Target{goos, arch})
	}
	return out, nil
}

// MaxBinary is the most a release binary may weigh, stripped: what a
// runner without a cached copy downloads before its first step.
const MaxBinary = 80_000_000

// Options say what to build.
type Options struct {
	Module  string // the module's root
	Out     string // where the archives and SHA256SUMS go
	Version string // v1.2.3
	Commit  string // the full hash
	Date    time.Time
	Targets []Target
	Go      string // the go command (default "go")
}

var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

// FromGit reads the commit at HEAD of the checkout in dir, its date, and
// the version (the tag at HEAD, else v0.0.0-<commit date>-<commit>) unless
// version is given. A checkout with uncommitted changes is refused: a
// release is built from a commit.
func FromGit(dir, version string) (Options, error) {
	git := func(args ...string) string {
		b, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	commit := git("rev-parse", "HEAD")
	date, err := time.Parse(time.RFC3339, git("show", "-s", "--format=%cI", "HEAD"))
	if commit == "" || err != nil {
		return Options{}, errors.New("run it in prenv's git checkout: the commit and its date are stamped into what is built")
	}
	if git("status", "--porcelain", "--untracked-files=no") != "" {
		return Options{}, errors.New("the checkout has uncommitted changes: a release is built from a commit")
	}
	if version == "" {
		version = git("describe", "--tags", "--exact-match", "--match", "v*")
	}
	if version == "" {
		version = fmt.Sprintf("v0.0.0-%s-%s", date.UTC().Format("20060102150405"), commit[:12])
	}
	return Options{Module: dir, Version: version, Commit: commit, Date: date}, nil
}

// ArchiveName is the archive of version for t: prenv_v1.2.3_linux_amd64.tar.gz.
func ArchiveName(version string, t Target) string {
	return fmt.Sprintf("prenv_%s_%s_%s.tar.gz", version, t.OS, t.Arch)
}

// Build builds every target's archive into o.Out and writes SHA256SUMS
// (sha256sum's format, sorted by name); it returns the archives' paths.
func Build(ctx context.Context, o Options) ([]string, error) {
	if !versionRE.MatchString(o.Version) {
		return nil, fmt.Errorf("version %q: want a semantic version tag such as v1.2.3", o.Version)
	}
	if o.Date.IsZero() || o.Commit == "" {
		return nil, errors.New("the commit and its date are needed: they are stamped into the binary and the archive")
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if len(o.Targets) == 0 {
		o.Targets = Targets
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	readme, err := os.ReadFile(filepath.Join(o.Module, "README.md"))
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "prenv-release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var paths []string
	sums := map[string]string{}
	for _, t := range o.Targets {
		bin := filepath.Join(tmp, t.OS+"-"+t.Arch, "prenv")
		if err := Binary(ctx, o, t, bin); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		archive, err := tarGz(o.Date, []file{{"prenv", 0o755, data}, {"README.md", 0o644, readme}})
		if err != nil {
			return nil, err
		}
		name := ArchiveName(o.Version, t)
		path := filepath.Join(o.Out, name)
		if err := os.WriteFile(path, archive, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(archive)
		sums[name] = hex.EncodeToString(sum[:])
		paths = append(paths, path)
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	return paths, os.WriteFile(filepath.Join(o.Out, "SHA256SUMS"), []byte(b.String()), 0o644)
}

// Binary builds cmd/prenv for t as released: static (no cgo), stripped
// (-s -w), without build paths (-trimpath), build id or VCS stamp, the
// version, commit and date set in internal/version.
func Binary(ctx context.Context, o Options, t Target, out string) error {
	if o.Go == "" {
		o.Go = "go"
	}
	const pkg = "github.com/prenv/prenv/internal/version"
	ldflags := fmt.Sprintf("-s -w -buildid= -X %s.version=%s -X %s.commit=%s -X %s.date=%s",
		pkg, o.Version, pkg, o.Commit, pkg, o.Date.UTC().Format(time.RFC3339))
	cmd := exec.CommandContext(ctx, o.Go, "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/prenv")
	cmd.Dir = o.Module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch, "GOFLAGS=-mod=readonly")
	if outb, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s/%s: %v\n%s", t.OS, t.Arch, err, outb)
	}
	return nil
}

type file struct {
	name string
	mode int64
	data []byte
}

// tarGz is a gzipped tar of files, every header the same from build to
// build: the commit's time, root's ids, no names of users, no gzip name or
// time.
func tarGz(at time.Time, files []file) ([]byte, error) {
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: at.UTC().Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, bytes.NewReader(f.data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
