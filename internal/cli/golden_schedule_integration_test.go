package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goldenGen is a generation as 'prenv golden ls -o json' shows it.
type goldenGen struct {
	Number  int    `json:"generation"`
	Source  string `json:"source"`
	Masking *struct {
		Scan string `json:"scan"`
	} `json:"masking"`
}

func (h *harness) goldenGens() []goldenGen {
	h.t.Helper()
	var gens []goldenGen
	if err := json.Unmarshal([]byte(h.must("golden", "ls", "-o", "json")), &gens); err != nil {
		h.t.Fatal(err)
	}
	return gens
}

// Issue 11, section 4: prenv serve rebuilds the golden data from
// golden.source on golden.schedule, keeps golden.keep generations, and a
// column with emails added to the source blocks the next build while the
// previous generation stays current.
func TestServe_BuildsTheGoldenDataOnScheduleAndRefusesNewPersonalData(t *testing.T) {
	h := newHarness(t)
	src := filepath.Join(t.TempDir(), "production.sql")
	os.Chmod(filepath.Dir(src), 0o755)
	clean := "CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL, price_cents int NOT NULL);\n" +
		"INSERT INTO products SELECT i, 'SKU-' || i, 100 * i FROM generate_series(1, 50) i;\n"
	if err := os.WriteFile(src, []byte(clean), 0o644); err != nil {
		t.Fatal(err)
	}
	h.extra = append(h.extra, "PRENV_GOLDEN_SOURCE_SQL="+src, "PRENV_GOLDEN_SCHEDULE=@every 2s", "PRENV_SWEEP_INTERVAL=0s")
	var log syncBuffer
	cmd := h.command("serve")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()

	newest := func() int {
		gens := h.goldenGens()
		if len(gens) == 0 {
			return 0
		}
		return gens[len(gens)-1].Number
	}
	waitFor(t, 90*time.Second, func() bool { time.Sleep(200 * time.Millisecond); return newest() >= 3 })
	gens := h.goldenGens()
	if len(gens) != 2 || gens[0].Number != gens[1].Number-1 || !strings.HasPrefix(gens[1].Source, "sql:") || gens[1].Masking == nil || gens[1].Masking.Scan != "clean" {
		t.Fatalf("golden ls after three scheduled builds: %+v; want the newest two (golden.keep), clean, from golden.source", gens)
	}
	if !strings.Contains(log.String(), "the scheduled golden build promoted a generation") {
		t.Errorf("serve's log does not tell the scheduled builds:\n%s", log.String())
	}

	// Production gains a column of emails: the next build is refused with
	// the scanner's report, and the current generation stays current.
	drift := clean + "ALTER TABLE products ADD COLUMN buyer_email text;\n" +
		"UPDATE products SET buyer_email = 'buyer' || id || '@shopmail.com';\n"
	before := len(log.String())
	current := newest()
	if err := os.WriteFile(src, []byte(drift), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, func() bool {
		time.Sleep(200 * time.Millisecond)
		s := log.String()[before:]
		return strings.Contains(s, "the scheduled golden build failed") && strings.Contains(s, "products.buyer_email")
	})
	// A build that started before the change may have promoted one more.
	after := newest()
	if after > current+1 {
		t.Fatalf("generation %d was promoted after the source gained emails (current was %d)", after, current)
	}
	waitFor(t, 30*time.Second, func() bool {
		time.Sleep(200 * time.Millisecond)
		return strings.Count(log.String()[before:], "the scheduled golden build failed") >= 2
	})
	if n := newest(); n != after {
		t.Fatalf("generation %d promoted from a source with emails; want %d to stay current", n, after)
	}
}
