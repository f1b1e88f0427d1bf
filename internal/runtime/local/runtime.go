package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Builder = (*Runtime)(nil)
	_ runtime.Checker = (*Runtime)(nil)
)

// Runtime is the lifecycle's side of the local runtime.
type Runtime struct {
	Home  string
	Owner string
	App   config.App
	// Dir is the directory of prenv.yaml: the repository, and the base of
	// App.Dir.
	Dir string
	// Listen is the address of prenv serve.
	Listen string
	// StartServer starts prenv serve when none answers at Listen.
	StartServer func(ctx context.Context) error
	// StepTimeout bounds a build or a migration.
	StepTimeout time.Duration
	Client      *http.Client

	prefixOnce sync.Once
	prefix     string
}

func (r *Runtime) envDir(name string) string { return filepath.Join(EnvsDir(r.Home), name) }

func (r *Runtime) releaseDir(name, commit string) string {
	return filepath.Join(r.envDir(name), "releases", safe(commit))
}

func safe(commit string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			return c
		}
		return '_'
	}, commit)
}

// workDir is where the app's commands run for a commit: in a checkout, the
// same place relative to the repository's top level as in the working tree.
func (r *Runtime) workDir(name, commit string) string {
	if r.App.Checkout {
		return filepath.Join(r.releaseDir(name, commit), "src", r.subdir(), r.App.Dir)
	}
	return filepath.Join(r.Dir, r.App.Dir)
}

// subdir is the path of Dir below the repository's top level, asked of git
// once.
func (r *Runtime) subdir() string {
	r.prefixOnce.Do(func() {
		if out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "--show-prefix").Output(); err == nil {
			r.prefix = strings.TrimSpace(string(out))
		}
	})
	return r.prefix
}

// Check implements runtime.Checker.
func (r *Runtime) Check(ctx context.Context, k env.Key) error {
	m, err := readOwned(r.envDir(k.Name()), r.Owner)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("prepare %s: %w", k.Name(), err)
	case m.Key != k.String():
		return fmt.Errorf("prepare %s: it is the home of %s, not %s: %w", k.Name(), m.Key, k, runtime.ErrNotOurs)
	}
	return nil
}

// Prepare implements runtime.Runtime: the environment's directory with our
// manifest.
func (r *Runtime) Prepare(ctx context.Context, spec runtime.Spec) error {
	dir := r.envDir(spec.Name)
	_, err := readOwned(dir, r.Owner)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	// The directory appears with its manifest or not at all, so a crash
	// never leaves a directory we cannot claim.
	tmp := filepath.Join(EnvsDir(r.Home), "."+spec.Name+".new")
	os.RemoveAll(tmp) // ours, left by a crash; runs of one environment are serialized
	if err := os.MkdirAll(filepath.Join(tmp, "releases"), 0o755); err != nil {
		return err
	}
	m := Manifest{Owner: r.Owner, Key: spec.Key.String(), Name: spec.Name, CreatedAt: time.Now().UTC(), Labels: spec.Labels}
	if err := writeJSON(filepath.Join(tmp, ManifestName), m, 0o644); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, dir)
}

// commandEnv is the environment of every app command.
func (r *Runtime) commandEnv(spec runtime.Spec) map[string]string {
	m := map[string]string{}
	for k, v := range r.App.Env {
		m[k] = v
	}
	m["DATABASE_URL"] = spec.Database.URL
	m["PRENV_PR"] = strconv.Itoa(spec.Key.PR)
	m["PRENV_SHA"] = spec.Commit
	m["PRENV_ENV"] = spec.Name
	m["PRENV_REPOSITORY"] = spec.Key.Repo
	m["PRENV_RELEASE_DIR"] = r.releaseDir(spec.Name, spec.Commit)
	return m
}

