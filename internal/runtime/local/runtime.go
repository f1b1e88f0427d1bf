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
	"regexp"
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
	// Repository is prenv.yaml's repository (owner/name), whose
	// environments keep the short names pr-N: the app's PRENV_REPOSITORY
	// for them.
	Repository string
	// StartServer starts prenv serve when none answers at Listen.
	StartServer func(ctx context.Context) error
	// StepTimeout bounds a build or a migration.
	StepTimeout time.Duration
	Client      *http.Client
	// Users, when set (prenv runs as root), gives each environment a user
	// of its own. Without it the commands run as prenv's own user, and
	// environments are not isolated from each other.
	Users *Users
	// HomeSeed, if set, is a directory copied into each new environment's
	// home before its first build: a build cache the team trusts (made by a
	// build of the default branch, say), so that a new pull request's first
	// build is warm too. It is copied, never shared.
	HomeSeed string

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
// manifest, its own user (when prenv runs as root) and its home. It first
// stops whatever an interrupted run of the environment left running.
func (r *Runtime) Prepare(ctx context.Context, spec runtime.Spec) error {
	dir := r.envDir(spec.Name)
	os.RemoveAll(filepath.Join(EnvsDir(r.Home), ".trash")) // what a teardown killed midway left
	m, err := readOwned(dir, r.Owner)
	if err == nil {
		r.stopLeftovers(spec.Name, m.Identity)
		held := true
		if r.Users != nil && m.Identity.Isolated() {
			// After a reboot the machine-wide claims are gone: claimed again,
			// unless another environment took the id meanwhile.
			if held, err = r.Users.claim(ctx, m.Identity.UID, r.Home, m.Name); err != nil {
				return fmt.Errorf("prepare %s: %w", spec.Name, err)
			}
		}
		if r.Users != nil && (!m.Identity.Isolated() || !held) {
			// Made before environments had users of their own (or by prenv
			// not running as root), or its id is another's now: it gets one
			// now, and never runs as root.
			unlock, err := r.assign(ctx, &m)
			if err != nil {
				return fmt.Errorf("prepare %s: %w", spec.Name, err)
			}
			defer unlock()
			for _, sub := range []string{"home", "releases"} {
				if err := m.Identity.chownContents(filepath.Join(dir, sub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("prepare %s: %w", spec.Name, err)
				}
			}
			if err := writeJSON(filepath.Join(dir, ManifestName), m, 0o600); err != nil {
				return fmt.Errorf("prepare %s: %w", spec.Name, err)
			}
		}
		return r.layout(dir, m.Identity)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	if err := r.secureEnvs(); err != nil {
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	m = Manifest{Owner: r.Owner, Key: spec.Key.String(), Name: spec.Name, CreatedAt: time.Now().UTC(), Labels: spec.Labels}
	if r.Users != nil {
		unlock, err := r.assign(ctx, &m)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", spec.Name, err)
		}
		defer unlock() // held until the manifest that records the id is in place
	}
	// The directory appears with its manifest or not at all, so a crash
	// never leaves a directory we cannot claim. Until layout opens it to the
	// environment's user it is prenv's alone, so nothing can race the copy
	// and the chown of the seed below.
	tmp := filepath.Join(EnvsDir(r.Home), "."+spec.Name+".new")
	os.RemoveAll(tmp) // ours, left by a crash; runs of one environment are serialized
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(tmp, ManifestName), m, 0o600); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if r.HomeSeed != "" {
		if err := seedHome(ctx, r.HomeSeed, filepath.Join(tmp, "home"), m.Identity); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("prepare %s: copy runtime.local.home_seed: %w", spec.Name, err)
		}
	}
	if err := r.layout(tmp, m.Identity); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	return os.Rename(tmp, dir)
}

// assign gives m a user id of its own; the returned unlock is called once
// the manifest that records it is written.
func (r *Runtime) assign(ctx context.Context, m *Manifest) (func(), error) {
	taken := map[int]string{}
	for _, other := range r.manifests() {
		taken[other.Identity.UID] = other.Name
	}
	uid, unlock, err := r.Users.allocate(ctx, r.Home, m.Name, taken)
	if err != nil {
		return nil, err
	}
	m.Identity = Identity{UID: uid, GID: uid, Groups: []int{r.Users.AccessGroup()}}
	return unlock, nil
}

// secureEnvs makes the directory of the environments' homes: only prenv's
// user, and as root the environments (to reach their own), may enter it.
func (r *Runtime) secureEnvs() error {
	envs := EnvsDir(r.Home)
	if err := os.MkdirAll(envs, 0o700); err != nil {
		return err
	}
	if r.Users == nil {
		return os.Chmod(envs, 0o700)
	}
	if err := os.Chown(envs, os.Geteuid(), r.Users.AccessGroup()); err != nil {
		return err
	}
	return os.Chmod(envs, 0o710)
}

