package scan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// suggested is the masking transformer (issue 11, section 1) that fits
// what a detector found. A column where the kind shows in only some values
// (under 90%), or more than one kind shows, is free text: redact it, as an
// email transformer would replace a whole note with an address.
var suggested = map[string]string{
	Email: "email", Phone: "phone", CreditCard: "credit_card", IBAN: "iban", SSN: "set_null", IP: "ip",
	PersonName: "person_name", "hint:email": "email", "hint:phone": "phone", "hint:ssn": "set_null",
	"hint:dob": "date_shift", "hint:birth": "date_shift", "hint:name": "person_name",
	"hint:address": "address", "hint:ip": "ip",
}

// Report writes findings for a person: one line per table.column with each
// detector, its match rate and a masked sample, the rule to add to
// golden.masking, and how to keep a column after review. Samples are
// already masked by Scan; Report prints nothing else of the data.
func Report(w io.Writer, findings []Finding) {
	if len(findings) == 0 {
		fmt.Fprintln(w, "no personal data found in the sampled columns")
		return
	}
	type line struct {
		table, column string
		found         []string
		rule          string
	}
	var lines []line
	for _, f := range findings {
		if len(lines) == 0 || lines[len(lines)-1].table != f.Table || lines[len(lines)-1].column != f.Column {
			rule := suggested[f.Detector]
			if f.Rate < 0.9 && !strings.HasPrefix(f.Detector, "hint:") {
				rule = "redact"
			}
			lines = append(lines, line{table: f.Table, column: f.Column, rule: rule})
		} else {
			lines[len(lines)-1].rule = "redact"
		}
		l := &lines[len(lines)-1]
		l.found = append(l.found, fmt.Sprintf("%s %s (%s)", f.Detector, percent(f.Rate), f.Sample))
	}
	cols := "columns"
	if len(lines) == 1 {
		cols = "column"
	}
	fmt.Fprintf(w, "personal data found in %d %s:\n", len(lines), cols)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  COLUMN\tFOUND\tADD TO golden.masking.tables")
	for _, l := range lines {
		rule := l.rule
		if rule == "" {
			rule = "redact"
		}
		fmt.Fprintf(tw, "  %s.%s\t%s\t%s: {%s: %s}\n", l.table, l.column, strings.Join(l.found, ", "), l.table, l.column, rule)
	}
	tw.Flush()
	fmt.Fprintln(w, "Mask each column with a rule in golden.masking in prenv.yaml, or, if a person has reviewed it")
	fmt.Fprintln(w, "and it is not personal, list it under golden.masking.keep (for example keep: ["+lines[0].table+"."+lines[0].column+"]).")
}

// percent prints a rate as people read it: 100%, 37%, 0.4%.
func percent(r float64) string {
	p := r * 100
	if p >= 1 || p == 0 {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}
