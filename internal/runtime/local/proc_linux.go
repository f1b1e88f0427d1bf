package local

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procAttr puts a command in a session (and so a process group) of its
// own, so that stopping it stops its children too and none of them can
// join another command's group (a process may only change to a group of its
// own session); it asks for SIGTERM if prenv dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
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
	boot, rest, ok := strings.Cut(ident, "/")
	if !ok {
		return nil
	}
	// A third field, the user the leader ran as, keeps a stranger's group
	// that reused the number after every member died from being taken for
	// it (its leader started later too, so the time alone would not).
	start, uidText, withUID := strings.Cut(rest, "/")
	uid, _ := strconv.Atoi(uidText)
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
		if pgrp != pgid || st < leaderStart {
			continue
		}
		if withUID {
			if u, ok := realUID(pid); !ok || u != uid {
				continue
			}
		}
		out = append(out, pid)
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
	id := strings.TrimSpace(string(boot)) + "/" + fields[19] // starttime, field 22
	if uid, ok := realUID(pid); ok {
		id += "/" + strconv.Itoa(uid)
	}
	return id
}

// uids returns the real, effective and saved user ids of process pid;
// false for a process that is gone or a zombie (it runs nothing; its
// parent reaps it).
func uids(pid int) ([]int, bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "State:") && strings.Contains(line, "Z (zombie)") {
			return nil, false
		}
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			var out []int
			for _, x := range strings.Fields(rest) {
				if id, err := strconv.Atoi(x); err == nil && len(out) < 3 {
					out = append(out, id)
				}
			}
			return out, len(out) > 0
		}
	}
	return nil, false
}

// realUID returns the real user id process pid runs as.
func realUID(pid int) (int, bool) {
	ids, ok := uids(pid)
	if !ok {
		return 0, false
	}
	return ids[0], true
}

// waitGroupGone waits up to timeout until no process of the group that the
// process ident named led is left.
func waitGroupGone(pgid int, ident string, timeout time.Duration) bool {
	if pgid <= 0 || ident == "" {
		return true
	}
	deadline := time.Now().Add(timeout)
	for {
		if identify(pgid) != ident && len(groupMembers(pgid, ident)) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killUser kills every process whose real, effective or saved user id is
// uid, except the members of process group spare (0: none), until none is
// left or timeout passes; it returns how many it killed. Only for a user id
// that is an environment's own: every process of it is that environment's.
func killUser(uid, spare int, timeout time.Duration) int {
	if uid <= 0 {
		return 0
	}
	killed := 0
	deadline := time.Now().Add(timeout)
	for {
		found := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if ids, ok := uids(pid); !ok || !slices.Contains(ids, uid) {
				continue
			}
			if spare > 0 {
				if pgid, err := syscall.Getpgid(pid); err == nil && pgid == spare {
					continue
				}
			}
			found++
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		if found == 0 || time.Now().After(deadline) {
			return killed
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processUIDs returns the user ids (real, effective or saved) that some
// process runs as.
func processUIDs() map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ids, _ := uids(pid)
		for _, id := range ids {
			out[id] = true
		}
	}
	return out
}

// killAllOf kills every process of id's user: from a process running as
// that user, kill(-1, SIGKILL) reaches all of them at once (a process that
// forks fast cannot outrun it as it can a scan of /proc), repeated until
// none is left or timeout passes.
func killAllOf(id Identity, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !processUIDs()[id.UID] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of user %d are still running after %v", id.UID, timeout)
		}
		cmd := exec.Command("/bin/sh", "-c", "kill -9 -1") // the shell's own kill: kill(-1, SIGKILL)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.credential(), Setsid: true}
		_ = cmd.Run() // "no such process" is success; the check above decides
		time.Sleep(10 * time.Millisecond)
	}
}

// process is a running process as a sweep shows it.
type process struct {
	PID     int
	Started time.Time
}

// userHZ is the unit of the start times in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const userHZ = 100

// processesByUID returns the running processes of each user id (real,
// effective or saved), read in one pass over /proc.
func processesByUID() map[int][]process {
	var boot time.Time
	if stat, err := os.ReadFile("/proc/stat"); err == nil {
		for _, line := range strings.Split(string(stat), "\n") {
			if rest, ok := strings.CutPrefix(line, "btime "); ok {
				if s, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
					boot = time.Unix(s, 0)
				}
			}
		}
	}
	out := map[int][]process{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ids, ok := uids(pid)
		if !ok {
			continue
		}
		p := process{PID: pid}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !boot.IsZero() {
			s := string(stat)
			if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) >= 20 {
				if ticks, err := strconv.ParseInt(f[19], 10, 64); err == nil {
					p.Started = boot.Add(time.Duration(ticks) * time.Second / userHZ).UTC()
				}
			}
		}
		seen := map[int]bool{}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				out[id] = append(out[id], p)
			}
		}
	}
	return out
}
