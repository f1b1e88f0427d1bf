// Package pgbackend backs the RDS emulator's clusters with real PostgreSQL
// servers, so that their endpoints answer SQL, and makes their data follow
// the clusters as Aurora's does. A cluster made from nothing of its own (a
// clone of a source cluster without a database, a restore of a snapshot
// without data) gets a copy of the golden data of a prenv home; a clone of
// a cluster that has a database gets a consistent copy of that database as
// it is at that moment (a physical base backup of the running server, so
// the source keeps serving); a snapshot keeps such a copy, stopped; a
// restore of it gets a copy of the snapshot. Every copy is independent of
// its origin: deleting either leaves the other as it was.
package pgbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/rdsemu"
)

var (
	_ rdsemu.Backend     = (*Backend)(nil)
	_ rdsemu.Cloner      = (*Backend)(nil)
	_ rdsemu.Snapshotter = (*Backend)(nil)
)

// ErrNotFound is returned for a cluster or a snapshot the backend holds no
// database of.
var ErrNotFound = errors.New("no such database")

// Backend gives each cluster of the emulator a PostgreSQL server of its
// own, under a directory of a prenv home whose golden data it copies.
// Create it with New; Close removes everything it made.
type Backend struct {
	home        string
	first, last int
	log         *slog.Logger

	setupOnce sync.Once
	setupErr  error
	bin       pgserver.Binaries
	user      pgserver.User
	root      string // home/rdsemu-*: one directory per database and per snapshot

	mu    sync.Mutex
	next  int
	ports map[int]bool
	dbs   map[string]*database // by cluster
	snaps map[string]*dataCopy // by snapshot
}

// master is what a copy of a database holds besides its files: the
// application's database, the master user and its password.
type master struct {
	dbName, user, pw string
}

// dataCopy is a stopped copy of a database: a snapshot's.
type dataCopy struct {
	// mu is held for reading while the data is copied, for writing while
	// it is removed or its password changes.
	mu  sync.RWMutex
	dir string // holds data/, the data directory
	master
	removed bool
}

func (c *dataCopy) dataDir() string { return filepath.Join(c.dir, "data") }

// database is a running copy: a cluster's.
type database struct {
	dataCopy
	srv pgserver.Server
	// backup is held by the base backup of it under way: one at a time.
	// Each starts with a checkpoint, which may recycle the WAL segment
	// that another one, which has not yet made its replication slot, is
	// about to stream (pg_basebackup: "requested WAL segment has already
	// been removed").
	backup sync.Mutex
}

// New returns a backend copying the golden data of home, whose servers
// listen on ports "first-last" of 127.0.0.1. Nothing is made before the
// first database.
func New(home, ports string, log *slog.Logger) (*Backend, error) {
	a, b, ok := strings.Cut(ports, "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first > last {
		return nil, fmt.Errorf("ports %q: want first-last", ports)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{home: home, first: first, last: last, log: log, ports: map[int]bool{},
		dbs: map[string]*database{}, snaps: map[string]*dataCopy{}}, nil
}

// setup finds the binaries and the user to run them as, and makes the
// backend's directory, once (whatever becomes of the first caller's
// context: a request the client gave up on must not fail the others).
func (b *Backend) setup(ctx context.Context) error {
	b.setupOnce.Do(func() {
		b.bin, b.setupErr = pgserver.FindBinaries(context.WithoutCancel(ctx), "")
		if b.setupErr != nil {
			return
		}
		if b.user, b.setupErr = pgserver.ResolveUser("postgres"); b.setupErr != nil {
			return
		}
		if b.setupErr = b.user.CheckReach(b.home); b.setupErr != nil {
			return
		}
		root, err := os.MkdirTemp(b.home, "rdsemu-")
		if err != nil {
			b.setupErr = err
			return
		}
		// PostgreSQL's user goes through to its data directories, and
		// lists nothing.
		b.setupErr = os.Chmod(root, 0o711)
		b.mu.Lock()
		b.root = root
		b.mu.Unlock()
	})
	return b.setupErr
}

// Root is the directory of the backend's databases and snapshots ("" until
// the first is made).
func (b *Backend) Root() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.root
}

