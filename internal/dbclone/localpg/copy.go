package localpg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
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
// Files are given to u. It returns the method used. Directories are made in
// order, then files are copied by a few workers: a data directory holds
// thousands of small files and a reflink is one cheap ioctl each.
func copyTree(src, dst string, u pgserver.User, allowReflink bool) (CopyMethod, error) {
	type file struct {
		src, dst string
		mode     fs.FileMode
	}
	var files []file
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
			files = append(files, file{p, target, info.Mode().Perm()})
			return nil
		default:
			return nil // sockets, pipes: not part of a stopped data directory
		}
		if u.Switched() {
			return os.Lchown(target, u.UID, u.GID)
		}
		return nil
	})
	if err != nil {
		return Full, err
	}
	owner := [2]int{-1, -1}
	if u.Switched() {
		owner = [2]int{u.UID, u.GID}
	}
	copyOne := func(f file, method CopyMethod) error {
		if method == Reflink {
			return reflink(f.src, f.dst, f.mode, owner)
		}
		return plainCopy(f.src, f.dst, f.mode, owner)
	}
	method := Full
	if allowReflink {
		method = Reflink
	}
	if len(files) == 0 {
		return method, nil
	}
	// The first file tells whether this filesystem can reflink.
	if err := copyOne(files[0], method); errors.Is(err, errNoReflink) {
		method = Full
		if err := copyOne(files[0], method); err != nil {
			return method, err
		}
	} else if err != nil {
		return method, err
	}
	work := make(chan file)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := copyOne(f, method); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	var firstErr error
	for _, f := range files[1:] {
		select {
		case firstErr = <-errs:
		default:
		}
		if firstErr != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		select {
		case firstErr = <-errs:
		default:
		}
	}
	return method, firstErr
}

func plainCopy(src, dst string, mode fs.FileMode, owner [2]int) error {
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
	if owner[0] >= 0 {
		if err := out.Chown(owner[0], owner[1]); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

// isNoSpace reports whether err is the disk being full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
