package golden

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/pgserver"
)

// ErrNone is returned when no golden generation has been built yet.
var ErrNone = errors.New("golden source not built: run 'prenv golden build --from-sql FILE' (or --from-dump, --from-url) first")

// ErrSource is wrapped when the source to build from is unusable.
var ErrSource = errors.New("golden source")

// Generation is one built golden data directory.
type Generation struct {
	Number    int       `json:"generation"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`
	SizeBytes int64     `json:"size_bytes"`
	PGMajor   int       `json:"pg_major"`
	Database  string    `json:"database"`
	User      string    `json:"user"`
	// Masking says what was masked and what the scan for personal data
	// found (absent on generations built before prenv masked).
	Masking *Masking `json:"masking,omitempty"`
	// Rows is the rows of the application's database (its statistics after
	// the build's ANALYZE); Steps each step of the build with its time.
	Rows  int64  `json:"rows,omitempty"`
	Steps []Step `json:"steps,omitempty"`
	Dir   string `json:"-"`
}

// Step is one timed step of a build.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// DataDir is the stopped PostgreSQL data directory of the generation.
func (g Generation) DataDir() string { return filepath.Join(g.Dir, "data") }

// Root is where generations live under PRENV_HOME.
func Root(home string) string { return filepath.Join(home, "golden") }

// List returns the complete generations, oldest first. Half-built ones
// (a crash during a build) are not listed.
func List(home string) ([]Generation, error) {
	entries, err := os.ReadDir(Root(home))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Generation
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || !e.IsDir() {
			continue
		}
		g, err := read(filepath.Join(Root(home), e.Name()))
		if err != nil || g.Number != n {
			continue
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Current returns the newest generation, or ErrNone.
func Current(home string) (Generation, error) {
	gens, err := List(home)
	if err != nil {
		return Generation{}, err
	}
	if len(gens) == 0 {
		return Generation{}, ErrNone
	}
	return gens[len(gens)-1], nil
}

func read(dir string) (Generation, error) {
	var g Generation
	data, err := os.ReadFile(filepath.Join(dir, "generation.json"))
	if err != nil {
		return g, err
	}
	if err := json.Unmarshal(data, &g); err != nil {
		return g, err
	}
	g.Dir = dir
	return g, nil
}

var passwordParam = regexp.MustCompile(`([?&])password=[^&]*`)

// Source says where a build restores from; exactly one field is set.
type Source struct {
	SQLFile  string // plain SQL, run with psql
	DumpFile string // pg_dump archive (custom, directory or tar format)
	URL      string // live database, dumped with pg_dump
}

func (s Source) String() string {
	switch {
	case s.SQLFile != "":
		return "sql:" + s.SQLFile
	case s.DumpFile != "":
		return "dump:" + s.DumpFile
	default:
		return "url:" + redact(s.URL)
	}
}

func redact(u string) string {
	// A password may also come as a parameter: ?password=... or &password=...
	u = passwordParam.ReplaceAllString(u, "${1}password=***")
	if at := strings.LastIndex(u, "@"); at > 0 {
		if scheme := strings.Index(u, "://"); scheme > 0 && scheme < at {
			userinfo := u[scheme+3 : at]
			if name, _, ok := strings.Cut(userinfo, ":"); ok {
				return u[:scheme+3] + name + ":***" + u[at:]
			}
		}
	}
	return u
}

// Check returns an error wrapping ErrSource if s is not usable, before
// anything is created.
func (s Source) Check() error {
	n := 0
	for _, v := range []string{s.SQLFile, s.DumpFile, s.URL} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: give exactly one of --from-sql FILE, --from-dump FILE, --from-url URL", ErrSource)
	}
	for _, f := range []string{s.SQLFile, s.DumpFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSource, err)
		}
		if s.SQLFile != "" && fi.IsDir() {
			return fmt.Errorf("%w: %s is a directory, want a SQL file", ErrSource, f)
		}
	}
	if s.URL != "" && !strings.HasPrefix(s.URL, "postgres://") && !strings.HasPrefix(s.URL, "postgresql://") {
		return fmt.Errorf("%w: %q is not a postgres:// URL", ErrSource, redact(s.URL))
	}
	return nil
}

