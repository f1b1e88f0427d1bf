package localpg

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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/pgserver"
)

var (
	_ dbclone.Cloner  = (*Cloner)(nil)
	_ dbclone.Checker = (*Cloner)(nil)
)

// ManifestName is the file beside each clone's data that says it is ours.
const ManifestName = "prenv-clone.json"

// Manifest records one clone. A directory without it, or with another owner,
// is never deleted.
type Manifest struct {
	Owner      string            `json:"owner"`
	Key        string            `json:"env"`
	Name       string            `json:"name"`
	Generation int               `json:"golden_generation"`
	CreatedAt  time.Time         `json:"created_at"`
	ExpiresAt  time.Time         `json:"expires_at"`
	Port       int               `json:"port"`
	Database   string            `json:"database"`
	User       string            `json:"user"`
	Password   string            `json:"password"`
	Copy       CopyMethod        `json:"copy"`
	Complete   bool              `json:"complete"` // false while the copy is in progress
	Labels     map[string]string `json:"labels"`
}

// Cloner clones the local golden source. Create it with New.
type Cloner struct {
	Home      string
	Owner     string
	BinDir    string
	RunAs     string
	FirstPort int
	LastPort  int
	// Settings are postgresql.conf settings for every clone's server.
	Settings     map[string]string
	StartTimeout time.Duration
	// Listen is the clones' listen_addresses (default 127.0.0.1); Host is
	// the address put in their URLs (default the first of Listen, or
	// 127.0.0.1). Allow lists the networks (CIDRs) besides loopback that
	// may connect, with the clone's password: for pods of a cluster on
	// this machine's network, say.
	Listen, Host string
	Allow        []string
	// NoReflink forces plain copies (for benchmarks that compare).
	NoReflink bool
	// AccessGroup, when prenv runs as root, is the group that may enter
	// PRENV_HOME: PostgreSQL gets it as a supplementary group.
	AccessGroup int
	Log         *slog.Logger

	mu   sync.Mutex
	bin  *pgserver.Binaries
	user *pgserver.User
}

// New returns a Cloner keeping clones under home/clones.
func New(home, owner string, log *slog.Logger) *Cloner {
	return &Cloner{
		Home: home, Owner: owner, RunAs: "postgres", FirstPort: 54400, LastPort: 54499,
		Settings:     map[string]string{"shared_buffers": "16MB", "max_connections": "20"},
		StartTimeout: 30 * time.Second, Log: log,
	}
}

// secureRoot makes the directory of the clones: only prenv's user and
// PostgreSQL's may enter it (their logs and manifests are no one else's).
func (c *Cloner) secureRoot(u pgserver.User) error {
	if err := os.MkdirAll(c.Root(), 0o700); err != nil {
		return err
	}
	if !u.Switched() {
		return os.Chmod(c.Root(), 0o700)
	}
	if err := os.Chown(c.Root(), os.Geteuid(), u.GID); err != nil {
		return err
	}
	return os.Chmod(c.Root(), 0o710)
}

// Root is where clones live.
func (c *Cloner) Root() string { return filepath.Join(c.Home, "clones") }

func (c *Cloner) dir(name string) string { return filepath.Join(c.Root(), name) }

// setup finds the binaries and the user once.
func (c *Cloner) setup(ctx context.Context) (pgserver.Binaries, pgserver.User, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bin != nil {
		return *c.bin, *c.user, nil
	}
	bin, err := pgserver.FindBinaries(ctx, c.BinDir)
	if err != nil {
		return bin, pgserver.User{}, err
	}
	u, err := pgserver.ResolveUser(c.RunAs)
	if err != nil {
		return bin, u, err
	}
	if u.Switched() && c.AccessGroup > 0 {
		u.Groups = []int{c.AccessGroup}
	}
	if u.Switched() && c.Log != nil {
		c.Log.Info("prenv runs as root, so PostgreSQL runs as user " + u.Name + " (database.localpg.run_as)")
	}
	c.bin, c.user = &bin, &u
	return bin, u, nil
}

func (c *Cloner) server(bin pgserver.Binaries, u pgserver.User, m Manifest) pgserver.Server {
	d := c.dir(m.Name)
	return pgserver.Server{Bin: bin, User: u, DataDir: filepath.Join(d, "data"), SocketDir: pgserver.SocketDir(filepath.Join(d, "run")), Port: m.Port, LogFile: filepath.Join(d, "postgres.log")}
}

