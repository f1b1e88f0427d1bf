package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// record writes the manifest of environment name under home holding uid, as
// Prepare does.
func record(t *testing.T, home, name string, uid int) {
	t.Helper()
	dir := filepath.Join(EnvsDir(home), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, ManifestName), Manifest{Owner: "t", Name: name, Identity: Identity{UID: uid}}, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUsers_NoTwoEnvironmentsOfAnyHomeHoldOneID(t *testing.T) {
	ctx := context.Background()
	// Ids far from anything of this machine's.
	u := &Users{First: 1_900_000_000, Last: 1_900_000_002, ClaimDir: t.TempDir()}
	homes := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	got := map[int]string{}
	for i, home := range homes[:2] {
		os.MkdirAll(EnvsDir(home), 0o700)
		uid, unlock, err := u.allocate(ctx, home, "pr-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		record(t, home, "pr-1", uid)
		unlock()
		if other, dup := got[uid]; dup {
			t.Fatalf("home %d got id %d, which %s holds", i, uid, other)
		}
		got[uid] = home
		if uid <= u.First || uid > u.Last {
			t.Fatalf("id %d outside %d-%d (the first is the access group)", uid, u.First+1, u.Last)
		}
	}
	os.MkdirAll(EnvsDir(homes[2]), 0o700)
	if _, _, err := u.allocate(ctx, homes[2], "pr-1", nil); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("a third environment with two ids to give: err = %v, want every id taken", err)
	}
	// An environment that is gone (its home removed without a down) no
	// longer holds its id.
	os.RemoveAll(homes[0])
	uid, unlock, err := u.allocate(ctx, homes[2], "pr-1", nil)
	if err != nil {
		t.Fatalf("after the first home went: %v", err)
	}
	unlock()
	if got[uid] != homes[0] {
		t.Fatalf("got id %d, want the one the removed home held", uid)
	}
}

func TestUsers_AnIDAProcessRunsAsIsNotGiven(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting a process as another user needs root; CI runs as root")
	}
	u := &Users{First: 1_900_000_010, Last: 1_900_000_012, ClaimDir: t.TempDir()}
	busy := u.First + 1
	sleep := exec.Command("sleep", "30")
	sleep.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(busy), Gid: uint32(busy)}}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	home := t.TempDir()
	os.MkdirAll(EnvsDir(home), 0o700)
	uid, unlock, err := u.allocate(context.Background(), home, "pr-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if uid == busy {
		t.Fatalf("got id %d, which a running process has (a leftover of an environment that held it)", uid)
	}
	// Teardown's kill reaches every process of the id.
	if err := killAllOf(Identity{UID: busy, GID: busy}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	sleep.Wait()
	if processUIDs()[busy] {
		t.Fatal("a process of the id outlived killAllOf")
	}
}
