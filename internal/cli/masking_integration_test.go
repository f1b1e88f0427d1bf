package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/testenv"
)

const demoMasking = `version: 1
golden:
  masking:
    salt: ${PRENV_MASKING_SALT}
    tables:
      people:
        full_name: person_name
        email: email
        phone: phone
        street: address
        postcode: redact
    keep: [people.city]
`

// golden build masks the demo's people with the configured rules before
// promotion: a clone never sees the source's emails, the same salt gives
// the same masked data, and a column added to the source that looks
// personal and no rule covers refuses the next build, the previous
// generation staying current.
func TestGoldenBuild_MasksWithTheRulesAndRefusesWhatNoRuleCovers(t *testing.T) {
	h := newHarness(t)
	h.dir = t.TempDir()
	os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte(demoMasking), 0o644)
	h.extra = append(h.extra, "PRENV_MASKING_SALT=a-test-salt-of-enough-length")
	seed := filepath.Join(t.TempDir(), "seed.sql")
	os.WriteFile(seed, []byte(testenv.DemoSQL(300)), 0o644)
	// No rules: refused, nothing promoted.
	empty := t.TempDir()
	saved := h.dir
	h.dir = empty
	if out, errs, code := h.run("golden", "build", "--from-sql", seed); code != 1 || !strings.Contains(errs, "people.email") || !strings.Contains(errs, "nothing was promoted") {
		t.Fatalf("a build from personal data without rules: exit %d\n%s%s", code, out, errs)
	}
	if ls := h.must("golden", "ls"); !strings.Contains(ls, "no golden generations") {
		t.Fatalf("the refused build promoted something:\n%s", ls)
	}
	h.dir = saved
	h.must("golden", "build", "--from-sql", seed)

	var gens []struct {
		Generation int `json:"generation"`
		Masking    struct {
			Columns []string `json:"columns"`
			Scan    string   `json:"scan"`
		} `json:"masking"`
		Rows  int64 `json:"rows"`
		Steps []struct {
			Name    string  `json:"name"`
			Seconds float64 `json:"seconds"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(h.must("golden", "ls", "-o", "json")), &gens); err != nil {
		t.Fatal(err)
	}
	if len(gens) != 1 || len(gens[0].Masking.Columns) != 5 || gens[0].Masking.Scan != "clean" {
		t.Fatalf("generations %+v; want one, with 5 masked columns and a clean scan", gens)
	}
	if gens[0].Rows < 300 || len(gens[0].Steps) < 5 || gens[0].Steps[4].Name != "mask" {
		t.Fatalf("generation's rows %d and steps %+v; want at least the 300 people, and each step with its time (the fifth is mask)", gens[0].Rows, gens[0].Steps)
	}
	h.must("up", "--pr", "1", "--sha", "c1")
	url := h.status(1).Database.URL
	if n := testenv.QueryInt(t, url, "SELECT count(*) FROM people WHERE email LIKE '%@example.test'"); n != 0 {
		t.Fatalf("the clone holds %d unmasked emails", n)
	}
	if n := testenv.QueryInt(t, url, "SELECT count(DISTINCT email) FROM people WHERE email LIKE '%@example.com'"); n != 300 {
		t.Fatalf("%d distinct masked emails, want 300 (unique stays unique)", n)
	}
	if n := testenv.QueryInt(t, url, "SELECT count(*) FROM orders o LEFT JOIN people p ON p.id = o.person_id WHERE p.id IS NULL"); n != 0 {
		t.Fatalf("%d orders lost their person", n)
	}
	// The source grows a column of emails no rule covers.
	grown := filepath.Join(t.TempDir(), "grown.sql")
	os.WriteFile(grown, []byte(testenv.DemoSQL(300)+"\nALTER TABLE people ADD COLUMN backup_email text;\nUPDATE people SET backup_email = 'backup' || id || '@mail.example.org';\n"), 0o644)
	// golden check says so without building.
	if out, errs, code := h.run("golden", "check", "--from-sql", grown); code != 1 || !strings.Contains(errs, "people.backup_email") {
		t.Fatalf("golden check of the grown source: exit %d\n%s%s", code, out, errs)
	}
	if out := h.must("golden", "check", "--from-sql", seed); !strings.Contains(out, "masked 5 columns; scan: clean; nothing was promoted") {
		t.Fatalf("golden check of the covered source: %s", out)
	}
	out, errs, code := h.run("golden", "build", "--from-sql", grown)
	if code != 1 || !strings.Contains(errs, "people.backup_email") || !strings.Contains(errs, "nothing was promoted") || strings.Contains(errs, "backup1@mail.example.org") {
		t.Fatalf("a build with an uncovered personal column: exit %d\n%s%s", code, out, errs)
	}
	if ls := h.must("golden", "ls"); !strings.Contains(ls, "1 (current)") || strings.Contains(ls, "\n2") {
		t.Fatalf("the refused build changed the generations:\n%s", ls)
	}
	// Reviewed and allowed: promoted, and the generation says so.
	h.must("golden", "build", "--from-sql", grown, "--allow-pii")
	if ls := h.must("golden", "ls"); !strings.Contains(ls, "allowed with --allow-pii") {
		t.Fatalf("golden ls does not show the allowed personal data:\n%s", ls)
	}
}
