package localpg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/pgserver"
)

var (
	_ env.Inventory = (*Cloner)(nil)
	_ env.Renewer   = (*Cloner)(nil)
)

// The words a sweep plan shows for what an interrupted run left (issue 10).
const (
	halfCopy     = "the copy never completed: its up was killed while cloning"
	halfNoManif  = "no readable " + ManifestName + ": a clone whose making or removal was interrupted, or a directory put there by hand"
	halfNew      = "a clone's directory was being made when its up was killed"
	halfTrash    = "a removal was killed before it finished"
	trashDirName = ".trash"
)

func (c *Cloner) trash() string { return filepath.Join(c.Root(), trashDirName) }

// toTrash moves the clone directory name into the trash, whole, and
// returns where it went; fs.ErrNotExist if it is not there.
func (c *Cloner) toTrash(name string) (string, error) {
	gone := filepath.Join(c.trash(), name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	var err error
	// Twice: another removal may take away the empty trash between the
	// MkdirAll and the Rename.
	for i := 0; i < 2; i++ {
		if err = os.MkdirAll(c.trash(), 0o700); err != nil {
			return "", err
		}
		if err = os.Rename(c.dir(name), gone); err == nil {
			return gone, nil
		}
		if _, serr := os.Lstat(c.dir(name)); errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
	}
	return "", err
}

// Resources implements env.Inventory: one resource (Kind "clone") per
// directory under Root, ours or not. A clone whose copy never completed,
// a directory without a readable manifest (ours by where it is), a clone
// directory an up was making when it was killed, and what a removal killed
// midway left in the trash are listed half-made. A clone an up is making
// or adopting right now (its lock is held) is left out unless complete.
func (c *Cloner) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	entries, err := os.ReadDir(c.Root())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list clones in %s: %w", c.Root(), err)
	}
	var out []env.Resource
	for _, e := range entries {
		name := e.Name()
		switch {
		case !e.IsDir():
			continue // lock files, markers
		case name == trashDirName:
			left, err := c.trashed()
			if err != nil {
				return nil, err
			}
			out = append(out, left...)
			continue
		case isNew(name):
			// Made and renamed under the ports lock: held, it is an up's
			// at work now.
			if lock.Held(filepath.Join(c.Root(), ".ports.lock")) {
				continue
			}
		case strings.HasPrefix(name, "."):
			continue // not a name Clone gives
		}
		r, busy := c.resource(name)
		if busy {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// isNew reports whether name is the directory create makes a clone in
// before renaming it into place (".pr-1.new").
func isNew(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".new") && len(name) > len("..new")
}

// resource reads the clone directory name. busy is true when an up is
// making the clone right now (its lock is held and it is not complete):
// what is half-made at this moment is not a leftover.
func (c *Cloner) resource(name string) (r env.Resource, busy bool) {
	dir := c.dir(name)
	r = env.Resource{Provider: "localpg", Kind: "clone", ID: name}
	running := ""
	if pid, ok := (pgserver.Server{DataDir: filepath.Join(dir, "data")}).PID(); ok {
		running = fmt.Sprintf("; its postgres still runs (pid %d)", pid)
	}
	m, err := readManifest(dir)
	if err != nil {
		if !isNew(name) && lock.Held(filepath.Join(c.Root(), "."+name+".lock")) {
			return r, true
		}
		r.Local = true
		r.HalfMade = halfNoManif + running
		if isNew(name) {
			r.HalfMade = halfNew + running
		}
		if fi, err := os.Lstat(dir); err == nil {
			r.CreatedAt = fi.ModTime().UTC()
		}
		return r, false
	}
	if !m.Complete && !isNew(name) && lock.Held(filepath.Join(c.Root(), "."+name+".lock")) {
		return r, true
	}
	r.Labels = manifestLabels(m)
	r.CreatedAt = m.CreatedAt.UTC()
	if k, err := env.ParseKey(m.Key); err != nil {
		r.Problem = fmt.Sprintf("%s in %s names environment %q, which cannot be read: %v", ManifestName, dir, m.Key, err)
	} else {
		r.Key = k
	}
	switch {
	case isNew(name):
		r.HalfMade = halfNew + running
	case !m.Complete:
		r.HalfMade = halfCopy + running
	}
	return r, false
}

// manifestLabels are the labels a clone carries: those it was made with,
// and what the manifest itself records of its owner, environment and times
// (the manifest's fields win: Renew and the owner check read them).
func manifestLabels(m Manifest) map[string]string {
	l := make(map[string]string, len(m.Labels)+4)
	for k, v := range m.Labels {
		l[k] = v
	}
	l[env.LabelOwner] = m.Owner
	l[env.LabelKey] = m.Key
	if !m.CreatedAt.IsZero() {
		l[env.LabelCreatedAt] = m.CreatedAt.UTC().Format(time.RFC3339)
	}
	if !m.ExpiresAt.IsZero() {
		l[env.LabelExpiresAt] = m.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return l
}

// trashed lists what removals killed midway left in the trash.
func (c *Cloner) trashed() ([]env.Resource, error) {
	entries, err := os.ReadDir(c.trash())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", c.trash(), err)
	}
	var out []env.Resource
	for _, e := range entries {
		r := env.Resource{Provider: "localpg", Kind: "clone", ID: trashDirName + "/" + e.Name(), Local: true, HalfMade: halfTrash}
		if fi, err := e.Info(); err == nil {
			r.CreatedAt = fi.ModTime().UTC()
		}
		out = append(out, r)
	}
	return out, nil
}

// Remove implements env.Inventory. It reads the clone again under its
// lock: nil if it is gone; an error wrapping env.ErrNotOurs, touching
// nothing, if its manifest names another owner or another environment
// than planned, or if a clone planned with a manifest has lost it; an
// error, touching nothing, if an up holds it now or completed it since it
// was planned half-made. Otherwise its postgres is stopped and its
// directory removed as Delete does.
func (c *Cloner) Remove(ctx context.Context, q env.Query, r env.Resource) error {
	if r.Provider != "localpg" || r.Kind != "clone" {
		return fmt.Errorf("remove %s %s %s: not a localpg clone", r.Provider, r.Kind, r.ID)
	}
	if rest, ok := strings.CutPrefix(r.ID, trashDirName+"/"); ok {
		if !plainName(rest) {
			return fmt.Errorf("remove clone %q: not a name under %s", r.ID, c.trash())
		}
		if err := os.RemoveAll(filepath.Join(c.trash(), rest)); err != nil {
			return fmt.Errorf("remove %s: %w; remove it by hand", filepath.Join(c.trash(), rest), err)
		}
		os.Remove(c.trash())
		return nil
	}
	name := r.ID
	if !plainName(name) || name == trashDirName {
		return fmt.Errorf("remove clone %q: not a clone directory name", name)
	}
	dir := c.dir(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	lockFile := filepath.Join(c.Root(), "."+name+".lock")
	if isNew(name) {
		lockFile = filepath.Join(c.Root(), ".ports.lock")
	}
	// One try: an up at work on the clone now is never raced.
	try, cancel := context.WithCancel(ctx)
	cancel()
	unlock, err := lock.File(try, lockFile)
	if err != nil {
		return fmt.Errorf("remove clone %s: an up or down is at work on it now; left for the next sweep", name)
	}
	defer unlock()
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove clone %s: %w", name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("remove clone %s: %s is not a directory (a %v), prenv made none such: %w", name, dir, fi.Mode().Type(), env.ErrNotOurs)
	}
	m, err := readManifest(dir)
	switch {
	case err != nil && !r.Local:
		return fmt.Errorf("remove clone %s: it was planned with its %s, which cannot be read now (%v): %w", name, ManifestName, err, env.ErrNotOurs)
	case err == nil && m.Owner != q.Owner:
		return fmt.Errorf("remove clone %s: it belongs to owner %q, not %q: %w", name, m.Owner, q.Owner, env.ErrNotOurs)
	case err == nil && r.Labels[env.LabelKey] != "" && m.Key != r.Labels[env.LabelKey]:
		return fmt.Errorf("remove clone %s: it holds the clone of %s now, not %s: %w", name, m.Key, r.Labels[env.LabelKey], env.ErrNotOurs)
	case err == nil && r.HalfMade != "" && m.Complete && !isNew(name):
		return fmt.Errorf("remove clone %s: it was planned half-made but an up has completed it since; left", name)
	}
	if err := c.destroy(name); err != nil {
		return fmt.Errorf("remove clone %s: %w", name, err)
	}
	return nil
}

// plainName reports whether name is one path element.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, filepath.Separator)
}

