package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
)

// Supervisor runs the environments' app processes for prenv serve.
type Supervisor struct {
	Home  string
	Owner string
	// URL returns the address of environment name behind the proxy.
	URL func(name string) string
	// EnsureDatabase is called for each environment brought back by
	// Restore, before its app starts; it returns the database URL.
	EnsureDatabase func(ctx context.Context, key string) (string, error)
	Log            *slog.Logger
	// Isolate refuses to start an app without a user of its own (prenv
	// serve as root): a release recorded before environments had users is
	// not run as root; 'prenv up' gives it one.
	Isolate bool

	mu   sync.Mutex
	apps map[string]*app
	ctx  context.Context
}

type app struct {
	deploy  sync.Mutex // serializes deploys and restarts of one environment
	mu      sync.Mutex // guards the fields below; never held while waiting
	spec    ReleaseSpec
	current *proc
	gone    bool
}

type proc struct {
	cmd      *exec.Cmd
	port     int
	done     chan struct{} // closed once the process is reaped
	err      error
	started  time.Time
	mu       sync.Mutex // guards stopping and reaped
	stopping bool
	reaped   bool
}

// track starts the goroutine that waits for p. On Linux the exited leader
// is cleared of its group's leftovers before it is reaped (see waitExited).
func (p *proc) track() {
	go func() {
		pid := p.cmd.Process.Pid
		if waitExited(pid) == nil {
			p.signal(syscall.SIGKILL) // children that outlived the shell
			p.mu.Lock()
			p.err, p.reaped = p.cmd.Wait(), true
			p.mu.Unlock()
		} else {
			err := p.cmd.Wait()
			p.mu.Lock()
			p.err, p.reaped = err, true
			p.mu.Unlock()
		}
		close(p.done)
	}()
}

// signal sends sig to p's process group, unless p has been reaped: then its
// pid may already belong to another process.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped && p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// NewSupervisor returns a supervisor whose processes live until ctx ends.
func NewSupervisor(ctx context.Context, home, owner string, log *slog.Logger) *Supervisor {
	return &Supervisor{Home: home, Owner: owner, Log: log, apps: map[string]*app{}, ctx: ctx,
		URL: func(name string) string { return "http://" + name + ".localhost" }}
}

