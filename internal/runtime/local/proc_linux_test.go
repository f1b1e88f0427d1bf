package local

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An app orphaned by a killed serve: its group's leader (the shell) is
// gone, a member lives on. killRecorded finds it by the record; a record
// from another boot touches nothing.
func TestKillRecorded_StopsAnOrphanedMemberAndNothingElse(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "sleep 300 & sleep 0.3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	leader := cmd.Process.Pid
	ident := identify(leader)
	if ident == "" {
		t.Fatal("cannot identify a running process")
	}
	cmd.Wait() // the leader exits; sleep 300 stays in its group
	members := groupMembers(leader, ident)
	if len(members) != 1 {
		t.Fatalf("members of the orphaned group: %v", members)
	}
	t.Cleanup(func() { syscall.Kill(members[0], syscall.SIGKILL) })
	boot, start, _ := strings.Cut(ident, "/")
	killRecorded(leader, "another-boot/"+start)
	killRecorded(leader, boot+"/999999999999") // started later than the member: not its leader
	startTime, _, _ := strings.Cut(start, "/")
	killRecorded(leader, boot+"/"+startTime+"/4242") // led by another user: a stranger's group
	if err := syscall.Kill(members[0], 0); err != nil {
		t.Fatalf("a record that does not match killed the process: %v", err)
	}
	killRecorded(leader, ident)
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(members[0], 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the orphaned member is still running")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