// run runs a shell command of the app for spec, appending its output to the
// environment's log, and returns the output.
func (r *Runtime) run(ctx context.Context, step, command, dir string, spec runtime.Spec) error {
	timeout := r.StepTimeout
	if timeout <= 0 {
		timeout = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	logf, err := os.OpenFile(LogPath(r.Home, spec.Name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s [prenv] %s commit %s: %s\n", time.Now().UTC().Format(time.RFC3339), step, spec.Commit, command)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range r.commandEnv(spec) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = io.MultiWriter(&out, logf)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = procAttr()
	// The build or migration and its children: exec calls Cancel only while
	// the command has not been waited for.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			fmt.Fprintf(logf, "%s [prenv] %s interrupted\n", time.Now().UTC().Format(time.RFC3339), step)
			return fmt.Errorf("%s interrupted: %w", step, context.Canceled)
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("did not finish within %v", timeout)
		}
		fmt.Fprintf(logf, "%s [prenv] %s failed: %v\n", time.Now().UTC().Format(time.RFC3339), step, err)
		return &runtime.StepError{Step: step, Err: err, Output: lastLines(out.String(), 40)}
	}
	return nil
}

// Build implements runtime.Builder: check out the commit (when App.Checkout)
// and run App.Build once per commit.
func (r *Runtime) Build(ctx context.Context, spec runtime.Spec) error {
	rel := r.releaseDir(spec.Name, spec.Commit)
	if _, err := os.Stat(filepath.Join(rel, ".built")); err == nil {
		return nil
	}
	os.RemoveAll(rel) // a build interrupted earlier
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return err
	}
	if r.App.Checkout {
		if err := r.checkout(ctx, spec, filepath.Join(rel, "src")); err != nil {
			return err
		}
	}
	if r.App.Build != "" {
		if err := r.run(ctx, "build", r.App.Build, r.workDir(spec.Name, spec.Commit), spec); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(rel, ".built"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// checkout writes the tree of the commit into dst with git archive.
func (r *Runtime) checkout(ctx context.Context, spec runtime.Spec, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	verify := exec.CommandContext(ctx, "git", "-C", r.Dir, "rev-parse", "--verify", "--quiet", spec.Commit+"^{commit}")
	if err := verify.Run(); err != nil {
		return &runtime.StepError{Step: "build", Err: fmt.Errorf("commit %q is not in the repository at %s: fetch it (git fetch origin pull/%d/head) or give another --sha", spec.Commit, r.Dir, spec.Key.PR)}
	}
	top, err := exec.CommandContext(ctx, "git", "-C", r.Dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return &runtime.StepError{Step: "build", Err: fmt.Errorf("%s is not in a git repository, but app.checkout is on: turn it off or run prenv from the repository", r.Dir)}
	}
	archive := exec.CommandContext(ctx, "git", "-C", strings.TrimSpace(string(top)), "archive", "--format=tar", spec.Commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dst)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var stderr bytes.Buffer
	archive.Stderr, untar.Stderr = &stderr, &stderr
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return &runtime.StepError{Step: "build", Err: fmt.Errorf("git archive %s: %w", spec.Commit, err), Output: stderr.String()}
	}
	if err := untar.Wait(); err != nil {
		return &runtime.StepError{Step: "build", Err: fmt.Errorf("extract %s: %w", spec.Commit, err), Output: stderr.String()}
	}
	return nil
}

// Migrate implements runtime.Runtime.
func (r *Runtime) Migrate(ctx context.Context, spec runtime.Spec) error {
	if _, err := readOwned(r.envDir(spec.Name), r.Owner); err != nil {
		return fmt.Errorf("migrate %s: %w", spec.Name, err)
	}
	if r.App.Migrate == "" {
		return nil
	}
	return r.run(ctx, "migrate", r.App.Migrate, r.workDir(spec.Name, spec.Commit), spec)
}

// Deploy implements runtime.Runtime through prenv serve, started in the
// background if none answers.
func (r *Runtime) Deploy(ctx context.Context, spec runtime.Spec) (runtime.Release, error) {
	if err := r.ensureServer(ctx); err != nil {
		return runtime.Release{}, err
	}
	rs := ReleaseSpec{
		Name: spec.Name, Key: spec.Key.String(), Commit: spec.Commit,
		Dir: r.workDir(spec.Name, spec.Commit), Command: r.App.Start, Env: r.commandEnv(spec),
		Health: r.App.Health, HealthTimeout: r.App.HealthTimeout.String(),
	}
	var got ReleaseSpec
	if err := r.call(ctx, "/api/v1/local/deploy", rs, &got); err != nil {
		return runtime.Release{}, &runtime.StepError{Step: "deploy", Err: err}
	}
	return runtime.Release{Commit: got.Commit, URL: got.URL}, nil
}

// Current implements runtime.Runtime.
func (r *Runtime) Current(ctx context.Context, k env.Key) (runtime.Release, error) {
	var spec ReleaseSpec
	if err := readJSON(filepath.Join(r.envDir(k.Name()), "release.json"), &spec); err != nil {
		return runtime.Release{}, fmt.Errorf("%s: %w", k.Name(), runtime.ErrNotFound)
	}
	return runtime.Release{Commit: spec.Commit, URL: spec.URL}, nil
}

// Teardown implements runtime.Runtime: stop the app and remove the
// environment's directory.
func (r *Runtime) Teardown(ctx context.Context, k env.Key) error {
	dir := r.envDir(k.Name())
	m, err := readOwned(dir, r.Owner)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("teardown %s: %w", k.Name(), err)
	}
	if m.Key != k.String() {
		return fmt.Errorf("teardown %s: it is the home of %s, not %s: %w", k.Name(), m.Key, k, runtime.ErrNotOurs)
	}
	if r.answers(ctx) {
		if err := r.call(ctx, "/api/v1/local/stop/"+k.Name(), nil, nil); err != nil {
			return fmt.Errorf("teardown %s: %w", k.Name(), err)
		}
	} else {
		var spec ReleaseSpec
		if err := readJSON(filepath.Join(dir, "release.json"), &spec); err == nil {
			killRecorded(spec.PID, spec.Ident)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("teardown %s: %w", k.Name(), err)
	}
	return nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	entries, err := os.ReadDir(EnvsDir(r.Home))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []runtime.Instance
	for _, e := range entries {
		m, err := readOwned(filepath.Join(EnvsDir(r.Home), e.Name()), r.Owner)
		if err != nil {
			continue
		}
		k, err := env.ParseKey(m.Key)
		if err != nil {
			continue
		}
		out = append(out, runtime.Instance{Key: k, Name: m.Name, Labels: m.Labels})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (r *Runtime) client() *http.Client {
	if r.Client != nil {
		return r.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

// answers reports whether prenv serve answers at Listen.
func (r *Runtime) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Listen+"/api/v1/health", nil)
	resp, err := r.client().Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Prenv") != ""
}

func (r *Runtime) ensureServer(ctx context.Context) error {
	if r.answers(ctx) {
		return nil
	}
	if r.StartServer == nil {
		return fmt.Errorf("prenv serve does not answer at %s: start it with 'prenv serve'", r.Listen)
	}
	if l, err := net.Listen("tcp", r.Listen); err != nil {
		return fmt.Errorf("%s is taken by a program that is not prenv serve (%v): stop it or set PRENV_LISTEN to a free address", r.Listen, err)
	} else {
		l.Close()
	}
	if err := r.StartServer(ctx); err != nil {
		return fmt.Errorf("start prenv serve at %s: %w", r.Listen, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !r.answers(ctx) {
		if time.Now().After(deadline) {
			return fmt.Errorf("prenv serve was started but does not answer at %s after 15s: see %s", r.Listen, filepath.Join(r.Home, "serve.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (r *Runtime) call(ctx context.Context, path string, in, out any) error {
	tok, err := Token(r.Home)
	if err != nil {
		return err
	}
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.Listen+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client().Do(req)
	if err != nil {
		return fmt.Errorf("prenv serve at %s: %w", r.Listen, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		data, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return errors.New(e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