// Route returns the port serving environment name.
func (s *Supervisor) Route(name string) (int, bool) {
	s.mu.Lock()
	a := s.apps[name]
	s.mu.Unlock()
	if a == nil {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.current == nil {
		return 0, false
	}
	return a.current.port, true
}

func (s *Supervisor) get(name string) *app {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[name]
	if a == nil {
		a = &app{}
		s.apps[name] = a
	}
	return a
}

// logf writes a line of prenv's own into the environment's log.
func (s *Supervisor) logf(name, format string, args ...any) {
	f, err := openLog(LogPath(s.Home, name))
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s [prenv] %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// Deploy starts spec's process, waits until its health check answers, then
// routes traffic to it and stops the previous one. On failure the previous
// process keeps serving and the error carries the new one's last log lines.
func (s *Supervisor) Deploy(ctx context.Context, spec ReleaseSpec) (ReleaseSpec, error) {
	dir := filepath.Join(EnvsDir(s.Home), spec.Name)
	if _, err := readOwned(dir, s.Owner); err != nil {
		return spec, err
	}
	a := s.get(spec.Name)
	a.deploy.Lock()
	defer a.deploy.Unlock()
	return s.deployLocked(ctx, dir, a, spec)
}

// deployLocked is Deploy with a.deploy held.
func (s *Supervisor) deployLocked(ctx context.Context, dir string, a *app, spec ReleaseSpec) (ReleaseSpec, error) {
	a.mu.Lock()
	same := a.current != nil && a.spec.Commit == spec.Commit && a.spec.Command == spec.Command && a.current.alive() && equalEnv(a.spec.Env, spec.Env)
	current := a.spec
	a.mu.Unlock()
	if same {
		return current, nil // already serving exactly this
	}
	if a.current == nil {
		// The first deploy of this supervisor: an app that a prenv serve
		// killed earlier left running (a start command that does not exec
		// leaves its child behind) is stopped before another starts.
		var prev ReleaseSpec
		if err := readJSON(filepath.Join(dir, "release.json"), &prev); err == nil {
			killRecorded(prev.PID, prev.Ident)
			waitGroupGone(prev.PID, prev.Ident, 5*time.Second)
		}
	}
	// The previous process keeps serving while the new one starts.
	p, err := s.start(ctx, spec)
	if err != nil {
		return spec, err
	}
	spec.Port, spec.PID, spec.URL = p.port, p.cmd.Process.Pid, s.URL(spec.Name)
	spec.Ident = identify(spec.PID)
	a.mu.Lock()
	old := a.current
	a.current, a.gone, a.spec = p, false, spec
	a.mu.Unlock()
	if err := writeJSON(filepath.Join(dir, "release.json"), spec, 0o600); err != nil {
		return spec, err
	}
	s.logf(spec.Name, "commit %s is live on port %d", spec.Commit, p.port)
	if old != nil {
		old.stop(5 * time.Second)
	}
	go s.watch(spec.Name, a, p)
	return spec, nil
}

func equalEnv(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if k != "PORT" && b[k] != v {
			return false
		}
	}
	return true
}

// start runs the command on a fresh port and waits for health.
func (s *Supervisor) start(ctx context.Context, spec ReleaseSpec) (*proc, error) {
	if s.Isolate && !spec.Identity.Isolated() {
		return nil, fmt.Errorf("refusing to run %s's app as prenv's own user: it has no user of its own (recorded by an older prenv): run 'prenv up' for it again", spec.Name)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := LogPath(s.Home, spec.Name)
	rotate(logPath, 10<<20)
	logf, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	offset, _ := logf.Seek(0, 2)
	s.logf(spec.Name, "starting commit %s on port %d: %s", spec.Commit, port, spec.Command)
	cmd := exec.Command("/bin/sh", "-c", spec.Command)
	cmd.Dir = spec.Dir
	// The environment is the release's alone: nothing of prenv serve's own
	// (its secrets) is inherited.
	cmd.Env = nil
	for k, v := range spec.Env {
		if k != "PORT" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	cmd.SysProcAttr.Credential = spec.Identity.credential()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q in %s: %w", spec.Command, spec.Dir, err)
	}
	p := &proc{cmd: cmd, port: port, done: make(chan struct{}), started: time.Now()}
	p.track()
	timeout, _ := time.ParseDuration(spec.HealthTimeout)
	if timeout <= 0 {
		timeout = time.Minute
	}
	if err := waitHealthy(ctx, p, spec.Health, timeout); err != nil {
		p.stop(2 * time.Second)
		s.logf(spec.Name, "commit %s did not become healthy: %v", spec.Commit, err)
		return nil, fmt.Errorf("%w\nlast lines of its output:\n%s", err, tailFrom(logPath, offset, 15))
	}
	return p, nil
}

func waitHealthy(ctx context.Context, p *proc, path string, timeout time.Duration) error {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = "it answered " + resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("the app exited before it was healthy (%v)", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s was not 2xx within %v: %s", path, timeout, last)
		}
	}
}

// watch restarts the process of name with backoff if it exits by itself.
func (s *Supervisor) watch(name string, a *app, p *proc) {
	backoff := 500 * time.Millisecond
	for {
		select {
		case <-p.done:
		case <-s.ctx.Done():
			p.stop(5 * time.Second)
			return
		}
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			return
		}
		if time.Since(p.started) > time.Minute {
			backoff = 500 * time.Millisecond
		}
		s.logf(name, "app exited (%v); restarting in %v", p.err, backoff)
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
		backoff = min(backoff*2, 30*time.Second)
		a.deploy.Lock()
		a.mu.Lock()
		stale := a.gone || a.current != p
		spec := a.spec
		a.mu.Unlock()
		if stale { // a deploy or a teardown took over
			a.deploy.Unlock()
			return
		}
		np, err := s.start(s.ctx, spec)
		if err != nil {
			s.logf(name, "restart failed: %v", err)
			// A dead stand-in: the next turn of the loop tries again.
			p = &proc{done: closedChan(), started: time.Now(), err: err}
			a.mu.Lock()
			a.current = p
			a.mu.Unlock()
			a.deploy.Unlock()
			continue
		}
		spec.Port, spec.PID = np.port, np.cmd.Process.Pid
		spec.Ident = identify(spec.PID)
		a.mu.Lock()
		a.current, a.spec = np, spec
		a.mu.Unlock()
		_ = writeJSON(filepath.Join(EnvsDir(s.Home), name, "release.json"), spec, 0o600)
		a.deploy.Unlock()
		p = np
	}
}

func closedChan() chan struct{} { c := make(chan struct{}); close(c); return c }

