package cli_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/pgserver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// normalize replaces what changes from run to run with placeholders.
func (h *harness) normalize(s string) string {
	s = strings.ReplaceAll(s, h.home, "$PRENV_HOME")
	s = strings.ReplaceAll(s, h.listen, "$PRENV_LISTEN")
	for _, r := range []struct{ re, with string }{
		{`postgres://app:[0-9a-f]+@127\.0\.0\.1:\d+/`, "postgres://app:PASSWORD@127.0.0.1:PORT/"},
		{`sql:\S+`, "sql:SEED"},
		{`\d+\.\d+s`, "N.NNs"},
		{`\d+\.\d [KMG]iB`, "SIZE"},
		{`(?m)^(pr-\d+\s+\d+\s+\w+\s+\S+\s+)\d+[smhd]`, "${1}AGE"},
		{`(?m)^(\d+ \(current\)\s+SIZE\s+(?:\d+|-)\s+)\d+[smhd]`, "${1}AGE"},
		{`(?m)^(\d+\s+SIZE\s+(?:\d+|-)\s+)\d+[smhd]`, "${1}AGE"},
		{`(?m)^(login:\s+prenv / )[0-9a-f]+`, "${1}PASSWORD"},
		{`(?m)(AGE\s+)1[4-9](\s)`, "${1}PG${2}"},
		{` {2,}`, "  "}, // column widths follow the values replaced above
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.with)
	}
	return s
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (go test ./internal/cli -run Golden -update rewrites it):\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestGoldenOutput_OfTheCommandsPeopleRead(t *testing.T) {
	h := newHarness(t)
	checkGolden(t, "help", h.must("--help"))
	checkGolden(t, "ls-empty", h.must("ls"))
	checkGolden(t, "golden-ls-empty", h.must("golden", "ls"))
	h.golden(10)
	h.must("up", "--pr", "1", "--sha", "0123456789abcdef0123")
	h.must("up", "--pr", "2", "--sha", "fedcba9876543210fedc")
	checkGolden(t, "ls", h.normalize(h.must("ls")))
	checkGolden(t, "status", h.normalize(h.must("status", "--pr", "1")))
	checkGolden(t, "golden-ls", h.normalize(h.must("golden", "ls")))
}

func TestGoldenBuild_FromADumpAndFromALiveDatabase(t *testing.T) {
	h := newHarness(t)
	h.golden(25)
	h.must("up", "--pr", "1")
	src := h.status(1).Database.URL
	sql(t, src, "WITH i AS (INSERT INTO orders (person_id, item, quantity, total_cents, ordered_at) VALUES (1, 'Only in the source', 1, 1, now()) RETURNING 1) SELECT count(*) FROM i")
	bin, _ := pgserver.FindBinaries(t.Context(), "")
	dump := filepath.Join(t.TempDir(), "prod.dump")
	if out, err := exec.Command(bin.Path("pg_dump"), "-Fc", "-f", dump, src).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v %s", err, out)
	}
	os.Chmod(filepath.Dir(dump), 0o755)
	if out := h.must("golden", "build", "--allow-pii", "--from-dump", dump); !strings.Contains(out, "generation 2") {
		t.Fatalf("build from dump: %s", out)
	}
	if out := h.must("golden", "build", "--allow-pii", "--from-url", src); !strings.Contains(out, "generation 3") {
		t.Fatalf("build from url: %s", out)
	}
	h.must("up", "--pr", "2")
	st := h.status(2)
	if st.Database.Generation != 3 {
		t.Fatalf("PR 2 cloned generation %d, want the newest, 3", st.Database.Generation)
	}
	if n := sql(t, st.Database.URL, "SELECT count(*) FROM orders WHERE item = 'Only in the source'"); n != 1 {
		t.Fatal("the row of the live source is not in the clone of the new generation")
	}
	if n := sql(t, st.Database.URL, "SELECT count(*) FROM people"); n != 25 {
		t.Fatalf("%d people", n)
	}
	// The clone made from generation 1 still works.
	if n := sql(t, src, "SELECT count(*) FROM people"); n != 25 {
		t.Fatalf("generation 1 clone: %d people", n)
	}
	ls := h.must("golden", "ls")
	if !strings.Contains(ls, "3 (current)") || !strings.Contains(ls, "dump:") || !strings.Contains(ls, "url:postgres://app:***@") {
		t.Fatalf("golden ls:\n%s", ls)
	}
	// golden.keep (2): generation 1 was retired when 3 was promoted, and
	// the clone made from it above still answered.
	if gens := h.goldenGens(); len(gens) != 2 || gens[0].Number != 2 {
		t.Fatalf("generations %+v: want 2 and 3 (golden.keep: 2)", gens)
	}
	if _, err := os.Stat(filepath.Join(h.home, "golden", "1")); !os.IsNotExist(err) {
		t.Fatalf("generation 1's directory: %v, want it removed", err)
	}
}