// layout gives an environment's directory its owners and modes: prenv's
// files (manifest, release, log, records of running steps) are prenv's
// alone; the environment's user may enter the directory and owns its home
// and its releases' contents, nothing else. Applied at every Prepare, so
// homes made by an older prenv are brought to it too.
func (r *Runtime) layout(dir string, id Identity) error {
	mode := os.FileMode(0o700)
	if id.Isolated() {
		mode = 0o710
		if err := os.Lchown(dir, os.Geteuid(), id.GID); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, mode); err != nil {
		return err
	}
	for _, f := range []string{ManifestName, "release.json", "app.log", "app.log.1", stepFile} {
		if err := os.Chmod(filepath.Join(dir, f), 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	releases := filepath.Join(dir, "releases")
	if err := os.MkdirAll(releases, 0o700); err != nil {
		return err
	}
	if id.Isolated() {
		if err := os.Lchown(releases, os.Geteuid(), id.GID); err != nil {
			return err
		}
	}
	if err := os.Chmod(releases, mode); err != nil {
		return err
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "tmp")} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		// The environment's user may have put anything there: only a real
		// directory is given to it again.
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory: remove it", d)
		}
		if err := id.chown(d); err != nil {
			return err
		}
	}
	return nil
}

// seedHome copies seed into home (reflinked where the filesystem can) and
// gives the copy to id. The caller's directory above home is prenv's alone
// while this runs.
func seedHome(ctx context.Context, seed, home string, id Identity) error {
	if fi, err := os.Stat(seed); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", seed)
	}
	if err := os.Mkdir(home, 0o700); err != nil {
		return err
	}
	cp := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", seed+"/.", home+"/")
	if out, err := cp.CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s: %v: %s", seed, err, strings.TrimSpace(string(out)))
	}
	return id.chownTree(home)
}