// Stop stops the app of name and forgets its route. Stopping what does not
// run succeeds.
func (s *Supervisor) Stop(name string) {
	s.mu.Lock()
	a := s.apps[name]
	delete(s.apps, name)
	s.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		a.gone = true
		cur := a.current
		a.mu.Unlock()
		if cur != nil {
			cur.stop(5 * time.Second)
		}
	}
	var spec ReleaseSpec
	if err := readJSON(filepath.Join(EnvsDir(s.Home), name, "release.json"), &spec); err == nil {
		killRecorded(spec.PID, spec.Ident)
	}
}

// Shutdown stops every app this supervisor runs and waits for them, so that
// stopping prenv serve never leaves previews running unsupervised. Their
// records stay: the next prenv serve brings them back.
func (s *Supervisor) Shutdown() {
	s.mu.Lock()
	var procs []*proc
	for _, a := range s.apps {
		a.mu.Lock()
		a.gone = true
		if a.current != nil {
			procs = append(procs, a.current)
		}
		a.mu.Unlock()
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(5 * time.Second) }()
	}
	wg.Wait()
}

// Restore brings back every environment recorded under Home, as after a
// restart of prenv serve or of the machine. Failures are logged per
// environment; the others still come back. An environment this supervisor
// already runs (a deploy that raced the restore) is left alone.
func (s *Supervisor) Restore(ctx context.Context) {
	entries, _ := os.ReadDir(EnvsDir(s.Home))
	var wg sync.WaitGroup
	for _, e := range entries {
		dir := filepath.Join(EnvsDir(s.Home), e.Name())
		if _, err := readOwned(dir, s.Owner); err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.restoreOne(ctx, e.Name(), dir); err != nil {
				s.logf(e.Name(), "restore: %v", err)
				if s.Log != nil {
					s.Log.Error("restore environment", "env", e.Name(), "err", err)
				}
			}
		}()
	}
	wg.Wait()
}

func (s *Supervisor) restoreOne(ctx context.Context, name, dir string) error {
	a := s.get(name)
	a.deploy.Lock()
	defer a.deploy.Unlock()
	a.mu.Lock()
	running := a.current != nil && a.current.alive()
	a.mu.Unlock()
	if running {
		return nil // deployed by this supervisor since it started
	}
	// Read under the lock: a deploy that finished meanwhile wrote it.
	var spec ReleaseSpec
	if err := readJSON(filepath.Join(dir, "release.json"), &spec); err != nil {
		return nil // prepared, never deployed
	}
	killRecorded(spec.PID, spec.Ident) // a process left by a serve that was killed
	if s.EnsureDatabase != nil {
		url, err := s.EnsureDatabase(ctx, spec.Key)
		if err != nil {
			return fmt.Errorf("database: %w", err)
		}
		spec.Env["DATABASE_URL"] = url
	}
	if _, err := s.deployLocked(ctx, dir, a, spec); err != nil {
		return err
	}
	if s.Log != nil {
		s.Log.Info("environment restored", "env", spec.Name, "commit", spec.Commit)
	}
	return nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// killRecorded kills the process group of a process recorded earlier (in
// release.json) only if it is provably that group: its leader is still that
// process, or (the leader gone, an orphaned app left) its members are of
// the same boot and started no earlier than the leader. After a reboot or a
// while the number may belong to someone else, and nothing that is not ours
// is ever killed.
func killRecorded(pid int, ident string) {
	if pid <= 0 || ident == "" {
		return
	}
	if identify(pid) == ident {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return
	}
	for _, member := range groupMembers(pid, ident) {
		_ = syscall.Kill(member, syscall.SIGKILL)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the app: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func rotate(path string, max int64) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > max {
		_ = os.Rename(path, path+".1")
	}
}

func tailFrom(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	_, _ = f.Seek(offset, 0)
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), " [prenv] ") {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "  (no output)"
	}
	return "  " + strings.Join(lines, "\n  ")
}

// Names returns the environments with a running app, sorted.
func (s *Supervisor) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, a := range s.apps {
		if a.current != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Handler serves the supervisor's API under /api/v1/local/, for Runtime.
func (s *Supervisor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/local/deploy", func(w http.ResponseWriter, r *http.Request) {
		var spec ReleaseSpec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil || spec.Name == "" || spec.Command == "" {
			writeError(w, http.StatusBadRequest, "want a JSON release with name and command")
			return
		}
		got, err := s.Deploy(r.Context(), spec)
		if err != nil {
			code := http.StatusUnprocessableEntity
			if errors.Is(err, fs.ErrNotExist) {
				code = http.StatusNotFound
			}
			writeError(w, code, err.Error())
			return
		}
		_ = json.NewEncoder(w).Encode(got)
	})
	mux.HandleFunc("POST /api/v1/local/stop/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.Stop(r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
