package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the bootstrap role of every data directory prenv makes.
const Superuser = "postgres"

// Server is one postmaster: a data directory served on a port and a socket
// directory. Its settings live in the data directory, so it can be started
// again after a reboot with nothing but DataDir.
type Server struct {
	Bin       Binaries
	User      User
	DataDir   string
	SocketDir string
	Port      int
	LogFile   string
}

// ConnString is a connection string for the superuser over the socket.
func (s Server) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable connect_timeout=5", s.SocketDir, s.Port, Superuser, db)
}

// PID returns the postmaster's process id if it is running.
func (s Server) PID() (int, bool) {
	data, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, false
	}
	// After a reboot the file may name a pid that now belongs to another
	// program: it is ours only if it is the postmaster of this directory.
	if !servesDir(pid, s.DataDir) {
		return 0, false
	}
	return pid, true
}

// servesDir reports whether process pid is a postgres started on dataDir.
func servesDir(pid int, dataDir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		out, err := exec.Command("ps", "-o", "command=", "-p", strconv.Itoa(pid)).Output()
		if err != nil {
			return false
		}
		cmdline = out
	}
	args := strings.ReplaceAll(string(cmdline), "\x00", " ")
	abs, _ := filepath.Abs(dataDir)
	return strings.Contains(args, "postgres") && (strings.Contains(args, " "+dataDir+" ") || strings.Contains(args, " "+abs+" ") || strings.HasSuffix(strings.TrimSpace(args), dataDir))
}

// pidStatus returns the status line of postmaster.pid ("starting",
// "ready", "stopping"), or "" while there is none.
func (s Server) pidStatus() string {
	data, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 8 {
		return ""
	}
	return strings.TrimSpace(lines[7])
}

// Running reports whether the postmaster is alive.
func (s Server) Running() bool { _, ok := s.PID(); return ok }

// Start starts the postmaster in its own session (it outlives prenv) and
// returns once a SELECT 1 answers, or an error with the tail of its log.
// extra are -c settings for this start only.
func (s Server) Start(ctx context.Context, timeout time.Duration, extra map[string]string) error {
	if err := PrepareSocketDir(s.SocketDir, s.User); err != nil {
		return err
	}
	args := []string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port), "-k", s.SocketDir}
	for k, v := range extra {
		args = append(args, "-c", k+"="+v)
	}
	log, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	start, _ := log.Seek(0, 2)
	cmd := exec.Command(s.Bin.Path("postgres"), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = filepath.Dir(s.DataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	s.User.Prepare(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres on %s: %w", s.DataDir, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(timeout)
	for {
		// The postmaster writes "ready" into postmaster.pid once it accepts
		// connections: a cheap file read every millisecond, then a real
		// SELECT 1 to confirm.
		if s.pidStatus() == "ready" {
			if err := s.Ping(ctx); err == nil {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("postgres on %s exited (%v): %s", s.DataDir, err, tail(s.LogFile, start, 8))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGINT)
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGINT)
			return fmt.Errorf("postgres on %s did not answer SELECT 1 within %v: %s", s.DataDir, timeout, tail(s.LogFile, start, 8))
		}
	}
}

// Ping runs SELECT 1 over the socket.
func (s Server) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.ConnString("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// Exec runs statements as the superuser in db.
func (s Server) Exec(ctx context.Context, db string, sql ...string) error {
	conn, err := pgx.Connect(ctx, s.ConnString(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstWords(q), err)
		}
	}
	return nil
}

func firstWords(q string) string {
	f := strings.Fields(q)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

// Stop shuts the postmaster down with a fast shutdown (a clean checkpoint,
// so the next start needs no recovery) and waits up to timeout for it to
// exit. Stopping a server that is not running succeeds.
func (s Server) Stop(timeout time.Duration) error {
	pid, ok := s.PID()
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop postgres %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
			// The pid file goes last; a zombie child of ours may linger.
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	return fmt.Errorf("postgres %d on %s did not stop within %v; sent an immediate shutdown", pid, s.DataDir, timeout)
}

// StopUnder stops every postgres whose data directory is under dir.
func StopUnder(dir string, timeout time.Duration) {
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if _, err := os.Stat(filepath.Join(p, "postmaster.pid")); err == nil {
			_ = Server{DataDir: p}.Stop(timeout)
			return filepath.SkipDir
		}
		return nil
	})
}

// FreePort reports whether nothing listens on 127.0.0.1:port.
func FreePort(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func tail(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	_, _ = f.Seek(from, 0)
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(log " + path + " is empty)"
	}
	return strings.Join(lines, "\n")
}

// StartEmpty makes a new, empty cluster in dir (initdb: the superuser by
// peer from prenv's own user only) and starts it on port, its socket only,
// with extra settings; it returns the server and the superuser's URL over
// the socket. For a store or a queue in PostgreSQL in tests and benchmarks.
func StartEmpty(ctx context.Context, bin Binaries, u User, dir string, port int, extra map[string]string) (Server, string, error) {
	srv := Server{Bin: bin, User: u, DataDir: filepath.Join(dir, "data"),
		SocketDir: SocketDir(filepath.Join(dir, "run")), LogFile: filepath.Join(dir, "postgres.log"), Port: port}
	if err := os.MkdirAll(srv.DataDir, 0o700); err != nil {
		return srv, "", err
	}
	if err := u.Own(dir); err != nil {
		return srv, "", err
	}
	cmd := exec.CommandContext(ctx, bin.Path("initdb"), "-D", srv.DataDir, "-U", Superuser, "--auth-local=peer", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = dir
	u.Prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return srv, "", fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := WriteAuth(srv.DataDir, u, nil); err != nil {
		return srv, "", err
	}
	settings := map[string]string{"listen_addresses": ""}
	for k, v := range extra {
		settings[k] = v
	}
	if err := srv.Start(ctx, 30*time.Second, settings); err != nil {
		return srv, "", err
	}
	return srv, fmt.Sprintf("postgres:///postgres?host=%s&port=%d&user=%s&sslmode=disable&connect_timeout=5", srv.SocketDir, srv.Port, Superuser), nil
}
