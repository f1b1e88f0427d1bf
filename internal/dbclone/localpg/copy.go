package localpg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/prenv/prenv/internal/pgserver"
)

// CopyMethod says how a clone's files were copied.
type CopyMethod string

const (
	Reflink CopyMethod = "reflink" // copy-on-write: constant time, no space used until written
	Full    CopyMethod = "copy"    // plain copy: time and space grow with the data
)

// errNoReflink is returned by reflink when the filesystem cannot share
// blocks between files (ext4, tmpfs, across filesystems).
var errNoReflink = errors.New("filesystem cannot reflink")

// copyTree copies the directory src to dst (which must not exist), sharing
// blocks when the filesystem allows. allowReflink false forces a plain copy.
// Files are given to u. It returns the method used.
func copyTree(src, dst string, u pgserver.User, allowReflink bool) (CopyMethod, error) {
	method := Full
	if allowReflink {
		method = Reflink
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if method == Reflink {
				err := reflink(p, target, info.Mode().Perm())
				if errors.Is(err, errNoReflink) {
					method = Full
				} else if err != nil {
					return err
				}
			}
			if method == Full {
				if err := plainCopy(p, target, info.Mode().Perm()); err != nil {
					return err
				}
			}
		default:
			return nil // sockets, pipes: not part of a stopped data directory
		}
		if u.Switched() {
			return os.Lchown(target, u.UID, u.GID)
		}
		return nil
	})
	return method, err
}

func plainCopy(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	// Plain reads and writes: io.Copy would use copy_file_range, which
	// XFS and btrfs quietly turn into a reflink, and a forced plain copy
	// (Cloner.NoReflink) is meant to be one.
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	return out.Close()
}

// isNoSpace reports whether err is the disk being full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