// Create implements rdsemu.Backend: the database of cluster id is a copy
// of the home's golden data, whose application role, the master user, gets
// a password of its own. It fails, wrapping dbclone.ErrNoSource, when the
// home has no golden data.
func (b *Backend) Create(ctx context.Context, id string) (string, int, string, string, error) {
	if err := b.setup(ctx); err != nil {
		return "", 0, "", "", err
	}
	g, err := golden.Current(b.home)
	if errors.Is(err, golden.ErrNone) {
		return "", 0, "", "", fmt.Errorf("cluster %s: %s has no golden data (run 'prenv golden build' with PRENV_HOME=%s): %w", id, b.home, b.home, dbclone.ErrNoSource)
	}
	if err != nil {
		return "", 0, "", "", err
	}
	if g.PGMajor != b.bin.Major {
		return "", 0, "", "", fmt.Errorf("cluster %s: golden generation %d was built by PostgreSQL %d, the binaries are %d: rebuild it", id, g.Number, g.PGMajor, b.bin.Major)
	}
	db, err := b.start(ctx, id, master{dbName: g.Database, user: g.User}, func(dst string) error {
		return copyTree(g.DataDir(), dst)
	})
	if err != nil {
		return "", 0, "", "", err
	}
	return "127.0.0.1", db.srv.Port, db.user, db.pw, nil
}

// Clone implements rdsemu.Cloner with a physical base backup of the
// source's running server: consistent as of the moment it ends, and the
// source serves throughout. The clone has the source's roles and
// passwords. It returns an error wrapping ErrNotFound if source has no
// database.
func (b *Backend) Clone(ctx context.Context, id, source string) (rdsemu.Endpoint, error) {
	b.mu.Lock()
	src := b.dbs[source]
	b.mu.Unlock()
	if src == nil {
		return rdsemu.Endpoint{}, fmt.Errorf("clone %s as %s: %w", source, id, ErrNotFound)
	}
	src.mu.RLock()
	defer src.mu.RUnlock()
	if src.removed {
		return rdsemu.Endpoint{}, fmt.Errorf("clone %s as %s: %w", source, id, ErrNotFound)
	}
	db, err := b.start(ctx, id, src.master, func(dst string) error {
		return b.baseBackup(ctx, src, dst)
	})
	if err != nil {
		return rdsemu.Endpoint{}, err
	}
	return db.endpoint(), nil
}

// Snapshot implements rdsemu.Snapshotter: a base backup of the cluster's
// running server, kept stopped.
func (b *Backend) Snapshot(ctx context.Context, snap, cluster string) (int64, error) {
	if err := b.setup(ctx); err != nil {
		return 0, err
	}
	b.mu.Lock()
	src := b.dbs[cluster]
	_, exists := b.snaps[snap]
	b.next++
	n := b.next
	b.mu.Unlock()
	if src == nil {
		return 0, fmt.Errorf("snapshot %s of %s: %w", snap, cluster, ErrNotFound)
	}
	if exists {
		return 0, fmt.Errorf("snapshot %s exists", snap)
	}
	src.mu.RLock()
	defer src.mu.RUnlock()
	if src.removed {
		return 0, fmt.Errorf("snapshot %s of %s: %w", snap, cluster, ErrNotFound)
	}
	sn := &dataCopy{dir: filepath.Join(b.root, "snapshot-"+strconv.Itoa(n)), master: src.master}
	if err := os.Mkdir(sn.dir, 0o700); err != nil {
		return 0, err
	}
	if err := b.baseBackup(ctx, src, sn.dataDir()); err != nil {
		os.RemoveAll(sn.dir)
		return 0, fmt.Errorf("snapshot %s of %s: %w", snap, cluster, err)
	}
	size, _ := golden.DiskUsage(sn.dataDir())
	b.mu.Lock()
	b.snaps[snap] = sn
	b.mu.Unlock()
	return size, nil
}

// Restore implements rdsemu.Snapshotter. It returns an error wrapping
// ErrNotFound if the backend holds no snapshot snap.
func (b *Backend) Restore(ctx context.Context, id, snap string) (rdsemu.Endpoint, error) {
	b.mu.Lock()
	sn := b.snaps[snap]
	b.mu.Unlock()
	if sn == nil {
		return rdsemu.Endpoint{}, fmt.Errorf("restore snapshot %s as %s: %w", snap, id, ErrNotFound)
	}
	sn.mu.RLock()
	defer sn.mu.RUnlock()
	if sn.removed {
		return rdsemu.Endpoint{}, fmt.Errorf("restore snapshot %s as %s: %w", snap, id, ErrNotFound)
	}
	db, err := b.start(ctx, id, sn.master, func(dst string) error {
		return copyTree(sn.dataDir(), dst)
	})
	if err != nil {
		return rdsemu.Endpoint{}, err
	}
	return db.endpoint(), nil
}