// manifests returns the manifests of every environment of ours under Home.
func (r *Runtime) manifests() []Manifest {
	entries, _ := os.ReadDir(EnvsDir(r.Home))
	var out []Manifest
	for _, e := range entries {
		if m, err := readOwned(filepath.Join(EnvsDir(r.Home), e.Name()), r.Owner); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// stepFile records the process group of the build or migration running for
// an environment, so that the next run stops it if its run was killed.
const stepFile = "step.json"

type stepRecord struct {
	Step  string `json:"step"`
	PID   int    `json:"pid"`
	Ident string `json:"pid_ident"`
}

// stopLeftovers stops what an interrupted run of the environment left
// running: the process group of its build or migration, and, when the
// environment has a user of its own, every process of that user except the
// app prenv serve runs (a command that left its process group). The caller
// holds the environment's lock.
func (r *Runtime) stopLeftovers(name string, id Identity) {
	dir := r.envDir(name)
	var rec stepRecord
	found := readJSON(filepath.Join(dir, stepFile), &rec) == nil
	strays := r.stopStep(name, rec, id)
	if found {
		r.logf(name, "stopped the %s left running by an interrupted run (process group %d)", rec.Step, rec.PID)
	}
	if strays > 0 {
		r.logf(name, "stopped %d processes of the environment's user left outside its app", strays)
	}
	os.Remove(filepath.Join(dir, stepFile))
}

// stopStep stops the process group of a build or migration (none for a
// zero rec) and, when the environment has a user of its own, every other
// process of that user but the serving app (a daemon that left the group).
// It returns how many of the latter it killed.
func (r *Runtime) stopStep(name string, rec stepRecord, id Identity) int {
	killRecorded(rec.PID, rec.Ident)
	waitGroupGone(rec.PID, rec.Ident, 10*time.Second)
	if !id.Isolated() {
		return 0
	}
	return killUser(id.UID, r.appGroup(name), 10*time.Second)
}

// appGroup returns the process group of the app prenv serve runs for
// environment name, if it is provably that app's; 0 otherwise.
func (r *Runtime) appGroup(name string) int {
	var rel ReleaseSpec
	if err := readJSON(filepath.Join(r.envDir(name), "release.json"), &rel); err == nil && rel.PID > 0 && identify(rel.PID) == rel.Ident {
		return rel.PID
	}
	return 0
}

// logf writes a line of prenv's own into the environment's log.
func (r *Runtime) logf(name, format string, args ...any) {
	f, err := openLog(LogPath(r.Home, name))
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s [prenv] %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// commandEnv is the environment of every app command: built, never
// inherited, so nothing of prenv's own (its configuration, its secrets)
// reaches a pull request's code.
func (r *Runtime) commandEnv(spec runtime.Spec) map[string]string {
	home := HomeDir(r.Home, spec.Name)
	m := map[string]string{
		"PATH":   commandPath(r.Home),
		"HOME":   home,
		"TMPDIR": filepath.Join(home, "tmp"),
		"LANG":   "C.UTF-8",
	}
	if lang := os.Getenv("LANG"); lang != "" {
		m["LANG"] = lang
	}
	for k, v := range r.App.Env {
		m[k] = v
	}
	m["DATABASE_URL"] = spec.Database.URL
	m["PRENV_PR"] = strconv.Itoa(spec.Key.PR)
	m["PRENV_SHA"] = spec.Commit
	m["PRENV_ENV"] = spec.Name
	m["PRENV_REPOSITORY"] = spec.Key.Repo
	if spec.Key.Repo == "" {
		m["PRENV_REPOSITORY"] = r.Repository
	}
	m["PRENV_RELEASE_DIR"] = r.releaseDir(spec.Name, spec.Commit)
	return m
}

// commandPath is prenv's PATH without what a command should not run from:
// relative entries and anything under PRENV_HOME.
func commandPath(home string) string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if filepath.IsAbs(d) && !strings.HasPrefix(filepath.Clean(d)+"/", filepath.Clean(home)+"/") {
			keep = append(keep, d)
		}
	}
	if len(keep) == 0 {
		return "/usr/local/bin:/usr/bin:/bin"
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// identity returns who the commands of environment name run as.
func (r *Runtime) identity(name string) (Identity, error) {
	m, err := readOwned(r.envDir(name), r.Owner)
	if err != nil {
		return Identity{}, err
	}
	return m.Identity, nil
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
	id, err := r.identity(spec.Name)
	if err != nil {
		return fmt.Errorf("%s %s: %w", step, spec.Name, err)
	}
	if r.Users != nil && !id.Isolated() {
		return fmt.Errorf("%s %s: refusing to run pull-request code as prenv's own user: the environment has no user of its own (run prepare again)", step, spec.Name)
	}
	var out bytes.Buffer
	logf, err := openLog(LogPath(r.Home, spec.Name))
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s [prenv] %s commit %s: %s\n", time.Now().UTC().Format(time.RFC3339), step, spec.Commit, command)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	env := r.commandEnv(spec)
	if _, set := env["PGAPPNAME"]; !set && step == "migrate" {
		env["PGAPPNAME"] = runtime.MigrationApplicationName
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = io.MultiWriter(&out, logf)
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = procAttr()
	cmd.SysProcAttr.Credential = id.credential()
	// The build or migration and its children: exec calls Cancel only while
	// the command has not been waited for.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return &runtime.StepError{Step: step, Err: fmt.Errorf("start %q in %s: %w", command, dir, err)}
	}
	// Recorded before anything else happens, so that if prenv is killed
	// now the next run stops this group before it does anything.
	recPath := filepath.Join(r.envDir(spec.Name), stepFile)
	rec := stepRecord{Step: step, PID: cmd.Process.Pid, Ident: identify(cmd.Process.Pid)}
	if err := writeJSON(recPath, rec, 0o600); err != nil {
		_ = cmd.Cancel()
		_ = cmd.Wait()
		return fmt.Errorf("%s %s: record its process: %w", step, spec.Name, err)
	}
	err = cmd.Wait()
	r.stopStep(spec.Name, rec, id) // what the command left in the background dies with it
	os.Remove(recPath)
	if err != nil {
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
	id, err := r.identity(spec.Name)
	if err != nil {
		return fmt.Errorf("build %s: %w", spec.Name, err)
	}
	rel := r.releaseDir(spec.Name, spec.Commit)
	// The mark is prenv's, beside the release (whose contents belong to
	// the environment's user), so the app cannot mark a build done.
	built := rel + ".built"
	if _, err := os.Stat(built); err == nil {
		return nil
	}
	os.RemoveAll(rel) // a build interrupted earlier
	if err := os.Mkdir(rel, 0o700); err != nil {
		return err
	}
	if r.App.Checkout {
		if err := r.checkout(ctx, spec, filepath.Join(rel, "src")); err != nil {
			return err
		}
	}
	// Written by prenv into a directory only prenv could write until now;
	// from here on the environment's user owns it.
	if err := id.chownTree(rel); err != nil {
		return fmt.Errorf("build %s: %w", spec.Name, err)
	}
	if r.App.Build != "" {
		if err := r.run(ctx, "build", r.App.Build, r.workDir(spec.Name, spec.Commit), spec); err != nil {
			return err
		}
	}
	return os.WriteFile(built, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// checkout writes the tree of the commit into dst with git archive.
func (r *Runtime) checkout(ctx context.Context, spec runtime.Spec, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	if !r.hasCommit(ctx, spec.Commit) {
		// prenv serve hears of a pull request's commit before the
		// repository it builds from has it: fetch it from origin, as
		// the pull request's head or by its hash (an older push).
		out, err := r.fetch(ctx, spec)
		if err != nil || !r.hasCommit(ctx, spec.Commit) {
			return &runtime.StepError{Step: "build", Err: fmt.Errorf("commit %q is not in the repository at %s, and fetching it from origin did not bring it (%v): fetch it (git fetch origin pull/%d/head) or give another --sha", spec.Commit, r.Dir, err, spec.Key.PR), Output: out}
		}
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

// hasCommit says whether the repository at r.Dir has commit.
func (r *Runtime) hasCommit(ctx context.Context, commit string) bool {
	return exec.CommandContext(ctx, "git", "-C", r.Dir, "rev-parse", "--verify", "--quiet", "--end-of-options", commit+"^{commit}").Run() == nil
}

var fullHash = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// fetch brings spec's commit from the remote origin: the pull request's
// head ref, and failing that the commit by its hash (which GitHub serves
// for any commit it has). Only a full hash is fetched, so nothing in it is
// read by git as an option; git asks no one for credentials, and a fetch
// takes at most two minutes.
func (r *Runtime) fetch(ctx context.Context, spec runtime.Spec) (string, error) {
	if !fullHash.MatchString(spec.Commit) {
		return "", fmt.Errorf("%q is not a full commit hash", spec.Commit)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	var err error
	for _, ref := range []string{fmt.Sprintf("refs/pull/%d/head", spec.Key.PR), spec.Commit} {
		if spec.Key.PR <= 0 && ref != spec.Commit {
			continue
		}
		cmd := exec.CommandContext(ctx, "git", "-C", r.Dir, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "origin", ref)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "GCM_INTERACTIVE=never")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err = cmd.Run(); err == nil && r.hasCommit(ctx, spec.Commit) {
			return out.String(), nil
		}
	}
	if err == nil {
		err = errors.New("origin does not have it")
	}
	return out.String(), err
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
	id, err := r.identity(spec.Name)
	if err != nil {
		return runtime.Release{}, fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	rs := ReleaseSpec{
		Name: spec.Name, Key: spec.Key.String(), Commit: spec.Commit,
		Dir: r.workDir(spec.Name, spec.Commit), Command: r.App.Start, Env: r.commandEnv(spec),
		Health: r.App.Health, HealthTimeout: r.App.HealthTimeout.String(), Identity: id,
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
	return r.teardown(ctx, k.Name(), m)
}

// teardown stops the app of the environment directory name through prenv
// serve (or by its record when serve does not answer), kills what its
// steps left and every process of its user, and removes the directory. m
// is its manifest, read and checked by the caller (zero for a directory
// without one: it has no user of its own to kill or release).
func (r *Runtime) teardown(ctx context.Context, name string, m Manifest) error {
	dir := r.envDir(name)
	if r.answers(ctx) {
		if err := r.call(ctx, "/api/v1/local/stop/"+name, nil, nil); err != nil {
			return fmt.Errorf("teardown %s: %w", name, err)
		}
	} else {
		var spec ReleaseSpec
		if err := readJSON(filepath.Join(dir, "release.json"), &spec); err == nil {
			killRecorded(spec.PID, spec.Ident)
		}
	}
	// Whatever an interrupted build or migration left, and, with a user of
	// its own, every process of that user: nothing of the environment
	// outlives it, and its user id can be given to another.
	var rec stepRecord
	if err := readJSON(filepath.Join(dir, stepFile), &rec); err == nil {
		killRecorded(rec.PID, rec.Ident)
	}
	if m.Identity.Isolated() {
		if err := killAllOf(m.Identity, 15*time.Second); err != nil {
			// Its id stays held (the manifest stays) until they are gone.
			return fmt.Errorf("teardown %s: %w: run 'prenv down' again", name, err)
		}
	}
	// Out of the way first, whole: a removal killed midway never leaves a
	// directory without its manifest under envs, and what is left in the
	// trash is prenv's alone.
	trash := filepath.Join(EnvsDir(r.Home), ".trash")
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return fmt.Errorf("teardown %s: %w", name, err)
	}
	gone := filepath.Join(trash, name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("teardown %s: %w", name, err)
	}
	if r.Users != nil {
		r.Users.release(m.Identity.UID, r.Home, name)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("teardown %s: remove %s: %w; it is listed by 'prenv sweep' and removed by 'prenv sweep --apply', or remove it by hand", name, gone, err)
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