// Builder builds golden generations under Home.
type Builder struct {
	Home     string
	Bin      pgserver.Binaries
	User     pgserver.User
	Database string // the application's database
	AppUser  string // the application's role
	// AllowEmpty promotes a generation with no tables; without it such a
	// build is refused (a dump of the wrong database, a source user
	// without access to the tables).
	AllowEmpty bool
	// Masking are the rules applied before promotion; the scan then
	// refuses a column that looks personal and no rule covers, unless
	// AllowPII (which the generation records).
	Masking  mask.Rules
	AllowPII bool
	// DryRun restores, masks and scans, then throws the build away:
	// nothing is promoted ('prenv golden check').
	DryRun bool
	// Keep is how many generations stay after a promotion (the newest);
	// older ones are deleted. Zero keeps them all.
	Keep int
	Log  *slog.Logger
	// OnStep is told each finished step and its duration.
	OnStep func(step string, took time.Duration)
}

// Build restores src into a new generation and promotes it. On failure,
// or when ctx is done (the error then wraps ctx's), nothing is promoted,
// the build's postgres is stopped and its directory removed. It first stops
// and removes what builders that died (kill -9) left behind. A source that
// restores to no tables (unless AllowEmpty) or without a usable application
// role is refused with an error wrapping ErrSource.
func (b *Builder) Build(ctx context.Context, src Source) (Generation, error) {
	if err := src.Check(); err != nil {
		return Generation{}, err
	}
	root := Root(b.Home)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Generation{}, err
	}
	if err := b.User.CheckReach(root); err != nil {
		return Generation{}, err
	}
	unlock, err := lock.File(ctx, filepath.Join(root, ".lock"))
	if err != nil {
		return Generation{}, err
	}
	defer unlock()
	b.discardInterrupted(root)
	gens, err := List(b.Home)
	if err != nil {
		return Generation{}, err
	}
	next := 1
	if len(gens) > 0 {
		next = gens[len(gens)-1].Number + 1
	}
	tmp := filepath.Join(root, fmt.Sprintf(".build-%d-%s", next, randHex(4)))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Generation{}, err
	}
	ok := false
	defer func() {
		if !ok {
			if err := discard(tmp); err != nil {
				b.warn("the failed build was not cleaned up: "+err.Error(), "dir", tmp)
			}
		}
	}()
	// The build's own lock says it is alive to a later build that finds
	// this directory; the kernel drops it when this process dies.
	unlockBuild, err := lock.File(ctx, filepath.Join(tmp, buildLock))
	if err != nil {
		return Generation{}, err
	}
	defer unlockBuild()
	srv := pgserver.Server{
		Bin: b.Bin, User: b.User,
		DataDir:   filepath.Join(tmp, "data"),
		SocketDir: pgserver.SocketDir(filepath.Join(tmp, "run")),
		LogFile:   filepath.Join(tmp, "build.log"),
	}
	if err := os.MkdirAll(srv.DataDir, 0o700); err != nil {
		return Generation{}, err
	}
	if err := b.User.Own(tmp); err != nil {
		return Generation{}, err
	}
	var steps []Step
	step := func(name string, fn func() error) error {
		t0 := time.Now()
		defer func() {
			steps = append(steps, Step{Name: name, Seconds: float64(time.Since(t0).Milliseconds()) / 1000})
		}()
		if err := fn(); err != nil {
			if ctx.Err() != nil {
				// A killed psql says "signal: killed"; the reason is the
				// interrupt, and the exit code follows it.
				return fmt.Errorf("golden build interrupted during %s: %w; nothing was promoted", name, ctx.Err())
			}
			return fmt.Errorf("golden build %s: %w", name, err)
		}
		if b.OnStep != nil {
			b.OnStep(name, time.Since(t0))
		}
		return nil
	}
	if err := step("initdb", func() error { return b.initdb(ctx, srv) }); err != nil {
		return Generation{}, err
	}
	srv.Port, err = freeEphemeralPort()
	if err != nil {
		return Generation{}, err
	}
	// Only the socket is used during a build; fsync is off because a build
	// that crashes is thrown away whole, and the result is synced at the end.
	// wal_level=minimal skips WAL for tables loaded in the transaction that
	// created them, and a small min_wal_size lets the final checkpoints drop
	// the build's WAL: the golden source then holds the data and little else.
	buildSettings := map[string]string{"listen_addresses": "", "fsync": "off", "full_page_writes": "off", "synchronous_commit": "off",
		"maintenance_work_mem": "256MB", "wal_level": "minimal", "max_wal_senders": "0", "min_wal_size": "32MB", "max_wal_size": "4GB"}
	if err := step("start", func() error { return srv.Start(ctx, time.Minute, buildSettings) }); err != nil {
		return Generation{}, err
	}
	defer srv.Stop(time.Minute)
	appPassword := randHex(16)
	if err := step("roles", func() error {
		return srv.Exec(ctx, "postgres",
			fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, quoteIdent(b.AppUser), appPassword),
			fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, quoteIdent(b.Database), quoteIdent(b.AppUser)))
	}); err != nil {
		return Generation{}, err
	}
	if err := step("restore", func() error { return b.restore(ctx, srv, src, tmp) }); err != nil {
		return Generation{}, err
	}
	var masking Masking
	if err := step("mask", func() error {
		var err error
		masking, err = b.mask(ctx, srv)
		return err
	}); err != nil {
		return Generation{}, err
	}
	if b.DryRun {
		return Generation{Source: src.String(), PGMajor: b.Bin.Major, Database: b.Database, User: b.AppUser, Masking: &masking}, nil
	}
	if err := step("check", func() error { return b.check(ctx, srv, src, gens) }); err != nil {
		return Generation{}, err
	}
	// Freezing and analyzing once here sets hint bits and statistics in the
	// golden copy, so clones do not rewrite every page on first read.
	if err := step("analyze", func() error {
		return srv.Exec(ctx, b.Database, "VACUUM (FREEZE, ANALYZE)", "CHECKPOINT", "SELECT pg_switch_wal()", "CHECKPOINT")
	}); err != nil {
		return Generation{}, err
	}
	rows, err := countRows(ctx, srv, b.Database)
	if err != nil {
		return Generation{}, fmt.Errorf("golden build: count the rows: %w", err)
	}
	// PostgreSQL keeps recycled WAL segments in proportion to its estimate
	// of recent checkpoint distance, which a bulk restore makes large. A
	// restart resets the estimate, so the checkpoints below drop them and the
	// golden source holds the data and little else.
	if err := step("compact", func() error {
		if err := srv.Stop(2 * time.Minute); err != nil {
			return err
		}
		small := map[string]string{"listen_addresses": "", "wal_level": "minimal", "max_wal_senders": "0", "min_wal_size": "32MB", "max_wal_size": "64MB"}
		if err := srv.Start(ctx, time.Minute, small); err != nil {
			return err
		}
		return srv.Exec(ctx, "postgres", "CHECKPOINT", "SELECT pg_switch_wal()", "CHECKPOINT", "SELECT pg_switch_wal()", "CHECKPOINT")
	}); err != nil {
		return Generation{}, err
	}
	if err := step("stop", func() error {
		if err := srv.Stop(2 * time.Minute); err != nil {
			return err
		}
		os.RemoveAll(srv.SocketDir)
		return syncDir(tmp)
	}); err != nil {
		return Generation{}, err
	}
	g := Generation{Number: next, Source: src.String(), CreatedAt: time.Now().UTC(), PGMajor: b.Bin.Major, Database: b.Database, User: b.AppUser, Masking: &masking, Rows: rows}
	g.Steps = steps // promote is the rename that follows
	g.SizeBytes, _ = DiskUsage(srv.DataDir)
	data, _ := json.MarshalIndent(g, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "generation.json"), data, 0o644); err != nil {
		return Generation{}, err
	}
	final := filepath.Join(root, strconv.Itoa(next))
	if err := step("promote", func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(tmp, buildLock)); err != nil {
			return err
		}
		return os.Rename(tmp, final)
	}); err != nil {
		return Generation{}, err
	}
	ok = true
	g.Dir = final
	b.retire(root, next)
	return g, nil
}

