package pgserver

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// User is the operating-system user postgres and initdb run as. The zero
// value means the current user.
type User struct {
	Name     string
	UID, GID int
	// Groups are supplementary groups of the processes (the group that may
	// enter PRENV_HOME when prenv runs as root).
	Groups   []int
	switched bool
}

// Switched reports whether processes run as another user than prenv's own.
func (u User) Switched() bool { return u.switched }

// ResolveUser returns the user to run PostgreSQL as. When prenv is not root
// that is the current user. As root, postgres refuses to run, so runAs (for
// example "postgres") is looked up and used instead.
func ResolveUser(runAs string) (User, error) {
	if os.Geteuid() != 0 {
		return User{UID: os.Geteuid(), GID: os.Getegid()}, nil
	}
	if runAs == "" {
		return User{}, fmt.Errorf("prenv runs as root and PostgreSQL refuses to: set database.localpg.run_as to an unprivileged user (for example postgres)")
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return User{}, fmt.Errorf("prenv runs as root, so PostgreSQL runs as %q (database.localpg.run_as), but that user does not exist: create it (useradd --system %s) or name another", runAs, runAs)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return User{}, fmt.Errorf("database.localpg.run_as %q is root: PostgreSQL refuses to run as root, name an unprivileged user", runAs)
	}
	return User{Name: runAs, UID: uid, GID: gid, switched: true}, nil
}

// Prepare makes cmd run as u.
func (u User) Prepare(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if u.switched {
		groups := make([]uint32, len(u.Groups))
		for i, g := range u.Groups {
			groups[i] = uint32(g)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: groups}
	}
}

// Own gives path and everything below it to u (a no-op unless switched).
func (u User) Own(path string) error {
	if !u.switched {
		return nil
	}
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.UID, u.GID)
	})
}

// CheckReach returns an error if u cannot traverse every directory above
// path (a PRENV_HOME under /root, for example, is out of reach of the
// postgres user).
func (u User) CheckReach(path string) error {
	if !u.switched {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			mode := fi.Mode().Perm()
			ok := mode&0o001 != 0 ||
				int(st.Uid) == u.UID && mode&0o100 != 0 ||
				u.inGroup(int(st.Gid)) && mode&0o010 != 0
			if !ok {
				return fmt.Errorf("PostgreSQL runs as user %q and cannot enter %s (mode %v): put PRENV_HOME somewhere it can reach (for example /var/lib/prenv) or chmod o+x %s", u.Name, dir, mode, dir)
			}
		}
		if dir == "/" || dir == "." {
			return nil
		}
	}
}

func (u User) inGroup(gid int) bool {
	if gid == u.GID {
		return true
	}
	for _, g := range u.Groups {
		if g == gid {
			return true
		}
	}
	return false
}
