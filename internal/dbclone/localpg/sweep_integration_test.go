package localpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/testenv"
)

// sweepRig is a home with a golden source and one clone of each kind the
// sweeper meets, made the way prenv or an interrupted run leaves them.
type sweepRig struct {
	home string
	c    *Cloner
	// pids of the servers of the complete clone, of the incomplete one
	// that still runs and of the other owner's.
	pid map[string]int
}

func byID(rs []env.Resource) map[string]env.Resource {
	out := map[string]env.Resource{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

func newSweepRig(t *testing.T) *sweepRig {
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	ctx := context.Background()
	c := newCloner(t, home, "prenv")
	s := &sweepRig{home: home, c: c, pid: map[string]int{}}
	clone := func(c *Cloner, pr int) {
		t.Helper()
		req := dbclonetest.Request(env.Key{PR: pr})
		if _, err := c.Clone(ctx, req); err != nil {
			t.Fatal(err)
		}
		pid, ok := pgserver.Server{DataDir: filepath.Join(c.dir(req.Name), "data")}.PID()
		if !ok {
			t.Fatalf("the server of %s does not run after Clone", req.Name)
		}
		s.pid[req.Name] = pid
	}
	clone(c, 1) // complete, ours
	// Another installation's clone in the same directory (two owners
	// never share a PRENV_HOME, but a copied one may hold both).
	other := newCloner(t, home, "other")
	other.FirstPort, other.LastPort = c.FirstPort, c.LastPort
	clone(other, 5)
	// Incomplete, yet its postgres runs.
	clone(c, 2)
	m, err := readManifest(c.dir("pr-2"))
	if err != nil {
		t.Fatal(err)
	}
	m.Complete = false
	if err := rewriteManifest(c.dir("pr-2"), m); err != nil {
		t.Fatal(err)
	}
	// What kill -9 of an up in the middle of the copy leaves: the manifest
	// of the clone, incomplete, and part of the golden data.
	g, err := golden.Current(home)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir("pr-4")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	if err := writeManifest(dir, Manifest{Owner: "prenv", Key: env.Key{PR: 4}.String(), Name: "pr-4", Generation: g.Number,
		CreatedAt: created, ExpiresAt: created.Add(time.Hour), Port: c.LastPort, Labels: env.Labels("prenv", env.Key{PR: 4}, created, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"PG_VERSION", "postgresql.conf"} {
		data, err := os.ReadFile(filepath.Join(g.DataDir(), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "data", f), data, 0o600)
	}
	// A directory without a manifest, and what a killed removal left.
	for _, d := range []string{c.dir("pr-6"), filepath.Join(c.trash(), "pr-7-abc")} {
		if err := os.MkdirAll(filepath.Join(d, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// answers reports whether something accepts connections on the port.
func answers(port int) bool {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && !strings.Contains(string(status), "zombie")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("postgres %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResources_ListsEveryCloneWithItsOwnerKeyTimesAndWhatIsHalfMade(t *testing.T) {
	s := newSweepRig(t)
	c := s.c
	rs, err := c.Resources(context.Background(), env.Query{Owner: "prenv", Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	got := byID(rs)
	want := []string{".trash/pr-7-abc", "pr-1", "pr-2", "pr-4", "pr-5", "pr-6"}
	if len(rs) != len(want) {
		t.Fatalf("listed %v, want %v", keys(got), want)
	}
	for _, id := range want {
		r, ok := got[id]
		if !ok {
			t.Fatalf("%s not listed; got %v", id, keys(got))
		}
		if r.Provider != "localpg" || r.Kind != "clone" {
			t.Errorf("%s is %s/%s, want localpg/clone", id, r.Provider, r.Kind)
		}
		if r.CreatedAt.IsZero() {
			t.Errorf("%s has no creation time", id)
		}
	}
	for id, owner := range map[string]string{"pr-1": "prenv", "pr-2": "prenv", "pr-4": "prenv", "pr-5": "other"} {
		r := got[id]
		m, _ := readManifest(c.dir(id))
		if r.Owner() != owner || r.Local || r.Key.String() != m.Key || !r.CreatedAt.Equal(m.CreatedAt) {
			t.Errorf("%s: owner %q local %v key %q created %v; want owner %q, key %q, created %v", id, r.Owner(), r.Local, r.Key, r.CreatedAt, owner, m.Key, m.CreatedAt)
		}
		if r.Labels[env.LabelExpiresAt] != m.ExpiresAt.Format(time.RFC3339) {
			t.Errorf("%s: expires-at label %q, want the manifest's %v", id, r.Labels[env.LabelExpiresAt], m.ExpiresAt)
		}
	}
	if got["pr-4"].CreatedAt.After(time.Now().Add(-2 * time.Hour)) {
		t.Errorf("pr-4 created %v, want its manifest's three hours ago", got["pr-4"].CreatedAt)
	}
	for _, id := range []string{"pr-1", "pr-5"} {
		if got[id].HalfMade != "" {
			t.Errorf("complete clone %s listed half-made: %s", id, got[id].HalfMade)
		}
	}
	if h := got["pr-4"].HalfMade; !strings.Contains(h, "never completed") || strings.Contains(h, "still runs") {
		t.Errorf("pr-4 half-made %q, want the copy named as never completed and no server", h)
	}
	if h := got["pr-2"].HalfMade; !strings.Contains(h, "never completed") || !strings.Contains(h, fmt.Sprintf("still runs (pid %d)", s.pid["pr-2"])) {
		t.Errorf("pr-2 half-made %q, want the copy named incomplete and its running postgres", h)
	}
	old := time.Now().Add(-5 * time.Hour).Truncate(time.Second)
	os.Chtimes(c.dir("pr-6"), old, old)
	rs, _ = c.Resources(context.Background(), env.Query{Owner: "prenv"})
	if r := byID(rs)["pr-6"]; !r.Local || !strings.Contains(r.HalfMade, "no readable "+ManifestName) || !r.CreatedAt.Equal(old) || r.Owner() != "" {
		t.Errorf("directory without a manifest: %+v; want it local, half-made for its manifest, created at its mtime %v", r, old)
	}
	if r := got[".trash/pr-7-abc"]; !r.Local || !strings.Contains(r.HalfMade, "removal was killed") {
		t.Errorf("trash leftover: %+v", r)
	}
}

func TestResources_LeavesOutACloneAnUpIsMakingNow(t *testing.T) {
	s := newSweepRig(t)
	unlock, err := lock.File(context.Background(), filepath.Join(s.c.Root(), ".pr-4.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	rs, err := s.c.Resources(context.Background(), env.Query{Owner: "prenv"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byID(rs)["pr-4"]; ok {
		t.Fatal("the incomplete clone an up holds is listed as a leftover")
	}
	err = s.c.Remove(context.Background(), env.Query{Owner: "prenv"}, env.Resource{Provider: "localpg", Kind: "clone", ID: "pr-4", HalfMade: halfCopy})
	if err == nil || !strings.Contains(err.Error(), "at work on it now") {
		t.Fatalf("Remove of a clone an up holds: %v, want it refused", err)
	}
	if _, err := os.Stat(filepath.Join(s.c.dir("pr-4"), ManifestName)); err != nil {
		t.Fatalf("the clone an up holds was touched: %v", err)
	}
}

func TestRemove_StopsTheServerAndRemovesOnlyWhatIsOurs(t *testing.T) {
	s := newSweepRig(t)
	c := s.c
	ctx := context.Background()
	q := env.Query{Owner: "prenv", Now: time.Now()}
	rs, err := c.Resources(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got := byID(rs)
	m1, _ := readManifest(c.dir("pr-1"))
	m5, _ := readManifest(c.dir("pr-5"))

	// Another owner's: refused, untouched, still serving.
	if err := c.Remove(ctx, q, got["pr-5"]); !errors.Is(err, env.ErrNotOurs) {
		t.Fatalf("Remove of another owner's clone: %v, want ErrNotOurs", err)
	}
	if !alive(s.pid["pr-5"]) || !answers(m5.Port) {
		t.Fatal("another owner's clone was stopped")
	}
	if _, err := os.Stat(filepath.Join(c.dir("pr-5"), ManifestName)); err != nil {
		t.Fatalf("another owner's clone was touched: %v", err)
	}

	for _, id := range []string{"pr-1", "pr-2", "pr-4", "pr-6", ".trash/pr-7-abc"} {
		if err := c.Remove(ctx, q, got[id]); err != nil {
			t.Fatalf("Remove %s: %v", id, err)
		}
		if _, err := os.Lstat(filepath.Join(c.Root(), id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after Remove (%v)", id, err)
		}
	}
	for _, id := range []string{"pr-1", "pr-2"} {
		waitGone(t, s.pid[id])
	}
	if answers(m1.Port) {
		t.Errorf("port %d of the removed clone still answers", m1.Port)
	}
	if left, _ := os.ReadDir(c.Root()); len(dirNames(left)) != 1 {
		t.Errorf("clones left: %v, want only the other owner's", dirNames(left))
	}
	// Removed out of band: nothing to do.
	if err := c.Remove(ctx, q, got["pr-1"]); err != nil {
		t.Fatalf("Remove of a clone already gone: %v", err)
	}
	// The sweep's view is stale: the name holds another environment now.
	req := dbclonetest.Request(env.Key{PR: 1})
	if _, err := c.Clone(ctx, req); err != nil {
		t.Fatal(err)
	}
	stale := got["pr-1"]
	stale.Labels = map[string]string{env.LabelOwner: "prenv", env.LabelKey: "acme/shop#1"}
	if err := c.Remove(ctx, q, stale); !errors.Is(err, env.ErrNotOurs) {
		t.Fatalf("Remove of a clone that holds another environment now: %v, want ErrNotOurs", err)
	}
	// Planned without its manifest, found with another owner's.
	os.MkdirAll(c.dir("pr-9"), 0o700)
	writeManifest(c.dir("pr-9"), Manifest{Owner: "other", Key: "#9", Name: "pr-9"})
	if err := c.Remove(ctx, q, env.Resource{Provider: "localpg", Kind: "clone", ID: "pr-9", Local: true}); !errors.Is(err, env.ErrNotOurs) {
		t.Fatalf("Remove of a directory that has another owner's manifest now: %v, want ErrNotOurs", err)
	}
	for _, bad := range []string{"..", "../prenv", ".trash/../pr-5", ""} {
		if err := c.Remove(ctx, q, env.Resource{Provider: "localpg", Kind: "clone", ID: bad, Local: true}); err == nil {
			t.Errorf("Remove of %q succeeded", bad)
		}
	}
	if _, err := os.Stat(c.dir("pr-5")); err != nil {
		t.Fatalf("another owner's clone went: %v", err)
	}
}

func dirNames(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func keys(m map[string]env.Resource) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRenew_MovesTheExpiryOfOursOnly(t *testing.T) {
	s := newSweepRig(t)
	c := s.c
	ctx := context.Background()
	path := filepath.Join(c.dir("pr-1"), ManifestName)
	before, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	if err := c.Renew(ctx, env.Key{PR: 1}, until); err != nil {
		t.Fatal(err)
	}
	m, _ := readManifest(c.dir("pr-1"))
	if !m.ExpiresAt.Equal(until) || m.Labels[env.LabelExpiresAt] != until.UTC().Format(time.RFC3339) || !m.Complete {
		t.Fatalf("after Renew: expires %v, label %q, complete %v; want %v", m.ExpiresAt, m.Labels[env.LabelExpiresAt], m.Complete, until)
	}
	after, _ := os.Lstat(path)
	so, sn := before.Sys().(*syscall.Stat_t), after.Sys().(*syscall.Stat_t)
	if before.Mode() != after.Mode() || so.Uid != sn.Uid || so.Gid != sn.Gid {
		t.Errorf("Renew changed the manifest's mode or owner: %v %d:%d -> %v %d:%d", before.Mode(), so.Uid, so.Gid, after.Mode(), sn.Uid, sn.Gid)
	}
	rs, _ := c.Resources(ctx, env.Query{Owner: "prenv"})
	if r := byID(rs)["pr-1"]; r.Labels[env.LabelExpiresAt] != until.UTC().Format(time.RFC3339) {
		t.Errorf("the sweep sees expires-at %q, want %v", r.Labels[env.LabelExpiresAt], until)
	}

	m5, _ := readManifest(c.dir("pr-5"))
	if err := c.Renew(ctx, env.Key{PR: 5}, until); !errors.Is(err, env.ErrNotOurs) {
		t.Fatalf("Renew of another owner's clone: %v, want ErrNotOurs", err)
	}
	if after, _ := readManifest(c.dir("pr-5")); !after.ExpiresAt.Equal(m5.ExpiresAt) {
		t.Fatal("Renew moved another owner's expiry")
	}
	if err := c.Renew(ctx, env.Key{PR: 6}, until); !errors.Is(err, env.ErrNotOurs) {
		t.Fatalf("Renew of a directory without a manifest: %v, want ErrNotOurs", err)
	}
	if err := c.Renew(ctx, env.Key{PR: 99}, until); err != nil {
		t.Fatalf("Renew of an environment without a clone: %v, want nil", err)
	}
}