// Renew implements env.Renewer: it moves the expiry recorded in the
// manifest of k's clone (its ExpiresAt and its expires-at label). It is
// nil if k has no clone, an error wrapping env.ErrNotOurs, changing
// nothing, if the clone there is another owner's or another environment's.
func (c *Cloner) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	name := k.Name()
	dir := c.dir(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	unlock, err := lock.File(ctx, filepath.Join(c.Root(), "."+name+".lock"))
	if err != nil {
		return fmt.Errorf("renew clone %s: %w", name, err)
	}
	defer unlock()
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	m, err := readManifest(dir)
	switch {
	case err != nil:
		return fmt.Errorf("renew clone %s: %s exists without a readable %s (%v): %w", name, dir, ManifestName, err, env.ErrNotOurs)
	case m.Owner != c.Owner:
		return fmt.Errorf("renew clone %s: it belongs to owner %q, not %q: %w", name, m.Owner, c.Owner, env.ErrNotOurs)
	case m.Key != k.String():
		return fmt.Errorf("renew clone %s: it holds the clone of %s, not %s: %w", name, m.Key, k, env.ErrNotOurs)
	}
	m.ExpiresAt = expiresAt.UTC()
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[env.LabelExpiresAt] = m.ExpiresAt.Format(time.RFC3339)
	if err := rewriteManifest(dir, m); err != nil {
		return fmt.Errorf("renew clone %s: %w", name, err)
	}
	return nil
}

// rewriteManifest replaces the manifest in dir atomically, keeping the
// mode and owner the one there has (a complete clone's belongs to
// PostgreSQL's user, who may write in dir: the new file is made fresh,
// never through a link left at its name).
func rewriteManifest(dir string, m Manifest) error {
	path := filepath.Join(dir, ManifestName)
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	data, err := jsonManifest(m)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err = f.Write(data); err == nil && st != nil {
		err = f.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = f.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
