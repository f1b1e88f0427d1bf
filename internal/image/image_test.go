package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/prenv/prenv/internal/release"
)

// The image as a cluster gets it: built for linux on amd64 and arm64,
// written as an OCI layout, pushed to a registry (an in-memory one here)
// and read back from it. Each platform's image runs prenv serve as the
// non-root user 65532 with the version's labels; the binary taken from its
// layer answers prenv version; and, as root, prenv serve runs from the
// image's filesystem mounted read-only, as that user, with only its home
// and /tmp writable (what the chart gives it).
func TestImage_PushedReadBackAndRunFromItsLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds prenv for two platforms")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	o := Options{Options: release.Options{Module: root, Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: date},
		Source: "https://github.com/prenv/prenv"}
	ctx := context.Background()
	idx, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "image")
	if err := WriteLayout(dir, idx); err != nil {
		t.Fatal(err)
	}
	fromLayout, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("the OCI layout does not read back: %v", err)
	}
	want, _ := idx.Digest()
	if got, _ := fromLayout.Digest(); got != want {
		t.Fatalf("the layout's index is %s, the built one %s", got, want)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref := strings.TrimPrefix(srv.URL, "http://") + "/acme/prenv:v1.2.3"
	if err := Push(ctx, ref, idx, true); err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pulled.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	slices.Sort(platforms)
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Fatalf("the pushed index has platforms %v", platforms)
	}
	var host v1.Image
	for _, d := range m.Manifests {
		img, err := pulled.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/usr/local/bin/prenv" || strings.Join(c.Cmd, " ") != "serve" ||
			cf.Architecture != d.Platform.Architecture || !cf.Created.Equal(date) {
			t.Errorf("%s: user %q entrypoint %v cmd %v arch %s created %v", d.Platform.Architecture, c.User, c.Entrypoint, c.Cmd, cf.Architecture, cf.Created)
		}
		if c.Labels["org.opencontainers.image.version"] != "v1.2.3" || c.Labels["org.opencontainers.image.revision"] != o.Commit ||
			c.Labels["org.opencontainers.image.source"] != o.Source {
			t.Errorf("%s: labels %v", d.Platform.Architecture, c.Labels)
		}
		files := contents(t, img)
		if !strings.Contains(string(files["etc/passwd"].data), "prenv:x:65532:65532:") || len(files["etc/ssl/certs/ca-certificates.crt"].data) == 0 {
			t.Errorf("%s: passwd %q, %d bytes of CA certificates", d.Platform.Architecture, files["etc/passwd"].data, len(files["etc/ssl/certs/ca-certificates.crt"].data))
		}
		bin := files["usr/local/bin/prenv"]
		if bin.mode != 0o755 || len(bin.data) > release.MaxBinary || len(bin.data) < 1e6 {
			t.Errorf("%s: the binary has mode %o and %d bytes", d.Platform.Architecture, bin.mode, len(bin.data))
		}
		if home := files["var/lib/prenv"]; home.uid != UID || home.mode != 0o700 {
			t.Errorf("%s: the home is owned by %d with mode %o", d.Platform.Architecture, home.uid, home.mode)
		}
		if d.Platform.Architecture != runtime.GOARCH {
			continue
		}
		host = img
		exe := filepath.Join(t.TempDir(), "prenv")
		if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(exe, "version", "-o", "json").Output()
		var v struct{ Version, Commit string }
		if err != nil || json.Unmarshal(out, &v) != nil || v.Version != "v1.2.3" || v.Commit != o.Commit {
			t.Fatalf("prenv version from the image's layer: %s %v", out, err)
		}
	}
	if host == nil {
		t.Fatalf("no image for this machine's platform (%s)", runtime.GOARCH)
	}
	if os.Geteuid() == 0 {
		serveReadOnly(t, host)
	} else {
		t.Log("not root: prenv serve is not run from the image's read-only filesystem")
	}
}

type entry struct {
	mode int64
	uid  int
	data []byte
}

// contents reads an image's filesystem, its layers flattened.
func contents(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]entry{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[strings.TrimSuffix(h.Name, "/")] = entry{mode: h.Mode & 0o7777, uid: h.Uid, data: data}
	}
}

// serveReadOnly runs prenv serve from img's filesystem, mounted read-only
// in a mount namespace of its own, as the image's user with the image's
// environment, its home and /tmp on tmpfs; it must answer.
func serveReadOnly(t *testing.T, img v1.Image) {
	for _, tool := range []string{"unshare", "chroot", "mount", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the image's filesystem (util-linux, coreutils): %v", tool, err)
		}
	}
	fs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	untar := exec.Command("tar", "-x", "--numeric-owner", "-p", "-C", fs)
	rc := mutate.Extract(img)
	defer rc.Close()
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("extract the image: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
image_path="$PATH"; PATH=/usr/sbin:/usr/bin:/sbin:/bin
r="$1"; shift
mount --bind "$r" "$r"
mount -o remount,bind,ro "$r"
mount -t tmpfs -o mode=0700,uid=65532,gid=65532 tmpfs "$r/var/lib/prenv"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
cd /
exec env PATH="$image_path" "$(command -v chroot)" --userspec=65532:65532 "$r" "$@"`
	args := append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", fs}, cf.Config.Entrypoint...)
	cmd := exec.Command("unshare", append(args, cf.Config.Cmd...)...)
	cmd.Env = append(slices.Clone(cf.Config.Env), "PRENV_LISTEN="+addr)
	var output strings.Builder
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("prenv serve from the read-only image exited: %v\n%s", err, output.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/api/v1/envs")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("prenv serve from the image answered %s without a login", resp.Status)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prenv serve from the read-only image did not answer at %s: %v\n%s", addr, err, output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
