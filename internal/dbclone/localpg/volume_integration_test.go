package localpg

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/testenv"
)

func TestClone_OnAReflinkFilesystemSharesBlocksWithTheGoldenData(t *testing.T) {
	if os.Getenv(testenv.ReflinkDirEnv) == "" {
		t.Skip("no reflink-capable volume: make test sets " + testenv.ReflinkDirEnv + " from scripts/reflink-volume.sh (root and xfsprogs on Linux)")
	}
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL+"CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 60000) g;")
	c := newCloner(t, home, "prenv")
	k := env.Key{PR: 1}
	db, err := c.Clone(context.Background(), dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	m, err := readManifest(filepath.Join(home, "clones", k.Name()))
	if err != nil || m.Copy != Reflink {
		t.Fatalf("manifest copy method %q (%v), want reflink", m.Copy, err)
	}
	if n := testenv.QueryInt(t, db.URL, "SELECT count(*) FROM filler"); n != 60000 {
		t.Fatalf("%d rows", n)
	}
	// Shared blocks: the clone and the golden data together use far less
	// than twice the golden data.
	g, _ := golden.Current(home)
	before := dfUsed(t, home)
	if _, err := c.Clone(context.Background(), dbclonetest.Request(env.Key{PR: 2})); err != nil {
		t.Fatal(err)
	}
	grew := dfUsed(t, home) - before
	if grew > g.SizeBytes/2 {
		t.Fatalf("a second clone used %d bytes of a %d-byte golden source: not sharing blocks", grew, g.SizeBytes)
	}
}

func dfUsed(t *testing.T, path string) int64 {
	out, err := exec.Command("df", "-B1", "--output=used", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(out))
	n, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	return n
}

func TestClone_TheDiskFillingUpRemovesThePartialClone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; CI runs as root")
	}
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	clones := filepath.Join(home, "clones")
	os.MkdirAll(clones, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=12m,mode=0755", "tmpfs", clones).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		testenv.StopServers(home)
		exec.Command("umount", clones).Run()
	})
	c := newCloner(t, home, "prenv")
	_, err := c.Clone(context.Background(), dbclonetest.Request(env.Key{PR: 1}))
	if err == nil || !strings.Contains(err.Error(), "full") || !strings.Contains(err.Error(), "partial clone was removed") {
		t.Fatalf("err = %v, want the disk named full and the partial clone removed", err)
	}
	if _, err := os.Stat(filepath.Join(clones, "pr-1")); !os.IsNotExist(err) {
		t.Fatalf("partial clone left behind: %v", err)
	}
	if list, _ := c.List(context.Background()); len(list) != 0 {
		t.Fatalf("List = %v", list)
	}
}
