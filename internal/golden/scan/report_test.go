package scan_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/golden/scan"
)

func TestReport_OneLinePerColumnWithWhatToDo(t *testing.T) {
	var b bytes.Buffer
	scan.Report(&b, []scan.Finding{
		{Table: "orders", Column: "notes", Detector: "email", Rate: 0.3, Sample: "j***@e***.org"},
		{Table: "orders", Column: "notes", Detector: "phone", Rate: 0.004, Sample: "+1 *** *** **67"},
		{Table: "people", Column: "email", Detector: "email", Rate: 1, Sample: "a***@e***.test"},
		{Table: "people", Column: "street", Detector: "hint:address", Rate: 1, Sample: "1*** M*** C***"},
	})
	out := b.String()
	for _, want := range []string{
		"personal data found in 3 columns:",
		"orders.notes   email 30% (j***@e***.org), phone 0.4% (+1 *** *** **67)  orders: {notes: redact}",
		"people.email   email 100% (a***@e***.test)",
		"people: {email: email}",
		"people.street  hint:address 100% (1*** M*** C***)",
		"people: {street: address}",
		"golden.masking.keep",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report does not say %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "people.email"); n != 1 {
		t.Errorf("people.email on %d lines, want 1:\n%s", n, out)
	}
}

func TestReport_NothingFound(t *testing.T) {
	var b bytes.Buffer
	scan.Report(&b, nil)
	if got := b.String(); got != "no personal data found in the sampled columns\n" {
		t.Errorf("report of no findings = %q", got)
	}
}
