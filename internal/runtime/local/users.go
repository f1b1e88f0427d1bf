package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/prenv/prenv/internal/lock"
)

// Users gives each environment an unprivileged user of its own, like
// systemd's DynamicUser: when prenv runs as root, an environment's build,
// migrate and app run as a user id from [First, Last] that no other
// environment and no account of the machine has, so one environment's code
// can read neither another's files nor its processes' environment. First
// itself is no environment's: it is the group that may enter PRENV_HOME
// (given to the environments and to PostgreSQL as a supplementary group),
// so that PRENV_HOME stays closed to every other local user.
type Users struct {
	First, Last int
	// ClaimDir holds the machine-wide claims of user ids (a directory only
	// root may write, such as /run/prenv/uids); empty: ids are only unique
	// under one PRENV_HOME.
	ClaimDir string
}

// AccessGroup is the group id that may traverse PRENV_HOME.
func (u *Users) AccessGroup() int { return u.First }

// Identity is who an environment's commands run as.
type Identity struct {
	UID    int   `json:"uid"`
	GID    int   `json:"gid"`
	Groups []int `json:"groups,omitempty"`
}

// Isolated reports whether id is a user of its own (prenv runs as root),
// rather than prenv's own user.
func (id Identity) Isolated() bool { return id.UID > 0 }

// credential returns the process attributes that make a command run as id
// (none when id is prenv's own user).
func (id Identity) credential() *syscall.Credential {
	if !id.Isolated() {
		return nil
	}
	groups := make([]uint32, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: groups}
}

// chown gives path to id (nothing when id is prenv's own user).
func (id Identity) chown(path string) error {
	if !id.Isolated() {
		return nil
	}
	return os.Lchown(path, id.UID, id.GID)
}

// chownTree gives path and everything below it to id, never following a
// link, deepest first and path itself last: until path is the
// environment's, nothing below it is within its reach, so it cannot swap a
// directory for a link while the walk is under way (the caller makes sure
// path is prenv's alone until then).
func (id Identity) chownTree(path string) error {
	if !id.Isolated() {
		return nil
	}
	var paths []string
	if err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}); err != nil {
		return err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		if err := os.Lchown(paths[i], id.UID, id.GID); err != nil {
			return err
		}
	}
	return nil
}