// DeleteSnapshot implements rdsemu.Snapshotter, once the restores from it
// under way are done.
func (b *Backend) DeleteSnapshot(ctx context.Context, snap string) error {
	b.mu.Lock()
	sn := b.snaps[snap]
	delete(b.snaps, snap)
	b.mu.Unlock()
	if sn == nil {
		return nil
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	sn.removed = true
	return os.RemoveAll(sn.dir)
}

// start makes the data directory of cluster id with fill, then serves it
// on a port of the range: the cluster's database, of m's master user,
// with m's password or a new one if it has none. It checks
// that the master user can log in over TCP. On failure nothing is left.
func (b *Backend) start(ctx context.Context, id string, m master, fill func(dataDir string) error) (*database, error) {
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.dbs[id] != nil {
		b.mu.Unlock()
		return nil, fmt.Errorf("cluster %s has a database already", id)
	}
	b.next++
	db := &database{}
	db.dir, db.master = filepath.Join(b.root, "cluster-"+strconv.Itoa(b.next)), m
	b.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			_ = db.srv.Stop(10 * time.Second)
			os.RemoveAll(db.dir)
			b.release(db.srv.Port)
		}
	}()
	if err := os.Mkdir(db.dir, 0o700); err != nil {
		return nil, err
	}
	if err := fill(db.dataDir()); err != nil {
		return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
	}
	if err := b.user.Own(db.dir); err != nil {
		return nil, err
	}
	// The port is taken last, just before the server binds it: the
	// range is shared by every database of the backend.
	port, err := b.reserve()
	if err != nil {
		return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
	}
	db.srv = pgserver.Server{Bin: b.bin, User: b.user, DataDir: db.dataDir(), SocketDir: pgserver.SocketDir(filepath.Join(db.dir, "run")),
		Port: port, LogFile: filepath.Join(db.dir, "postgres.log")}
	if err := b.writeAuth(db.dataDir()); err != nil {
		return nil, err
	}
	if err := db.srv.Start(ctx, 30*time.Second, settings(id)); err != nil {
		return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
	}
	// Aurora's master user is not a superuser but holds rds_superuser,
	// which may set session_replication_role (what a golden build's
	// masking needs to rewrite tables under foreign keys); PostgreSQL 15
	// grants exactly that right by parameter.
	// It may also create databases and roles (CREATE ROLE ... CREATEDB
	// CREATEROLE, as RDS makes it).
	if err := db.srv.Exec(ctx, "postgres", "ALTER ROLE "+pgx.Identifier{db.user}.Sanitize()+" CREATEDB CREATEROLE"); err != nil {
		return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
	}
	if b.bin.Major >= 15 {
		if err := db.srv.Exec(ctx, "postgres", "GRANT SET ON PARAMETER session_replication_role TO "+pgx.Identifier{db.user}.Sanitize()); err != nil {
			return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
		}
	}
	if db.pw == "" {
		db.pw = randHex(16)
		if err := db.srv.Exec(ctx, "postgres", alterPassword(db.user, db.pw)); err != nil {
			return nil, fmt.Errorf("the database of cluster %s: %w", id, err)
		}
	}
	if err := dbclone.SelectOne(ctx, db.endpoint().URL(db.dbName), 5*time.Second); err != nil {
		return nil, fmt.Errorf("the database of cluster %s: SELECT 1 as %s on port %d: %w", id, db.user, port, err)
	}
	b.mu.Lock()
	b.dbs[id] = db
	b.mu.Unlock()
	ok = true
	b.log.Info("rds backend database", "cluster", id, "port", port, "dir", db.dir)
	return db, nil
}

func (db *database) endpoint() rdsemu.Endpoint {
	return rdsemu.Endpoint{Host: "127.0.0.1", Port: db.srv.Port, User: db.user, Password: db.pw}
}

