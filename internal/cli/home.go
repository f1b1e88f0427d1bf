package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
)

// uidClaims is the machine-wide record of the user ids environments hold,
// shared by every PRENV_HOME on the machine (root's alone; emptied by a
// reboot, after which each environment claims its id again).
const uidClaims = "/run/prenv/uids"

// accessGroup is, when prenv runs as root, the group that may enter
// PRENV_HOME: the environments' users and PostgreSQL get it as a
// supplementary group, no other local user has it. 0 when prenv is not
// root (then PRENV_HOME is its user's alone).
func accessGroup(cfg config.Config) int {
	if os.Geteuid() != 0 {
		return 0
	}
	first, _, err := cfg.Runtime.Local.UIDRange()
	if err != nil {
		return 0
	}
	return first
}

// secureHome makes PRENV_HOME and gives it its modes: 0700 (0710 to the
// access group as root), prenv's database and files its user's alone, and
// the golden data and the clones open to PostgreSQL's user only. Applied
// at every start, so a home made by an older prenv (0755, a 0644 database)
// is closed too.
func secureHome(cfg config.Config) error {
	home := cfg.Home
	if err := os.MkdirAll(home, 0o700); err != nil {
		return fmt.Errorf("PRENV_HOME %s: %w", home, err)
	}
	g := accessGroup(cfg)
	if g == 0 {
		if err := os.Chmod(home, 0o700); err != nil {
			return fmt.Errorf("PRENV_HOME %s: %w", home, err)
		}
	} else {
		if err := os.Chown(home, 0, g); err != nil {
			return fmt.Errorf("PRENV_HOME %s: %w", home, err)
		}
		if err := os.Chmod(home, 0o710); err != nil {
			return fmt.Errorf("PRENV_HOME %s: %w", home, err)
		}
	}
	pgGID := -1
	if g != 0 && cfg.Database.Provider == "localpg" {
		if u, err := user.Lookup(cfg.Database.LocalPG.RunAs); err == nil {
			pgGID, _ = strconv.Atoi(u.Gid)
		}
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		return fmt.Errorf("PRENV_HOME %s: %w", home, err)
	}
	for _, e := range entries {
		p := filepath.Join(home, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			continue
		}
		switch {
		case e.Name() == "envs":
			// The local runtime gives each environment its own way in.
		case (e.Name() == "golden" || e.Name() == "clones") && pgGID >= 0:
			if err := os.Chown(p, 0, pgGID); err != nil {
				return err
			}
			if err := os.Chmod(p, 0o710); err != nil {
				return err
			}
		default:
			if err := os.Chmod(p, fi.Mode().Perm()&^0o077); err != nil {
				return err
			}
		}
	}
	return nil
}

// openStore opens prenv's database, which holds every environment's
// database URL: it and SQLite's -wal and -shm files are prenv's user's
// alone (SQLite gives the latter the database file's mode).
func openStore(ctx context.Context, path string) (store.Store, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("close %s to other users: %w", p, err)
		}
	}
	return sqlite.Open(ctx, path)
}

// noteOnce calls say the first time it is called for marker under home.
func noteOnce(home, marker string, say func()) {
	path := filepath.Join(home, marker)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return // said before (or home is not writable: nothing to remember it in)
	}
	f.Close()
	say()
}