// retire deletes the generations older than the newest Keep. Each clone
// is a copy of its generation (a reflink or a full copy), so environments
// made from a retired one keep working. A generation is first renamed out
// of the list as a build directory, so that one whose removal is
// interrupted is what an interrupted build leaves, and is cleaned up the
// same way (by the next build, or the sweeper).
func (b *Builder) retire(root string, current int) {
	if b.Keep < 1 {
		return
	}
	gens, err := List(b.Home)
	if err != nil {
		b.warn("old golden generations were not retired: " + err.Error())
		return
	}
	for len(gens) > b.Keep && gens[0].Number < current {
		g := gens[0]
		gens = gens[1:]
		dead := filepath.Join(root, fmt.Sprintf(".build-%d-%s", g.Number, randHex(4)))
		if err := os.Rename(g.Dir, dead); err != nil {
			b.warn("an old golden generation was not retired: "+err.Error(), "generation", g.Number)
			continue
		}
		if err := discard(dead); err != nil {
			b.warn("an old golden generation was not removed: "+err.Error(), "dir", dead)
			continue
		}
		if b.Log != nil {
			b.Log.Info("retired an old golden generation (golden.keep)", "generation", g.Number)
		}
	}
}

func (b *Builder) initdb(ctx context.Context, srv pgserver.Server) error {
	cmd := exec.CommandContext(ctx, b.Bin.Path("initdb"), "-D", srv.DataDir, "-U", pgserver.Superuser,
		"--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = filepath.Dir(srv.DataDir)
	b.User.Prepare(cmd)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, lastLines(string(out), 10))
	}
	// No trust anywhere: the superuser by peer from prenv's own user only.
	return pgserver.WriteAuth(srv.DataDir, b.User, nil)
}

