// Package lock serializes work across prenv processes sharing one
// PRENV_HOME with advisory file locks: the kernel drops them when a process
// dies, even by kill -9, so a crashed run never leaves an environment locked.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// File takes an exclusive lock on path, waiting until ctx is done. The
// returned function releases it. A lock file removed while this waited
// (the sweeper removes stale ones, see Remove) is opened again: the lock
// is only taken on the file the path names.
func File(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		for {
			err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, fmt.Errorf("wait for lock %s: %w", filepath.Base(path), ctx.Err())
			case <-time.After(delay):
			}
			delay = min(2*delay, 50*time.Millisecond)
		}
		if current(f, path) {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		// Removed (or replaced) between our open and our lock: the lock
		// is on a file nobody else will open again.
		f.Close()
	}
}

// current reports whether path still names the file f.
func current(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// Remove removes the lock file at path if no process holds it, taking it
// while it removes it so that no run can hold it at that moment (a run
// waiting on the removed file opens the path again, see File). It reports
// whether the file was removed; a missing file is (false, nil).
func Remove(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, nil // held: a run is at work
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if !current(f, path) {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("remove the lock file %s: %w", path, err)
	}
	return true, nil
}

// Held reports whether some process holds the lock on path now. A lock
// file that does not exist is not held.
func Held(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
