package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Issue 12, first slice: each up that migrates is watched, and status shows
// the newest migration's rehearsal report, also for a failed migration.
func TestUp_RecordsTheMigrationRehearsalAndStatusShowsIt(t *testing.T) {
	h := newHarness(t)
	h.golden(300)
	c1, c2, bad := h.demoRepo()
	h.must("up", "--pr", "1", "--sha", c1)
	type change struct {
		Kind, Object, Action string
	}
	var st struct {
		Migration *struct {
			Commit     string   `json:"commit"`
			Seconds    float64  `json:"seconds"`
			Failed     string   `json:"failed"`
			DiffBase   string   `json:"diff_base"`
			SchemaDiff []change `json:"schema_diff"`
			Golden     struct {
				Generation string `json:"generation"`
			} `json:"golden"`
		} `json:"migration"`
	}
	read := func() {
		t.Helper()
		st.Migration = nil
		if err := json.Unmarshal([]byte(h.must("status", "--pr", "1", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if st.Migration == nil || st.Migration.Commit != c1 || st.Migration.Seconds <= 0 || st.Migration.Golden.Generation != "1" || st.Migration.DiffBase != "golden" {
		t.Fatalf("status after the first up: migration %+v; want the report of the migration to %s on generation 1", st.Migration, c1)
	}
	h.must("up", "--pr", "1", "--sha", c2)
	read()
	// The diff starts from the golden generation: c1's column and index
	// are in it as well as c2's table.
	var diff []string
	for _, c := range st.Migration.SchemaDiff {
		diff = append(diff, c.Action+" "+c.Kind+" "+c.Object)
	}
	if want := "added column status,added index orders_ordered_at,added table reviews"; st.Migration.Commit != c2 || st.Migration.DiffBase != "golden" || strings.Join(diff, ",") != want {
		t.Fatalf("status after c2's migration (CREATE TABLE reviews): %+v\n got %s\nwant %s (the diff from the golden generation)", st.Migration, strings.Join(diff, ","), want)
	}
	// The same commit again migrates nothing: the report stays.
	h.must("up", "--pr", "1", "--sha", c2)
	read()
	if st.Migration == nil || st.Migration.Commit != c2 {
		t.Fatalf("status after an up that did not migrate: %+v; want c2's report still", st.Migration)
	}
	// A failed migration reports what it did up to the failure.
	if _, _, code := h.run("up", "--pr", "1", "--sha", bad); code == 0 {
		t.Fatal("the broken migration succeeded")
	}
	read()
	if st.Migration == nil || st.Migration.Commit != bad || st.Migration.Failed == "" {
		t.Fatalf("status after the failed migration: %+v; want its report with the failure", st.Migration)
	}
	if out := h.must("status", "--pr", "1"); !strings.Contains(out, "migration rehearsal (commit "+bad[:12]+")") {
		t.Fatalf("status text does not show the rehearsal:\n%s", out)
	}
	// migration report, for CI steps: the same report as markdown and JSON.
	if out := h.must("migration", "report", "--pr", "1", "-o", "markdown"); !strings.Contains(out, "### Migration rehearsal of pr-1 (commit "+bad[:12]+")") {
		t.Fatalf("migration report -o markdown:\n%s", out)
	}
	var rep struct {
		Commit string `json:"commit"`
		Failed string `json:"failed"`
	}
	if err := json.Unmarshal([]byte(h.must("migration", "report", "--pr", "1", "-o", "json")), &rep); err != nil || rep.Commit != bad || rep.Failed == "" {
		t.Fatalf("migration report -o json: %+v %v", rep, err)
	}
	h.refused(2, `-o "xml": want text, markdown, json or yaml`, "migration", "report", "--pr", "1", "-o", "xml")
	h.must("down", "--pr", "1")
}
