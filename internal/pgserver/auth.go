package pgserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// IdentMap is the pg_ident.conf map that lets prenv's own operating-system
// user, and the server's, connect as the superuser over the socket.
const IdentMap = "prenv"

// WriteAuth writes the pg_hba.conf and pg_ident.conf of a data directory
// prenv runs. There is no "trust" line: the superuser is reached over the
// socket by peer authentication, and only from prenv's own operating-system
// user or the server's (a local user who reaches the socket is still
// refused); every other role, and every connection over TCP, proves the
// role's password with SCRAM. allow lists networks besides loopback that
// may connect with a password.
func WriteAuth(dataDir string, u User, allow []string) error {
	var hba strings.Builder
	hba.WriteString("# written by prenv at every start: no trust; the superuser by peer from prenv's user only, everyone else by password\n")
	fmt.Fprintf(&hba, "local all %s peer map=%s\n", Superuser, IdentMap)
	hba.WriteString("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
	for _, cidr := range allow {
		fmt.Fprintf(&hba, "host all all %s scram-sha-256\n", cidr)
	}
	var ident strings.Builder
	ident.WriteString("# written by prenv: the operating-system users that may connect as the superuser\n")
	for _, name := range identNames(u) {
		fmt.Fprintf(&ident, "%s %s %s\n", IdentMap, name, Superuser)
	}
	for file, content := range map[string]string{"pg_hba.conf": hba.String(), "pg_ident.conf": ident.String()} {
		path := filepath.Join(dataDir, file)
		// The data directory is the server's user's: whatever is at the
		// temporary name goes, and the file is made new, never through a link.
		os.Remove(path + ".tmp")
		f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		_, err = f.WriteString(content)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		if err := u.Own(path + ".tmp"); err != nil {
			return err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	return nil
}

// identNames are the names of prenv's operating-system user and of the
// server's: peer authentication compares names, not ids.
func identNames(u User) []string {
	var names []string
	if cur, err := user.Current(); err == nil {
		names = append(names, cur.Username)
	}
	if u.switched && u.Name != "" && (len(names) == 0 || names[0] != u.Name) {
		names = append(names, u.Name)
	}
	return names
}

// SocketDir returns preferred if a socket path inside it fits the kernel's
// limit (about 107 bytes), else a short directory below SocketBase, so that
// a deep PRENV_HOME still works. The directory is made by PrepareSocketDir.
func SocketDir(preferred string) string {
	if len(preferred)+len("/.s.PGSQL.65535") < 100 {
		return preferred
	}
	sum := sha256.Sum256([]byte(preferred))
	return filepath.Join(SocketBase(), hex.EncodeToString(sum[:])[:16])
}

// SocketBase is the directory of prenv's own that holds the socket
// directories of servers whose preferred one is too long: in the temp
// directory, one per operating-system user.
func SocketBase() string {
	return filepath.Join(os.TempDir(), "prenv-sockets-"+strconv.Itoa(os.Geteuid()))
}

// PrepareSocketDir makes dir private to the server's user u. prenv never
// uses a directory it did not make itself: a socket directory made by
// another local user would let that user reach the server's socket. The
// directory and, for one below SocketBase, the base must be real
// directories (not links) owned by prenv's user (or u) and writable by no
// one else; otherwise it refuses, saying what to remove.
func PrepareSocketDir(dir string, u User) error {
	if filepath.Dir(dir) == SocketBase() {
		// Others may traverse the base (the server's user must), never list
		// or write it.
		if err := ownedDir(SocketBase(), 0o711, []int{os.Geteuid()}); err != nil {
			return err
		}
	}
	if err := ownedDir(dir, 0o700, []int{os.Geteuid(), u.UID}); err != nil {
		return err
	}
	return u.Own(dir)
}

// ownedDir makes dir with mode, or checks that the one there is a real
// directory owned by one of owners and not writable by group or others
// (then it is given mode).
func ownedDir(dir string, mode os.FileMode, owners []int) error {
	err := os.Mkdir(dir, mode)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make socket directory %s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	ours := false
	for _, o := range owners {
		if st != nil && int(st.Uid) == o {
			ours = true
		}
	}
	if !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 || !ours {
		return fmt.Errorf("refusing socket directory %s: it was not made by prenv (a %v owned by uid %d); another local user could reach the database through it: remove it, or give PRENV_HOME a shorter path", dir, fi.Mode().Type(), owner(st))
	}
	if fi.Mode().Perm() != mode {
		if fi.Mode().Perm()&0o022 != 0 && int(st.Uid) != os.Geteuid() {
			return fmt.Errorf("refusing socket directory %s: mode %v lets others write it: remove it", dir, fi.Mode().Perm())
		}
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("socket directory %s: %w", dir, err)
		}
	}
	return nil
}

func owner(st *syscall.Stat_t) int {
	if st == nil {
		return -1
	}
	return int(st.Uid)
}
