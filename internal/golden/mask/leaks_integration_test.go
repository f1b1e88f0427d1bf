package mask_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/golden/mask"
)

// A review of the masked output found three ways a rule left a source
// value in place while the scanner, which skips covered columns, could not
// see it: a template over the source row, a JSON path reaching an object or
// an object's members, and a date in a text column in another form. Each
// row below carries source values that must all be gone after Apply.
func TestApply_LeavesNoSourceValueInTemplatesJSONObjectsOrTextDates(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	srv := server(t)
	ctx := context.Background()
	conn := database(t, srv, "app", `
CREATE TABLE people (id int PRIMARY KEY, full_name text, handle text, profile jsonb, born text);
INSERT INTO people VALUES
 (1, 'Realname Person', 'Realname1', '{"address": {"street": "1 Real Street", "city": "Realtown"}, "contacts": {"home": {"email": "home@corp.example"}}}', '02/03/1980'),
 (2, 'Other Realname', 'Realname2', '{"address": ["2 Real Street", "Realtown"], "contacts": [{"email": "list@corp.example"}]}', 'born in spring'),
 (3, NULL, 'Realname3', '{"address": "3 Real Street"}', '1980-02-03');`)
	rules := mask.Rules{Salt: "a-salt-of-enough-length", Tables: map[string]map[string]mask.Rule{"people": {
		"full_name": {Transformer: "person_name"},
		"handle":    {Transformer: "template", Template: "{{.full_name}} ({{.id}})"},
		"profile":   {Transformer: "json", JSON: map[string]string{"$.address": "address", "$.contacts[*].email": "email"}},
		"born":      {Transformer: "date_shift", Days: 30},
	}}}
	if _, err := mask.Apply(ctx, conn, rules); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT id, coalesce(full_name, ''), handle, profile::text, coalesce(born, 'NULL') FROM people ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		var name, handle, profile, born string
		if err := rows.Scan(&id, &name, &handle, &profile, &born); err != nil {
			t.Fatal(err)
		}
		all := strings.Join([]string{name, handle, profile, born}, " | ")
		for _, src := range []string{"Realname", "Real Street", "Realtown", "corp.example", "02/03/1980", "1980-02-03", "spring"} {
			if strings.Contains(all, src) {
				t.Errorf("row %d keeps the source's %q: %s", id, src, all)
			}
		}
		if id == 1 && handle != name+" (1)" {
			t.Errorf("row 1: handle %q, want the template over the masked name %q", handle, name)
		}
		if id == 1 && (len(born) != 10 || born[2] != '/' || born[5] != '/') {
			t.Errorf("row 1: born %q, want a date shifted in the column's own form (01/02/2006)", born)
		}
		if id == 2 && born != "NULL" {
			t.Errorf("row 2: born %q, want NULL for a text that reads as no date", born)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}
