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
// link.
func (id Identity) chownTree(path string) error {
	if !id.Isolated() {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id.UID, id.GID)
	})
}

// allocate returns a user id for environment name that no other environment
// under home holds and no account of the machine has: the one recorded for
// it, else the least recently given free one (so an id just given up is
// reused last). The caller records it in the environment's manifest while
// holding the returned unlock.
func (u *Users) allocate(ctx context.Context, home string, taken map[int]string) (int, func(), error) {
	unlock, err := lock.File(ctx, filepath.Join(EnvsDir(home), ".uids.lock"))
	if err != nil {
		return 0, nil, err
	}
	last := 0
	if data, err := os.ReadFile(filepath.Join(EnvsDir(home), ".uids.last")); err == nil {
		last, _ = strconv.Atoi(string(data))
	}
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
		if _, used := taken[uid]; used {
			continue
		}
		if _, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			continue // an account of the machine: never ours to give
		}
		if err := os.WriteFile(filepath.Join(EnvsDir(home), ".uids.last"), []byte(strconv.Itoa(uid)), 0o600); err != nil {
			unlock()
			return 0, nil, err
		}
		return uid, unlock, nil
	}
	unlock()
	return 0, nil, fmt.Errorf("every user id of runtime.local.uids %d-%d is taken (%d environments hold one): bring down unused environments or widen the range", u.First, u.Last, len(taken))
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
