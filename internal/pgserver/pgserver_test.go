package pgserver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func fakeBin(t *testing.T, version string, tools ...string) string {
	dir := t.TempDir()
	for _, tool := range tools {
		os.WriteFile(filepath.Join(dir, tool), []byte("#!/bin/sh\necho 'postgres (PostgreSQL) "+version+"'\n"), 0o755)
	}
	return dir
}

func TestFindBinaries_SaysWhatIsWrongAndHowToFixIt(t *testing.T) {
	all := []string{"postgres", "initdb", "pg_dump", "pg_restore"}
	cases := []struct {
		name, dir, want string
		ok              bool
	}{
		{"missing", t.TempDir(), "no postgres in", false},
		{"too old", fakeBin(t, "13.11", all...), "is PostgreSQL 13, prenv needs 14 or newer", false},
		{"incomplete", fakeBin(t, "16.2", "postgres", "initdb"), "pg_dump is missing", false},
		{"fine", fakeBin(t, "16.2 (Debian 16.2-1)", all...), "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := FindBinaries(context.Background(), c.dir)
			if c.ok {
				if err != nil || b.Major != 16 || b.Dir != c.dir {
					t.Fatalf("got %+v, %v", b, err)
				}
				return
			}
			if !errors.Is(err, ErrBinaries) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bin_dir") {
				t.Fatalf("err = %v, want %q and advice", err, c.want)
			}
		})
	}
}

func TestSocketDir_FallsBackToAShortPathWhenTooLong(t *testing.T) {
	short := "/var/lib/prenv/clones/pr-1/run"
	if got := SocketDir(short); got != short {
		t.Fatalf("SocketDir(%q) = %q", short, got)
	}
	long := "/" + strings.Repeat("deep/", 25) + "run"
	got := SocketDir(long)
	if got == long || len(got)+len("/.s.PGSQL.65535") >= 100 || got != SocketDir(long) {
		t.Fatalf("SocketDir(long) = %q: want a stable short path", got)
	}
}

func TestPID_IgnoresAStalePidFileNamingAnotherProgram(t *testing.T) {
	dir := t.TempDir()
	// What a reboot can leave: postmaster.pid naming a pid that is now
	// another program (here, this test).
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"+dir+"\n"), 0o600)
	s := Server{DataDir: dir}
	if pid, ok := s.PID(); ok {
		t.Fatalf("PID() = %d: a process that is not this directory's postmaster", pid)
	}
	if err := s.Stop(time.Second); err != nil {
		t.Fatalf("Stop with a stale pid file: %v", err)
	}
}
