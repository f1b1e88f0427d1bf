package local

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// procAttr puts the app in its own process group, so that stopping it stops
// its children too, and asks for SIGTERM if prenv serve dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// waitExited waits until pid exits without reaping it: while it is an
// unreaped zombie its pid, and so its process group id, cannot be given to
// another process, so signalling the group is safe.
func waitExited(pid int) error {
	var info unix.Siginfo
	return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
}

// groupMembers returns the processes of process group pgid started, in the
// boot of ident, no earlier than the process ident names. While any member
// of a group lives its id cannot be reused, so such members belong to the
// group that process led.
func groupMembers(pgid int, ident string) []int {
	boot, start, ok := strings.Cut(ident, "/")
	if !ok {
		return nil
	}
	cur, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || strings.TrimSpace(string(cur)) != boot {
		return nil
	}
	leaderStart, err := strconv.ParseUint(start, 10, 64)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 20 {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		st, _ := strconv.ParseUint(f[19], 10, 64)
		if pgrp == pgid && st >= leaderStart {
			out = append(out, pid)
		}
	}
	return out
}

// identify returns what tells this process apart from any later one with
// the same pid: the boot and the process's start time.
func identify(pid int) string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + fields[19] // starttime, field 22
}