// settings are every server's: small, and ready to stream a base backup
// of itself (the copies of a running cluster).
func settings(id string) map[string]string {
	return map[string]string{
		"listen_addresses": "127.0.0.1", "shared_buffers": "16MB", "max_connections": "20",
		"synchronous_commit": "off", "logging_collector": "off", "autovacuum_max_workers": "1",
		"max_logical_replication_workers": "0", "wal_level": "replica", "max_wal_senders": "4",
		// A margin for the WAL a base backup streams, should a checkpoint
		// come between its start and its slot (checkpoint_timeout).
		"wal_keep_size": "64MB",
		"cluster_name":  id,
	}
}

// writeAuth writes prenv's authentication rules, and lets the superuser
// (by peer, from prenv's user) stream base backups over the socket.
func (b *Backend) writeAuth(dataDir string) error {
	if err := pgserver.WriteAuth(dataDir, b.user, nil); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "local replication %s peer map=%s\n", pgserver.Superuser, pgserver.IdentMap)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// baseBackup copies the data directory of the running src into dst (which
// must not exist) with pg_basebackup: a fast checkpoint, then the files
// and the WAL written meanwhile, so that dst starts as the source was when
// the backup ended.
func (b *Backend) baseBackup(ctx context.Context, src *database, dst string) error {
	src.backup.Lock()
	defer src.backup.Unlock()
	srv := src.srv
	cmd := exec.CommandContext(ctx, b.bin.Path("pg_basebackup"), "--host", srv.SocketDir, "--port", strconv.Itoa(srv.Port),
		"--username", pgserver.Superuser, "--no-password", "--pgdata", dst, "--wal-method=stream", "--checkpoint=fast", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup of %s: %w: %s", srv.DataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (b *Backend) reserve() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p := b.first; p <= b.last; p++ {
		if !b.ports[p] && pgserver.FreePort(p) {
			b.ports[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("every port of %d-%d is taken (the emulator holds %d databases): widen the range or delete clusters", b.first, b.last, len(b.dbs))
}

func (b *Backend) release(port int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.ports, port)
}

// SetPassword implements rdsemu.Backend, as ModifyDBCluster's
// MasterUserPassword does.
func (b *Backend) SetPassword(ctx context.Context, id, password string) error {
	b.mu.Lock()
	db := b.dbs[id]
	b.mu.Unlock()
	if db == nil {
		return fmt.Errorf("set the password of cluster %s: %w", id, ErrNotFound)
	}
	// Held for writing: a copy made meanwhile has one password or the
	// other, and says which.
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.srv.Exec(ctx, "postgres", alterPassword(db.user, password)); err != nil {
		return fmt.Errorf("set the password of cluster %s: %w", id, err)
	}
	db.pw = password
	return nil
}

func alterPassword(user, pw string) string {
	return "ALTER ROLE " + pgx.Identifier{user}.Sanitize() + " PASSWORD '" + strings.ReplaceAll(pw, "'", "''") + "'"
}

// Delete implements rdsemu.Backend: the server stops and its files go,
// once the copies of it under way are done. The databases copied from it
// stay.
func (b *Backend) Delete(ctx context.Context, id string) error {
	b.mu.Lock()
	db := b.dbs[id]
	delete(b.dbs, id)
	b.mu.Unlock()
	if db == nil {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.removed = true
	if err := db.srv.Stop(30 * time.Second); err != nil {
		return fmt.Errorf("delete the database of cluster %s: %w", id, err)
	}
	os.RemoveAll(db.srv.SocketDir)
	err := os.RemoveAll(db.dir)
	b.release(db.srv.Port)
	return err
}

// Close removes every database and snapshot the backend made.
func (b *Backend) Close() error {
	b.mu.Lock()
	var dbs, snaps []string
	for id := range b.dbs {
		dbs = append(dbs, id)
	}
	for id := range b.snaps {
		snaps = append(snaps, id)
	}
	root := b.root
	b.mu.Unlock()
	var errs []error
	for _, id := range dbs {
		errs = append(errs, b.Delete(context.Background(), id))
	}
	for _, id := range snaps {
		errs = append(errs, b.DeleteSnapshot(context.Background(), id))
	}
	if root != "" {
		errs = append(errs, os.RemoveAll(root))
	}
	return errors.Join(errs...)
}