func readManifest(dir string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

func jsonManifest(m Manifest) ([]byte, error) { return json.MarshalIndent(m, "", "  ") }

func writeManifest(dir string, m Manifest) error {
	data, _ := jsonManifest(m)
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}

// owned reads the manifest in dir and checks it is ours. It returns
// fs.ErrNotExist if dir does not exist, ErrNotOurs if it is not ours.
func (c *Cloner) owned(dir string) (Manifest, error) {
	if _, err := os.Lstat(dir); err != nil {
		return Manifest{}, err
	}
	m, err := readManifest(dir)
	if err != nil {
		return m, fmt.Errorf("%s exists without a readable %s (%v): %w; move it away if it is yours to lose", dir, ManifestName, err, dbclone.ErrNotOurs)
	}
	if m.Owner != c.Owner {
		return m, fmt.Errorf("%s belongs to owner %q, not %q: %w", dir, m.Owner, c.Owner, dbclone.ErrNotOurs)
	}
	return m, nil
}

// Clone implements dbclone.Cloner.
func (c *Cloner) Clone(ctx context.Context, req dbclone.Request) (dbclone.Database, error) {
	bin, u, err := c.setup(ctx)
	if err != nil {
		return dbclone.Database{}, err
	}
	if err := c.secureRoot(u); err != nil {
		return dbclone.Database{}, err
	}
	if err := u.CheckReach(c.Root()); err != nil {
		return dbclone.Database{}, err
	}
	unlock, err := lock.File(ctx, filepath.Join(c.Root(), "."+req.Name+".lock"))
	if err != nil {
		return dbclone.Database{}, err
	}
	defer unlock()
	dir := c.dir(req.Name)
	m, err := c.owned(dir)
	switch {
	case err == nil && m.Key != req.Key.String():
		return dbclone.Database{}, fmt.Errorf("%s holds the clone of %s, not %s: %w", dir, m.Key, req.Key, dbclone.ErrNotOurs)
	case err == nil && m.Complete:
		return c.adopt(ctx, bin, u, m)
	case err == nil:
		// A copy interrupted by a crash: ours, incomplete, never started.
		if err := os.RemoveAll(dir); err != nil {
			return dbclone.Database{}, fmt.Errorf("remove interrupted clone %s: %w", dir, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return dbclone.Database{}, err
	}
	return c.create(ctx, bin, u, req)
}

func (c *Cloner) create(ctx context.Context, bin pgserver.Binaries, u pgserver.User, req dbclone.Request) (dbclone.Database, error) {
	g, err := golden.Current(c.Home)
	if errors.Is(err, golden.ErrNone) {
		return dbclone.Database{}, fmt.Errorf("clone %s: %w", req.Name, dbclone.ErrNoSource)
	}
	if err != nil {
		return dbclone.Database{}, err
	}
	if g.PGMajor != bin.Major {
		return dbclone.Database{}, fmt.Errorf("clone %s: golden generation %d was built by PostgreSQL %d, the binaries are %d: rebuild it with 'prenv golden build' or set database.localpg.bin_dir", req.Name, g.Number, g.PGMajor, bin.Major)
	}
	dir := c.dir(req.Name)
	m := Manifest{
		Owner: c.Owner, Key: req.Key.String(), Name: req.Name, Generation: g.Number,
		CreatedAt: time.Now().UTC(), ExpiresAt: req.ExpiresAt.UTC(),
		Database: g.Database, User: g.User, Password: randHex(16), Labels: req.Labels,
	}
	// The port is reserved by writing the manifest under the pool lock.
	err = func() error {
		unlock, err := lock.File(ctx, filepath.Join(c.Root(), ".ports.lock"))
		if err != nil {
			return err
		}
		defer unlock()
		m.Port, err = c.freePort()
		if err != nil {
			return err
		}
		// The directory appears with its manifest or not at all (rename is
		// atomic), so a crash never leaves a directory we cannot claim.
		tmp := filepath.Join(c.Root(), "."+req.Name+".new")
		os.RemoveAll(tmp) // ours: left by a crash, under the same lock
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := writeManifest(tmp, m); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		return os.Rename(tmp, dir)
	}()
	if err != nil {
		return dbclone.Database{}, fmt.Errorf("clone %s: %w", req.Name, err)
	}
	ok := false
	defer func() {
		if !ok {
			srv := c.server(bin, u, m)
			_ = srv.Stop(10 * time.Second)
			os.RemoveAll(dir)
		}
	}()
	method, err := copyTree(g.DataDir(), filepath.Join(dir, "data"), u, !c.NoReflink)
	if err != nil {
		if isNoSpace(err) {
			return dbclone.Database{}, fmt.Errorf("clone %s: the disk under %s is full (%v); the partial clone was removed: free space or move PRENV_HOME to a larger volume", req.Name, c.Root(), err)
		}
		return dbclone.Database{}, fmt.Errorf("clone %s: copy golden generation %d: %w", req.Name, g.Number, err)
	}
	if method == Full && !c.NoReflink {
		c.warnNoReflink()
	}
	m.Copy, m.Complete = method, true
	if err := writeManifest(dir, m); err != nil {
		return dbclone.Database{}, err
	}
	if err := u.Own(filepath.Join(dir)); err != nil {
		return dbclone.Database{}, err
	}
	db, err := c.adopt(ctx, bin, u, m)
	if err != nil {
		return db, err
	}
	ok = true
	db.Created = true
	return db, nil
}

// warnNoReflink says once per PRENV_HOME (a marker file remembers) that
// clones are plain copies here.
func (c *Cloner) warnNoReflink() {
	marker := filepath.Join(c.Root(), ".no-reflink-noted")
	if _, err := os.Stat(marker); err == nil {
		return
	}
	_ = os.WriteFile(marker, []byte("the filesystem under this directory cannot reflink; see docs/reflink.md\n"), 0o644)
	if c.Log != nil {
		c.Log.Warn("the filesystem under PRENV_HOME cannot reflink: clones are plain copies, slower and as large as the golden data; put PRENV_HOME on XFS (mkfs.xfs -m reflink=1) or btrfs, see docs/reflink.md (said once)", "dir", c.Root())
	}
}

// adopt makes sure the clone's server runs, gives the application role the
// clone's own password (a clone copies every password hash of the golden
// source) and checks a SELECT 1 as that role over TCP.
func (c *Cloner) adopt(ctx context.Context, bin pgserver.Binaries, u pgserver.User, m Manifest) (dbclone.Database, error) {
	srv := c.server(bin, u, m)
	// Written at every adoption, so a clone made by an older prenv (whose
	// files trusted the socket) is brought to today's rules too.
	if err := pgserver.WriteAuth(srv.DataDir, u, c.Allow); err != nil {
		return dbclone.Database{}, fmt.Errorf("clone %s: %w", m.Name, err)
	}
	if err := srv.Ping(ctx); err != nil {
		if err := srv.Start(ctx, c.StartTimeout, c.startSettings(m)); err != nil {
			return dbclone.Database{}, fmt.Errorf("clone %s: %w", m.Name, err)
		}
	} else if err := srv.Exec(ctx, "postgres", "SELECT pg_reload_conf()"); err != nil {
		return dbclone.Database{}, fmt.Errorf("clone %s: reload its authentication rules: %w", m.Name, err)
	}
	if err := srv.Exec(ctx, "postgres", fmt.Sprintf(`ALTER ROLE %s PASSWORD '%s'`, pgx.Identifier{m.User}.Sanitize(), m.Password)); err != nil {
		return dbclone.Database{}, fmt.Errorf("clone %s: set the password of role %s: %w", m.Name, m.User, err)
	}
	db := c.database(m)
	if err := dbclone.SelectOne(ctx, dbclone.URL(m.User, m.Password, c.checkHost(), m.Port, m.Database), 5*time.Second); err != nil {
		return db, fmt.Errorf("clone %s: SELECT 1 as %s on port %d: %w", m.Name, m.User, m.Port, err)
	}
	db.Ready = "select 1 as " + m.User + " over tcp"
	return db, nil
}

func (c *Cloner) startSettings(m Manifest) map[string]string {
	s := map[string]string{
		"listen_addresses":       c.listen(),
		"synchronous_commit":     "off",
		"logging_collector":      "off",
		"max_wal_senders":        "0",
		"wal_level":              "minimal",
		"autovacuum_max_workers": "1",
		// No logical replication in a preview: one process fewer.
		"max_logical_replication_workers": "0",
		"cluster_name":                    m.Name,
	}
	for k, v := range c.Settings {
		s[k] = v
	}
	return s
}

func (c *Cloner) listen() string {
	if c.Listen == "" {
		return "127.0.0.1"
	}
	return c.Listen
}

// host is the address clients are given.
func (c *Cloner) host() string {
	if c.Host != "" {
		return c.Host
	}
	first, _, _ := strings.Cut(c.listen(), ",")
	if first = strings.TrimSpace(first); first == "*" || first == "0.0.0.0" || first == "::" || first == "" {
		return "127.0.0.1"
	}
	return first
}

// checkHost is where prenv itself checks a clone answers: loopback when
// the clone listens there.
func (c *Cloner) checkHost() string {
	for _, a := range strings.Split(c.listen(), ",") {
		switch strings.TrimSpace(a) {
		case "*", "0.0.0.0", "127.0.0.1", "localhost":
			return "127.0.0.1"
		}
	}
	return c.host()
}

func (c *Cloner) database(m Manifest) dbclone.Database {
	k, _ := env.ParseKey(m.Key)
	return dbclone.Database{
		Key: k, Name: m.Name, Provider: "localpg",
		URL:  dbclone.URL(m.User, m.Password, c.host(), m.Port, m.Database),
		Host: c.host(), Port: m.Port, DBName: m.Database, User: m.User, Password: m.Password,
		Generation: m.Generation, Labels: m.Labels, CreatedAt: m.CreatedAt,
	}
}

// freePort returns the first port of the pool that no clone holds and
// nothing listens on. The caller holds the pool lock.
func (c *Cloner) freePort() (int, error) {
	used := map[int]bool{}
	all, _ := c.manifests()
	for _, m := range all {
		used[m.Port] = true
	}
	for p := c.FirstPort; p <= c.LastPort; p++ {
		if !used[p] && pgserver.FreePort(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: every port of database.localpg.ports %d-%d is taken (%d clones hold one): bring down unused environments with 'prenv down --pr N' or widen the range",
		dbclone.ErrCapacity, c.FirstPort, c.LastPort, len(used))
}

// manifests reads every manifest under Root, ours or not.
func (c *Cloner) manifests() ([]Manifest, error) {
	entries, err := os.ReadDir(c.Root())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, err := readManifest(filepath.Join(c.Root(), e.Name()))
		if err != nil {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Check implements dbclone.Checker: the binaries, the user to run them as
// and a golden source must all be there before anything is created.
func (c *Cloner) Check(ctx context.Context, k env.Key) error {
	bin, u, err := c.setup(ctx)
	if err != nil {
		return err
	}
	if err := u.CheckReach(c.Home); err != nil {
		return err
	}
	m, err := c.owned(c.dir(k.Name()))
	switch {
	case err == nil && m.Key != k.String():
		return fmt.Errorf("%s holds the clone of %s, not %s: %w", c.dir(k.Name()), m.Key, k, dbclone.ErrNotOurs)
	case err == nil:
		return nil // ours: Clone adopts it
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if _, err := c.freePort(); err != nil {
		return err
	}
	g, err := golden.Current(c.Home)
	if errors.Is(err, golden.ErrNone) {
		return dbclone.ErrNoSource
	}
	if err != nil {
		return err
	}
	if g.PGMajor != bin.Major {
		return fmt.Errorf("golden generation %d was built by PostgreSQL %d, the binaries are %d: rebuild it with 'prenv golden build' or set database.localpg.bin_dir", g.Number, g.PGMajor, bin.Major)
	}
	return nil
}

// Get implements dbclone.Cloner.
func (c *Cloner) Get(ctx context.Context, k env.Key) (dbclone.Database, error) {
	m, err := c.owned(c.dir(k.Name()))
	if errors.Is(err, fs.ErrNotExist) || err == nil && (!m.Complete || m.Key != k.String()) {
		return dbclone.Database{}, fmt.Errorf("%s: %w", k.Name(), dbclone.ErrNotFound)
	}
	if err != nil {
		return dbclone.Database{}, err
	}
	return c.database(m), nil
}

// Delete implements dbclone.Cloner: it stops the clone's server and removes
// its directory.
func (c *Cloner) Delete(ctx context.Context, k env.Key) error {
	name := k.Name()
	dir := c.dir(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	unlock, err := lock.File(ctx, filepath.Join(c.Root(), "."+name+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	m, err := c.owned(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if m.Key != k.String() {
		return fmt.Errorf("delete %s: it holds the clone of %s, not %s: %w", name, m.Key, k, dbclone.ErrNotOurs)
	}
	if err := c.destroy(name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// destroy stops the server of the clone directory name (under Root) and
// removes the directory. It is moved into Root/.trash first, whole: a
// removal killed midway never leaves a directory without its manifest
// where Clone would find it and refuse it as not ours, and what is left in
// the trash is listed by Resources. The caller holds the clone's lock.
func (c *Cloner) destroy(name string) error {
	dir := c.dir(name)
	srv := pgserver.Server{DataDir: filepath.Join(dir, "data")}
	// Stopped where it runs: PID trusts a postmaster only with its own
	// data directory on its command line.
	if err := srv.Stop(30 * time.Second); err != nil {
		return err
	}
	gone, err := c.toTrash(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	os.RemoveAll(pgserver.SocketDir(filepath.Join(dir, "run")))
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove %s: %w; what is left is listed by 'prenv sweep' and removed by the next 'prenv sweep --apply', or remove it by hand", gone, err)
	}
	os.Remove(c.trash()) // only when empty: another removal may be using it
	os.Remove(filepath.Join(c.Root(), "."+name+".lock"))
	return nil
}

// List implements dbclone.Cloner.
func (c *Cloner) List(ctx context.Context) ([]dbclone.Database, error) {
	all, err := c.manifests()
	if err != nil {
		return nil, err
	}
	var out []dbclone.Database
	for _, m := range all {
		if m.Owner == c.Owner && m.Complete {
			out = append(out, c.database(m))
		}
	}
	return out, nil
}

// Running reports whether the clone's server of k runs.
func (c *Cloner) Running(k env.Key) bool {
	return pgserver.Server{DataDir: filepath.Join(c.dir(k.Name()), "data")}.Running()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