// chownContents gives dir (kept prenv's while it runs) and what is below it
// to id: dir is closed first, so the walk cannot be raced.
func (id Identity) chownContents(dir string) error {
	if !id.Isolated() {
		return nil
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := os.Lchown(dir, os.Geteuid(), os.Getegid()); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return id.chownTree(dir)
}

// claimFile is the machine-wide record that uid is held by the
// environment name under home: several PRENV_HOMEs (or test runs) on one
// machine never hand out the same id.
func (u *Users) claimFile(uid int) string {
	return filepath.Join(u.ClaimDir, strconv.Itoa(uid))
}

// claimedByOther reports whether uid is held by another environment that
// still has it: a claim whose environment is gone, or has another id now,
// is stale.
func (u *Users) claimedByOther(uid int, home, name string) bool {
	if u.ClaimDir == "" {
		return false
	}
	data, err := os.ReadFile(u.claimFile(uid))
	if err != nil {
		return false
	}
	h, n, _ := strings.Cut(string(data), "\n")
	if h == home && n == name {
		return false
	}
	var m Manifest
	if readJSON(filepath.Join(EnvsDir(h), n, ManifestName), &m) != nil && readJSON(filepath.Join(EnvsDir(h), "."+n+".new", ManifestName), &m) != nil {
		return false
	}
	return m.Identity.UID == uid
}

func (u *Users) lock(ctx context.Context, home string) (func(), error) {
	if u.ClaimDir == "" {
		return lock.File(ctx, filepath.Join(EnvsDir(home), ".uids.lock"))
	}
	if err := os.MkdirAll(u.ClaimDir, 0o700); err != nil {
		return nil, fmt.Errorf("user id claims: %w", err)
	}
	if uid, _, err := ownerOf(u.ClaimDir); err != nil || uid != os.Geteuid() {
		return nil, fmt.Errorf("user id claims: %s is not prenv's own (owner %d): remove it", u.ClaimDir, uid)
	}
	return lock.File(ctx, filepath.Join(u.ClaimDir, ".lock"))
}

// claim records that environment name under home holds uid. It returns
// false, changing nothing, when another live environment holds it (after a
// reboot emptied the claims, say): the caller gives it another.
func (u *Users) claim(ctx context.Context, uid int, home, name string) (bool, error) {
	if u.ClaimDir == "" {
		return true, nil
	}
	unlock, err := u.lock(ctx, home)
	if err != nil {
		return false, err
	}
	defer unlock()
	if u.claimedByOther(uid, home, name) {
		return false, nil
	}
	return true, os.WriteFile(u.claimFile(uid), []byte(home+"\n"+name), 0o600)
}

// release gives uid up, if environment name under home holds it.
func (u *Users) release(uid int, home, name string) {
	if u.ClaimDir == "" || uid <= 0 {
		return
	}
	if data, err := os.ReadFile(u.claimFile(uid)); err == nil && string(data) == home+"\n"+name {
		os.Remove(u.claimFile(uid))
	}
}

// allocate returns a user id for environment name under home that no other
// environment holds (under this home, or under any on the machine through
// the claims), no account of the machine has and no process runs as: the
// least recently given free one, so an id just given up is reused last.
// The caller records it in the environment's manifest while holding the
// returned unlock.
func (u *Users) allocate(ctx context.Context, home, name string, taken map[int]string) (int, func(), error) {
	unlock, err := u.lock(ctx, home)
	if err != nil {
		return 0, nil, err
	}
	lastFile := filepath.Join(EnvsDir(home), ".uids.last")
	if u.ClaimDir != "" {
		lastFile = filepath.Join(u.ClaimDir, ".last")
	}
	last := 0
	if data, err := os.ReadFile(lastFile); err == nil {
		last, _ = strconv.Atoi(string(data))
	}
	running := processUIDs()
	sub := subordinate()
	n := u.Last - u.First // the ids First+1 .. Last
	start := last + 1
	if start <= u.First || start > u.Last {
		start = u.First + 1
	}
	for i := 0; i < n; i++ {
		uid := start + i
		if uid > u.Last {
			uid -= n
		}
		if _, used := taken[uid]; used || running[uid] || sub(uid) || u.claimedByOther(uid, home, name) {
			continue
		}
		if _, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			continue // an account of the machine: never ours to give
		}
		if err := os.WriteFile(lastFile, []byte(strconv.Itoa(uid)), 0o600); err != nil {
			unlock()
			return 0, nil, err
		}
		if u.ClaimDir != "" {
			if err := os.WriteFile(u.claimFile(uid), []byte(home+"\n"+name), 0o600); err != nil {
				unlock()
				return 0, nil, err
			}
		}
		return uid, unlock, nil
	}
	unlock()
	return 0, nil, fmt.Errorf("every user id of runtime.local.uids %d-%d is taken (%d environments here hold one, the rest other homes, accounts or running processes): bring down unused environments or widen the range", u.First, u.Last, len(taken))
}

// ownerOf returns the owner and group of path.
func ownerOf(path string) (uid, gid int, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, errors.New("no owner information")
	}
	return int(st.Uid), int(st.Gid), nil
}

// subordinate reports whether an id lies in a range of /etc/subuid or
// /etc/subgid: ids that containers of the machine's users map to.
func subordinate() func(int) bool {
	type span struct{ first, n int }
	var spans []span
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			parts := strings.Split(strings.TrimSpace(line), ":")
			if len(parts) != 3 {
				continue
			}
			first, err1 := strconv.Atoi(parts[1])
			n, err2 := strconv.Atoi(parts[2])
			if err1 == nil && err2 == nil {
				spans = append(spans, span{first, n})
			}
		}
	}
	return func(id int) bool {
		for _, s := range spans {
			if id >= s.first && id < s.first+s.n {
				return true
			}
		}
		return false
	}
}
