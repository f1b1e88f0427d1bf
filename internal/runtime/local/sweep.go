package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prenv/prenv/internal/env"
)

var (
	_ env.Inventory = (*Runtime)(nil)
	_ env.Renewer   = (*Runtime)(nil)
)

// The words a sweep plan shows for what an interrupted run left (issue 10).
const (
	halfTrash    = "a teardown was killed before it finished removing"
	halfNoManif  = "no readable " + ManifestName + ": a home whose making or teardown was interrupted, or a directory put there by hand"
	halfNew      = "a prepare was killed before the home was in place"
	halfOrphan   = "processes of an environment whose home is gone"
	trashDirName = ".trash"
)

// isNew reports whether name is the directory Prepare makes a home in
// before renaming it into place (".pr-1.new").
func isNew(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".new") && len(name) > len("..new")
}

// Resources implements env.Inventory. Kind "home": each environment
// directory under envs (from its manifest, ours or another owner's; one
// without a readable manifest, a home Prepare was making when it was
// killed and what a killed teardown left in the trash are half-made and
// ours by where they are). Kind "process", when environments have users of
// their own: each user id of runtime.local.uids that processes still run
// as while no home here holds it, provided it is claimed by this
// PRENV_HOME, or claimed by none and no account of the machine.
func (r *Runtime) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	envs := EnvsDir(r.Home)
	entries, err := os.ReadDir(envs)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list environments in %s: %w", envs, err)
	}
	var out []env.Resource
	for _, e := range entries {
		name := e.Name()
		switch {
		case !e.IsDir():
			continue // lock files, the last id given
		case name == trashDirName:
			left, err := r.trashed()
			if err != nil {
				return nil, err
			}
			out = append(out, left...)
			continue
		case isNew(name):
		case strings.HasPrefix(name, "."):
			continue
		}
		out = append(out, r.home(name))
	}
	if r.Users != nil {
		held := r.heldUIDs()
		for uid, procs := range processesByUID() {
			if held[uid] || r.orphanOf(uid) != nil {
				continue
			}
			out = append(out, orphanResource(uid, procs))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// home reads the environment directory name under envs.
func (r *Runtime) home(name string) env.Resource {
	dir := r.envDir(name)
	res := env.Resource{Provider: "local", Kind: "home", ID: name}
	var m Manifest
	if err := readJSON(filepath.Join(dir, ManifestName), &m); err != nil {
		res.Local, res.HalfMade = true, halfNoManif
		if isNew(name) {
			res.HalfMade = halfNew
		}
		if fi, err := os.Lstat(dir); err == nil {
			res.CreatedAt = fi.ModTime().UTC()
		}
		return res
	}
	res.Labels = make(map[string]string, len(m.Labels)+3)
	for k, v := range m.Labels {
		res.Labels[k] = v
	}
	res.Labels[env.LabelOwner] = m.Owner
	res.Labels[env.LabelKey] = m.Key
	res.CreatedAt = m.CreatedAt.UTC()
	if !m.CreatedAt.IsZero() {
		res.Labels[env.LabelCreatedAt] = m.CreatedAt.UTC().Format(time.RFC3339)
	}
	if k, err := env.ParseKey(m.Key); err != nil {
		res.Problem = fmt.Sprintf("%s in %s names environment %q, which cannot be read: %v", ManifestName, dir, m.Key, err)
	} else {
		res.Key = k
	}
	if isNew(name) {
		res.HalfMade = halfNew
	}
	return res
}

// trashed lists what teardowns killed midway left in the trash.
func (r *Runtime) trashed() ([]env.Resource, error) {
	trash := filepath.Join(EnvsDir(r.Home), trashDirName)
	entries, err := os.ReadDir(trash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", trash, err)
	}
	var out []env.Resource
	for _, e := range entries {
		res := env.Resource{Provider: "local", Kind: "home", ID: trashDirName + "/" + e.Name(), Local: true, HalfMade: halfTrash}
		if fi, err := e.Info(); err == nil {
			res.CreatedAt = fi.ModTime().UTC()
		}
		out = append(out, res)
	}
	return out, nil
}

// heldUIDs returns the user ids the homes under envs hold (of any owner,
// and those Prepare is making): their processes are an environment's.
func (r *Runtime) heldUIDs() map[int]bool {
	held := map[int]bool{}
	entries, _ := os.ReadDir(EnvsDir(r.Home))
	for _, e := range entries {
		if e.Name() == trashDirName || !e.IsDir() {
			continue
		}
		var m Manifest
		if readJSON(filepath.Join(EnvsDir(r.Home), e.Name(), ManifestName), &m) == nil && m.Identity.Isolated() {
			held[m.Identity.UID] = true
		}
	}
	return held
}

// orphanOf returns nil if processes of uid may be killed as an
// environment's of this PRENV_HOME: uid is one runtime.local.uids gives
// (not the access group) and is claimed by this PRENV_HOME, or claimed by
// none and no account of the machine. Otherwise it says why not, wrapping
// env.ErrNotOurs: a login account's or another installation's processes
// are never touched.
func (r *Runtime) orphanOf(uid int) error {
	if r.Users == nil || uid <= r.Users.First || uid > r.Users.Last {
		return fmt.Errorf("user id %d is not one runtime.local.uids gives: %w", uid, env.ErrNotOurs)
	}
	if r.Users.ClaimDir != "" {
		data, err := os.ReadFile(r.Users.claimFile(uid))
		if err == nil {
			home, name, _ := strings.Cut(string(data), "\n")
			if home != r.Home {
				return fmt.Errorf("user id %d is claimed by environment %s of another PRENV_HOME (%s): %w", uid, name, home, env.ErrNotOurs)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("user id %d: its claim cannot be read (%v): %w", uid, err, env.ErrNotOurs)
		}
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Errorf("user id %d is the account %s of this machine: %w", uid, u.Username, env.ErrNotOurs)
	}
	// Claimed by none: after a reboot (claims live in /run) another
	// PRENV_HOME's restored apps run unclaimed too. Only a process that
	// works in this PRENV_HOME's environments proves the id is ours.
	if !r.worksHere(uid) {
		return fmt.Errorf("user id %d is claimed by no PRENV_HOME and none of its processes works in %s: perhaps another installation's, left: %w", uid, EnvsDir(r.Home), env.ErrNotOurs)
	}
	return nil
}

// worksHere reports whether a process of uid has its working directory
// in this PRENV_HOME's environments (a removed one included: the kernel
// shows it with " (deleted)").
func (r *Runtime) worksHere(uid int) bool {
	envs := EnvsDir(r.Home) + string(filepath.Separator)
	for _, p := range processesByUID()[uid] {
		cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.PID), "cwd"))
		if err == nil && strings.HasPrefix(strings.TrimSuffix(cwd, " (deleted)"), envs) {
			return true
		}
	}
	return false
}

