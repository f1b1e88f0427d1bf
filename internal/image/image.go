// Package image builds prenv's container image without Docker and without
// pulling a base: every byte is made here. Each platform's image has two
// layers, a base (CA certificates, a passwd and group file with the
// non-root user prenv, an empty /tmp and prenv's home) and the static
// release binary, and a configuration that runs 'prenv serve' as that user.
// The same commit gives the same image: every file and the image carry the
// commit's time.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/prenv/prenv/internal/release"
)

// UID is the user (and group) prenv runs as in its image: not root, and
// not an id a distribution gives its own users.
const UID = 65532

// Paths inside the image.
const (
	Binary = "/usr/local/bin/prenv"
	Home   = "/var/lib/prenv" // PRENV_HOME: a volume in the chart (the root filesystem is read-only)
	CAFile = "/etc/ssl/certs/ca-certificates.crt"
	Port   = 8080
)

// Platforms are the image's platforms by default.
var Platforms = []release.Target{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}

// Options say what to build.
type Options struct {
	release.Options // Module, Version, Commit, Date, Go; Targets are ignored
	Platforms       []release.Target
	// CACerts is the CA bundle copied into the image (default: this
	// machine's, /etc/ssl/certs/ca-certificates.crt).
	CACerts string
	// Source is the repository's URL, for the image's labels.
	Source string
}

// Build builds the image of every platform and returns their index.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	if len(o.Platforms) == 0 {
		o.Platforms = Platforms
	}
	if o.CACerts == "" {
		o.CACerts = CAFile
	}
	certs, err := os.ReadFile(o.CACerts)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("the image's CA certificates: %v: install them (apt-get install ca-certificates) or give another bundle", err)
	}
	if o.Date.IsZero() || o.Version == "" || o.Commit == "" {
		return nil, fmt.Errorf("the version, commit and commit date are needed: they are stamped into the binary and the image")
	}
	base, err := layer(o.Date, baseFiles(certs))
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "prenv-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		if p.OS != "linux" {
			return nil, fmt.Errorf("platform %s/%s: the image is for linux only", p.OS, p.Arch)
		}
		bin := filepath.Join(tmp, p.Arch, "prenv")
		if err := release.Binary(ctx, o.Options, p, bin); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		app, err := layer(o.Date, []file{
			{name: "usr/", dir: true, mode: 0o755}, {name: "usr/local/", dir: true, mode: 0o755},
			{name: "usr/local/bin/", dir: true, mode: 0o755},
			{name: Binary[1:], mode: 0o755, data: data},
		})
		if err != nil {
			return nil, err
		}
		img, err := platformImage(o, p, base, app)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch}}})
	}
	return idx, nil
}

// Labels are the image's OCI annotations as labels.
func Labels(o Options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "prenv",
		"org.opencontainers.image.description": "Preview environments of pull requests: prenv serve (webhooks, reconciliation, sweeps, golden builds)",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Commit,
		"org.opencontainers.image.created":     o.Date.UTC().Format(time.RFC3339),
	}
	if o.Source != "" {
		l["org.opencontainers.image.source"] = o.Source
	}
	return l
}

func platformImage(o Options, p release.Target, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	at := v1.Time{Time: o.Date.UTC()}
	var adds []mutate.Addendum
	for i, l := range layers {
		what := []string{"prenv base: CA certificates, the user prenv, /tmp, " + Home, "prenv " + o.Version + " (" + o.Commit + ")"}[i]
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{Created: at, CreatedBy: what}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = p.OS, p.Arch, at
	uid := fmt.Sprint(UID)
	cf.Config = v1.Config{
		User:         uid + ":" + uid,
		Entrypoint:   []string{Binary},
		Cmd:          []string{"serve"},
		WorkingDir:   Home,
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CAFile, "PRENV_HOME=" + Home},
		ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}},
		Labels:       Labels(o),
	}
	return mutate.ConfigFile(img, cf)
}

type file struct {
	name string
	dir  bool
	mode int64
	uid  int
	data []byte
}

func baseFiles(certs []byte) []file {
	uid := UID
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nprenv:x:%d:%d:prenv:%s:/sbin/nologin\n", uid, uid, Home)
	group := fmt.Sprintf("root:x:0:\nprenv:x:%d:\n", uid)
	return []file{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: CAFile[1:], mode: 0o644, data: certs},
		{name: "tmp/", dir: true, mode: 0o1777},
		{name: "var/", dir: true, mode: 0o755},
		{name: "var/lib/", dir: true, mode: 0o755},
		{name: Home[1:] + "/", dir: true, mode: 0o700, uid: uid},
	}
}

// layer is a gzipped OCI layer of files, every header the same from build
// to build.
func layer(at time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: at.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// WriteLayout writes idx as an OCI image layout in dir (replacing one
// there).
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	_, err := layout.Write(dir, idx)
	return err
}

// Push pushes idx to ref (host/path:tag) with the credentials docker login
// or a credential helper keeps; insecure talks plain http (a test
// registry).
func Push(ctx context.Context, ref string, idx v1.ImageIndex, insecure bool) error {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	return remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}
