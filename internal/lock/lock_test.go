package lock

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRemove_StaleFileGoesHeldFileStays(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pr-1.lock")
	unlock, err := File(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := Remove(path); err != nil || removed {
		t.Fatalf("Remove of a held lock = %v, %v; want it kept", removed, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the held lock file is gone: %v", err)
	}
	unlock()
	if removed, err := Remove(path); err != nil || !removed {
		t.Fatalf("Remove of a free lock = %v, %v; want it removed", removed, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the free lock file is still there: %v", err)
	}
	if removed, err := Remove(path); err != nil || removed {
		t.Fatalf("Remove of a missing lock = %v, %v; want false, nil", removed, err)
	}
}

// A run waiting on a lock file that the sweeper removes must not end up
// holding the removed file while another run holds the new one.
func TestFile_WaiterOnARemovedFileLocksThePathAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pr-1.lock")
	first, err := File(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := File(context.Background(), path)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	// Once the waiter has the file open (two descriptors name it: the
	// holder's and the waiter's), remove it, then release the old lock.
	deadline := time.Now().Add(10 * time.Second)
	for openCount(t, path) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never opened the lock file")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	first()
	var second func()
	select {
	case second = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the lock")
	}
	defer second()
	if !Held(path) {
		t.Fatal("the waiter holds a lock, but not on the file the path names: a third run could lock the path too")
	}
}

// openCount is how many of this process's descriptors name path.
func openCount(t *testing.T, path string) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd to see the waiter open the file: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