func orphanResource(uid int, procs []process) env.Resource {
	sort.Slice(procs, func(i, j int) bool { return procs[i].Started.Before(procs[j].Started) })
	pids := make([]string, 0, len(procs))
	for i, p := range procs {
		if i == 5 {
			pids = append(pids, "...")
			break
		}
		pids = append(pids, strconv.Itoa(p.PID))
	}
	res := env.Resource{Provider: "local", Kind: "process", ID: strconv.Itoa(uid), Local: true,
		HalfMade: fmt.Sprintf("%s: %d running as user id %d (pid %s)", halfOrphan, len(procs), uid, strings.Join(pids, ", "))}
	if len(procs) > 0 {
		res.CreatedAt = procs[0].Started
	}
	return res
}

// Remove implements env.Inventory. A home is read again: nil if gone; an
// error wrapping env.ErrNotOurs, touching nothing, if its manifest names
// another owner or another environment than planned, or it was planned
// with a manifest that cannot be read now; otherwise it goes the way
// Teardown takes it. A process resource kills every process of its user
// id, only while the id is still an orphan of this PRENV_HOME (orphanOf)
// and no home here holds it, and gives up its claim.
func (r *Runtime) Remove(ctx context.Context, q env.Query, res env.Resource) error {
	if res.Provider != "local" {
		return fmt.Errorf("remove %s %s %s: not the local runtime's", res.Provider, res.Kind, res.ID)
	}
	switch res.Kind {
	case "home":
		return r.removeHome(ctx, q, res)
	case "process":
		uid, err := strconv.Atoi(res.ID)
		if err != nil || strconv.Itoa(uid) != res.ID {
			return fmt.Errorf("remove the processes of %q: not a user id", res.ID)
		}
		return r.removeOrphan(ctx, uid)
	}
	return fmt.Errorf("remove local %s %s: the local runtime has no such kind", res.Kind, res.ID)
}