// restore loads the source as the application's role, so that what it
// creates belongs to that role in every clone.
func (b *Builder) restore(ctx context.Context, srv pgserver.Server, src Source, tmp string) error {
	conn := []string{"-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", pgserver.Superuser, "-d", b.Database}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, b.Bin.Path(name), args...)
		cmd.Env = append(os.Environ(), "PGOPTIONS=-c role="+b.AppUser)
		ownGroup(cmd)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, lastLines(string(out), 12))
		}
		return nil
	}
	dump := src.DumpFile
	if src.URL != "" {
		dump = filepath.Join(tmp, "source.dump")
		cmd := exec.CommandContext(ctx, b.Bin.Path("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "--file", dump, "--dbname", src.URL)
		ownGroup(cmd)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pg_dump %s: %w: %s", redact(src.URL), err, lastLines(string(out), 8))
		}
		defer os.Remove(dump)
	}
	if src.SQLFile != "" {
		return run("psql", append(conn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", src.SQLFile)...)
	}
	return run("pg_restore", append(conn, "--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2", dump)...)
}

// check refuses to promote what would give every environment nothing to
// work with: a database without tables (unless AllowEmpty), or an
// application role the source dropped, renamed, made unable to log in or
// made a superuser (the pull requests' migrations run as that role).
func (b *Builder) check(ctx context.Context, srv pgserver.Server, src Source, gens []Generation) error {
	conn, err := pgx.Connect(ctx, srv.ConnString(b.Database))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	kept := "nothing was promoted (there is no golden generation yet)"
	if len(gens) > 0 {
		kept = fmt.Sprintf("nothing was promoted: generation %d is still current", gens[len(gens)-1].Number)
	}
	var login, super bool
	err = conn.QueryRow(ctx, `SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1`, b.AppUser).Scan(&login, &super)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w %s leaves no role %q (database.user): it dropped or renamed it, and environments connect as that role. Keep the role in the source, or set database.user to the role the application uses; %s", ErrSource, src, b.AppUser, kept)
	case err != nil:
		return fmt.Errorf("read role %s: %w", b.AppUser, err)
	case !login:
		return fmt.Errorf("%w %s leaves role %q (database.user) unable to log in (NOLOGIN), and environments connect as that role. Remove the ALTER ROLE from the source; %s", ErrSource, src, b.AppUser, kept)
	case super:
		return fmt.Errorf("%w %s makes role %q (database.user) a superuser: the pull requests' migrations and apps run as that role and would control the database server and its files. Remove the ALTER ROLE ... SUPERUSER from the source; %s", ErrSource, src, b.AppUser, kept)
	}
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`).Scan(&tables); err != nil {
		return fmt.Errorf("count tables: %w", err)
	}
	if tables == 0 && !b.AllowEmpty {
		return fmt.Errorf("%w %s has no tables in database %q (database.name): every environment would get an empty database. Check that the source is the right dump or database and that its tables are in %q; to promote an empty database on purpose, add --allow-empty; %s", ErrSource, src, b.Database, b.Database, kept)
	}
	return nil
}

// buildLock is the file in a build's directory its builder holds locked
// while it is alive.
const buildLock = "build.lock"

// buildName matches the directories Build makes: .build-<generation>-<8 hex>.
var buildName = regexp.MustCompile(`^\.build-[0-9]+-[0-9a-f]{8}$`)

// discardInterrupted stops the postgres of every build whose builder died
// (kill -9, a crash, a reboot) and removes its directory. A directory is
// touched only if it is prenv's (named like Build names them, a directory
// of prenv's user or of the server's) and no live builder holds its lock.
// What cannot be cleaned is logged: it does not stop a new build. The
// caller holds the golden root's lock, as every builder does from before it
// makes its directory until after it locks it: a directory is never seen
// unlocked by a build while its builder is alive.
func (b *Builder) discardInterrupted(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		b.warn("list interrupted builds: "+err.Error(), "dir", root)
		return
	}
	for _, e := range entries {
		if !buildName.MatchString(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		err := removeDead(dir, b.User.UID)
		switch {
		case errors.Is(err, errBuilding), errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, errNotBuild):
			b.warn("left alone: "+err.Error(), "dir", dir)
		case err != nil:
			b.warn("an interrupted build was not cleaned up: "+err.Error(), "dir", dir)
		case b.Log != nil:
			b.Log.Info("stopped and removed an interrupted build", "dir", dir)
		}
	}
}

var (
	// errBuilding: a live builder holds the build directory.
	errBuilding = errors.New("a golden build is in progress in it")
	// errNotBuild: the directory is not one a builder of prenv's made.
	errNotBuild = errors.New("not a build directory of prenv's")
)

// removeDead stops the postgres of the build directory dir and removes it,
// if it is prenv's (a directory, not a link, of prenv's user or of the
// server's, serverUID) and no live builder holds its lock. It returns
// fs.ErrNotExist if dir is gone, errBuilding if a builder holds it and an
// error wrapping errNotBuild if it is not prenv's; those touch nothing.
func removeDead(dir string, serverUID int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if err := buildDir(fi, serverUID); err != nil {
		return err
	}
	// A cancelled context makes lock.File a single try: a live builder
	// holds the lock, so it is left alone.
	tryCtx, cancel := context.WithCancel(context.Background())
	cancel()
	unlock, err := lock.File(tryCtx, filepath.Join(dir, buildLock))
	if err != nil {
		return errBuilding
	}
	defer unlock()
	return discard(dir)
}

// buildDir returns an error wrapping errNotBuild unless fi is a directory
// (not a link) of prenv's user or of the server's, serverUID: what a
// builder of prenv's makes.
func buildDir(fi fs.FileInfo, serverUID int) error {
	if !fi.IsDir() {
		return fmt.Errorf("%w: a %v", errNotBuild, fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() && int(st.Uid) != serverUID {
		return fmt.Errorf("%w: owned by uid %d, neither prenv's user nor PostgreSQL's", errNotBuild, st.Uid)
	}
	return nil
}

func (b *Builder) warn(msg string, args ...any) {
	if b.Log != nil {
		b.Log.Warn(msg, args...)
	}
}

// discard stops the postgres of the build in dir, waits until no postgres
// serves its data directory any more, and removes dir with its socket
// directory.
func discard(dir string) error {
	srv := pgserver.Server{DataDir: filepath.Join(dir, "data")}
	if err := srv.Stop(time.Minute); err != nil {
		return err
	}
	// A postgres that was still starting when the build was interrupted
	// has no postmaster.pid for Stop to read.
	deadline := time.Now().Add(30 * time.Second)
	for pids := postgresOn(srv.DataDir); len(pids) > 0; pids = postgresOn(srv.DataDir) {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres %v on %s did not stop within 30s: stop it (kill %d) and remove %s", pids, srv.DataDir, pids[0], dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	// A deep home puts the socket outside the build's directory; the
	// stopped postgres left it empty.
	if sock := pgserver.SocketDir(filepath.Join(dir, "run")); !strings.HasPrefix(sock, dir+string(filepath.Separator)) {
		if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the socket directory %s: %w", sock, err)
		}
	}
	return nil
}

// postgresOn returns the postmasters started on dataDir ("postgres -D
// dataDir ..."), read from /proc; none where there is no /proc.
func postgresOn(dataDir string) []int {
	procs, _ := os.ReadDir("/proc")
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 3 || filepath.Base(args[0]) != "postgres" {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-D" && filepath.Clean(args[i+1]) == filepath.Clean(dataDir) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// ownGroup runs cmd in a process group of its own, killed whole when its
// context is done (pg_restore --jobs forks workers that a kill of pg_restore
// alone would leave running), and on Linux killed when prenv dies.
func ownGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	dieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// DiskUsage returns the bytes allocated to the files under dir.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

func freeEphemeralPort() (int, error) {
	for p := 49200; p < 49900; p++ {
		if pgserver.FreePort(p) {
			return p, nil
		}
	}
	return 0, errors.New("no free port for the build's postgres between 49200 and 49900")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countRows is the rows of db's tables, as the statistics the build's
// ANALYZE left say (exact for what it read whole).
func countRows(ctx context.Context, srv pgserver.Server, db string) (int64, error) {
	conn, err := pgx.Connect(ctx, srv.ConnString(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`).Scan(&n)
	return n, err
}
