package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The same commit gives the same bytes (issue 13): two builds of the
// archive for this machine's platform, in different places, are equal;
// the binary inside says its version, commit and date, and holds no build
// path.
func TestBuild_TheSameCommitGivesTheSameBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds prenv twice")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	o := Options{Module: root, Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: date,
		Targets: []Target{{runtime.GOOS, runtime.GOARCH}}}
	build := func() (sums, archive []byte) {
		o.Out = t.TempDir()
		paths, err := Build(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		sums, err = os.ReadFile(filepath.Join(o.Out, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		archive, err = os.ReadFile(paths[0])
		if err != nil {
			t.Fatal(err)
		}
		return sums, archive
	}
	sums1, archive := build()
	sums2, _ := build()
	if !bytes.Equal(sums1, sums2) {
		t.Fatalf("two builds of one commit differ:\n%s\n%s", sums1, sums2)
	}
	name := ArchiveName("v1.2.3", Target{runtime.GOOS, runtime.GOARCH})
	if !bytes.Contains(sums1, []byte("  "+name+"\n")) {
		t.Fatalf("SHA256SUMS does not list %s:\n%s", name, sums1)
	}
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var bin []byte
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(date) || h.Uid != 0 || h.Uname != "" {
			t.Errorf("%s: mtime %v uid %d uname %q; want the commit's time and root without a name", h.Name, h.ModTime, h.Uid, h.Uname)
		}
		if h.Name == "prenv" {
			if h.Mode != 0o755 {
				t.Errorf("prenv's mode %o", h.Mode)
			}
			bin, _ = io.ReadAll(tr)
		}
	}
	if len(names) != 2 || names[0] != "prenv" || names[1] != "README.md" {
		t.Fatalf("archive entries %v", names)
	}
	if bytes.Contains(bin, []byte(root)) {
		t.Fatalf("the binary holds the build path %s", root)
	}
	exe := filepath.Join(t.TempDir(), "prenv")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Commit, Date string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version != "v1.2.3" || v.Commit != o.Commit || v.Date != "2026-11-27T03:04:05Z" {
		t.Fatalf("prenv version -o json of the release binary: %s %v", out, err)
	}
	t.Logf("%s: %.1f MB archive, %.1f MB binary", name, float64(len(archive))/1e6, float64(len(bin))/1e6)
	// What a runner downloads on every cold start (issue 13 asks for under
	// 80 MB): make sizes says which module grew.
	if len(bin) >= MaxBinary {
		t.Errorf("the release binary is %.2f MB, over %.0f MB: run make sizes to see which module grew", float64(len(bin))/1e6, float64(MaxBinary)/1e6)
	}
}

func TestBuild_RefusesWhatIsNotARelease(t *testing.T) {
	if _, err := Build(context.Background(), Options{Version: "1.2", Commit: "x", Date: time.Now()}); err == nil {
		t.Fatal("a version that is not a tag was accepted")
	}
	if _, err := Build(context.Background(), Options{Version: "v1.2.3"}); err == nil {
		t.Fatal("a release without its commit was accepted")
	}
	if _, err := ParseTargets("linux"); err == nil {
		t.Fatal("a target without an arch was accepted")
	}
}
