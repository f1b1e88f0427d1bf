package local

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/runtime"
)

// ManifestName marks an environment directory as prenv's.
const ManifestName = "prenv-env.json"

// Manifest records one environment's home.
type Manifest struct {
	Owner     string            `json:"owner"`
	Key       string            `json:"env"`
	Name      string            `json:"name"`
	CreatedAt time.Time         `json:"created_at"`
	Labels    map[string]string `json:"labels"`
	// Identity is who the environment's commands run as.
	Identity Identity `json:"identity"`
}

// ReleaseSpec is what the supervisor runs for an environment. It is kept in
// release.json so that a restarted prenv serve can bring it back.
type ReleaseSpec struct {
	Name          string            `json:"name"`
	Key           string            `json:"key"`
	Commit        string            `json:"commit"`
	Dir           string            `json:"dir"`
	Command       string            `json:"command"`
	Env           map[string]string `json:"env"`
	Health        string            `json:"health"`
	HealthTimeout string            `json:"health_timeout"`
	Port          int               `json:"port,omitempty"`
	PID           int               `json:"pid,omitempty"`
	Ident         string            `json:"pid_ident,omitempty"` // tells PID apart from a later process with the same number
	URL           string            `json:"url,omitempty"`
	Identity      Identity          `json:"identity"`
}

// EnvsDir is where environment homes live.
func EnvsDir(home string) string { return filepath.Join(home, "envs") }

// LogPath is the environment's log file.
func LogPath(home, name string) string { return filepath.Join(EnvsDir(home), name, "app.log") }

// HomeDir is the environment's own home: HOME of its commands, where its
// build caches live from one commit to the next. No other environment
// shares it.
func HomeDir(home, name string) string { return filepath.Join(EnvsDir(home), name, "home") }

// openLog opens the environment's log for appending, readable by prenv's
// user only.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

func jsonIndent(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

func writeJSON(path string, v any, mode os.FileMode) error {
	data, _ := jsonIndent(v)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// readOwned returns the manifest of dir if it is ours; fs.ErrNotExist if dir
// is absent, runtime.ErrNotOurs otherwise.
func readOwned(dir, owner string) (Manifest, error) {
	var m Manifest
	if _, err := os.Lstat(dir); err != nil {
		return m, err
	}
	if err := readJSON(filepath.Join(dir, ManifestName), &m); err != nil {
		return m, fmt.Errorf("%s exists without a readable %s: %w; move it away if it is yours to lose", dir, ManifestName, runtime.ErrNotOurs)
	}
	if m.Owner != owner {
		return m, fmt.Errorf("%s belongs to owner %q, not %q: %w", dir, m.Owner, owner, runtime.ErrNotOurs)
	}
	return m, nil
}

// Token returns the secret that authorizes calls to serve's API, creating it
// (readable by its owner only) on first use.
func Token(home string) (string, error) {
	return secretFile(filepath.Join(home, "serve.token"), 24)
}

// Password returns the environments' basic-auth password: given, or the one
// stored under home, generated on first use.
func Password(home, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	return secretFile(filepath.Join(home, "password"), 9)
}

// secretFile returns the content of path, creating it with n random bytes
// (hex) when it does not exist. Concurrent callers agree on one value.
func secretFile(path string, n int) (string, error) {
	if data, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(data))) > 0 {
		return strings.TrimSpace(string(data)), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	secret := hex.EncodeToString(b)
	tmp := fmt.Sprintf("%s.%s.tmp", path, secret[:6])
	if err := os.WriteFile(tmp, []byte(secret), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	// Link fails if another process won the race; then theirs is the value.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	data, err := os.ReadFile(path)
	return strings.TrimSpace(string(data)), err
}