func (r *Runtime) removeHome(ctx context.Context, q env.Query, res env.Resource) error {
	envs := EnvsDir(r.Home)
	if rest, ok := strings.CutPrefix(res.ID, trashDirName+"/"); ok {
		if !plainName(rest) {
			return fmt.Errorf("remove home %q: not a name in %s", res.ID, filepath.Join(envs, trashDirName))
		}
		gone := filepath.Join(envs, trashDirName, rest)
		if err := os.RemoveAll(gone); err != nil {
			return fmt.Errorf("remove %s: %w; remove it by hand", gone, err)
		}
		return nil
	}
	name := res.ID
	if !plainName(name) || name == trashDirName {
		return fmt.Errorf("remove home %q: not an environment directory's name", name)
	}
	dir := r.envDir(name)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove home %s: %w", name, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("remove home %s: %s is not a directory (a %v), prenv made none such: %w", name, dir, fi.Mode().Type(), env.ErrNotOurs)
	}
	var m Manifest
	err = readJSON(filepath.Join(dir, ManifestName), &m)
	switch {
	case err != nil && !res.Local:
		return fmt.Errorf("remove home %s: it was planned with its %s, which cannot be read now (%v): %w", name, ManifestName, err, env.ErrNotOurs)
	case err == nil && m.Owner != q.Owner:
		return fmt.Errorf("remove home %s: it belongs to owner %q, not %q: %w", name, m.Owner, q.Owner, env.ErrNotOurs)
	case err == nil && res.Labels[env.LabelKey] != "" && m.Key != res.Labels[env.LabelKey]:
		return fmt.Errorf("remove home %s: it is the home of %s now, not %s: %w", name, m.Key, res.Labels[env.LabelKey], env.ErrNotOurs)
	case err != nil:
		m = Manifest{} // ours by where it is: no user of its own is known
	}
	if isNew(name) {
		// Nothing runs in a home before it is in place: only prenv has
		// written it.
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w; remove it by hand", dir, err)
		}
		return nil
	}
	return r.teardown(ctx, name, m)
}

// removeOrphan kills every process of uid and gives up the claim of this
// PRENV_HOME on it, holding the lock under which ids are given, so that no
// environment is given uid meanwhile.
func (r *Runtime) removeOrphan(ctx context.Context, uid int) error {
	if r.Users == nil {
		return fmt.Errorf("remove the processes of user id %d: environments have no users of their own here (runtime.local.uids needs prenv to run as root): %w", uid, env.ErrNotOurs)
	}
	unlock, err := r.Users.lock(ctx, r.Home)
	if err != nil {
		return fmt.Errorf("remove the processes of user id %d: %w", uid, err)
	}
	defer unlock()
	if len(processesByUID()[uid]) == 0 {
		return nil // gone already
	}
	if err := r.orphanOf(uid); err != nil {
		return fmt.Errorf("remove the processes of user id %d: %w", uid, err)
	}
	if r.heldUIDs()[uid] {
		return fmt.Errorf("remove the processes of user id %d: an environment's home here holds it again; left ('prenv down' stops them)", uid)
	}
	var claimed string
	if data, err := os.ReadFile(r.Users.claimFile(uid)); err == nil && r.Users.ClaimDir != "" {
		_, claimed, _ = strings.Cut(string(data), "\n")
	}
	if err := killAllOf(Identity{UID: uid, GID: uid}, 15*time.Second); err != nil {
		return fmt.Errorf("remove the processes of user id %d: %w; the next sweep tries again", uid, err)
	}
	if claimed != "" {
		r.Users.release(uid, r.Home, claimed)
	}
	return nil
}

// plainName reports whether name is one path element.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, filepath.Separator)
}

// Renew implements env.Renewer: it moves the expires-at label in the
// manifest of k's home. It is nil if k has no home here, an error wrapping
// env.ErrNotOurs, changing nothing, if the home is another owner's or
// another environment's, or has no readable manifest.
func (r *Runtime) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	name := k.Name()
	dir := r.envDir(name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var m Manifest
	switch err := readJSON(filepath.Join(dir, ManifestName), &m); {
	case errors.Is(err, fs.ErrNotExist) && !exists(dir):
		return nil
	case err != nil:
		return fmt.Errorf("renew home %s: %s exists without a readable %s (%v): %w", name, dir, ManifestName, err, env.ErrNotOurs)
	case m.Owner != r.Owner:
		return fmt.Errorf("renew home %s: it belongs to owner %q, not %q: %w", name, m.Owner, r.Owner, env.ErrNotOurs)
	case m.Key != k.String():
		return fmt.Errorf("renew home %s: it is the home of %s, not %s: %w", name, m.Key, k, env.ErrNotOurs)
	}
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[env.LabelExpiresAt] = expiresAt.UTC().Format(time.RFC3339)
	if err := rewriteJSON(filepath.Join(dir, ManifestName), m); err != nil {
		return fmt.Errorf("renew home %s: %w", name, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// rewriteJSON replaces the file at path atomically with v, keeping its
// mode and owner; the new file is made fresh, never through a link left at
// its temporary name.
func rewriteJSON(path string, v any) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	data, err := jsonIndent(v)
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
