package scan

import (
	"fmt"
	"strings"
	"testing"
)

func TestColumnHint_MatchesWordsOfTheNameNotSubstrings(t *testing.T) {
	cases := []struct {
		table, column string
		category      byte
		want          string
	}{
		{"orders", "customer_email", 'S', "email"},
		{"orders", "customerEmail", 'S', "email"},
		{"users", "email_address", 'S', "email"},
		{"sessions", "ip_address", 'S', "ip"},
		{"sessions", "client_ip", 'I', "ip"},
		{"sessions", "ipv4", 'S', "ip"},
		{"people", "phone", 'N', "phone"},
		{"people", "mobile_phone_number", 'S', "phone"},
		{"people", "ssn", 'S', "ssn"},
		{"people", "social_security_number", 'N', "ssn"},
		{"people", "dob", 'D', "dob"},
		{"people", "date_of_birth", 'D', "birth"},
		{"people", "birthday", 'S', "birth"},
		{"people", "street", 'S', "address"},
		{"people", "postcode", 'S', "address"},
		{"people", "zip_code", 'S', "address"},
		{"orders", "shipping_address", 'S', "address"},
		{"people", "first_name", 'S', "name"},
		{"people", "full_name", 'S', "name"},
		{"people", "surname", 'S', "name"},
		{"orders", "customer_name", 'S', "name"},
		{"users", "name", 'S', "name"},
		{"app_customers", "name", 'S', "name"},
		{"k8s", "namespace", 'S', ""},
		{"products", "name", 'S', ""},
		{"products", "product_name", 'S', ""},
		{"uploads", "file_name", 'S', ""},
		{"people", "zip", 'S', "address"},
		{"skus", "zipper_size", 'S', ""},
		{"orders", "shipping_ip_region", 'S', "ip"},
		{"people", "email_id", 'N', ""},
		{"people", "email_verified", 'B', ""},
		{"people", "email_verified_at", 'D', ""},
		{"people", "email_status", 'S', ""},
		{"people", "phone_count", 'N', ""},
		{"people", "address_type", 'S', ""},
		{"people", "emailed", 'S', ""},
		{"people", "email_hash", 'S', "email"},
		{"people", "created_at", 'D', ""},
		{"people", "email", 'D', ""},
		{"people", "name", 'N', ""},
		{"people", "tipping", 'S', ""},
		{"people", "description", 'S', ""},
	}
	for _, c := range cases {
		t.Run(c.table+"."+c.column+"/"+string(c.category), func(t *testing.T) {
			if got := columnHint(c.table, c.column, c.category); got != c.want {
				t.Errorf("columnHint(%q, %q, %c) = %q, want %q", c.table, c.column, c.category, got, c.want)
			}
		})
	}
}

func rows(vs ...string) values {
	out := make(values, len(vs))
	for i, v := range vs {
		out[i] = []string{v}
	}
	return out
}

func repeat(n int, f func(i int) string) values {
	out := make(values, n)
	for i := range out {
		out[i] = []string{f(i)}
	}
	return out
}

func TestJudge_AHintAloneNeedsRealLookingValues(t *testing.T) {
	col := column{name: "date_of_birth", category: 'D'}
	f := judge("people", "people", col, repeat(100, func(i int) string { return fmt.Sprintf("19%02d-03-04", i%90+10) }), DefaultMinRate)
	if len(f) != 1 || f[0].Detector != "hint:birth" || f[0].Rate != 1 {
		t.Fatalf("date_of_birth with dates: %+v, want one hint:birth at 100%%", f)
	}
	if strings.Contains(f[0].Sample, "-03-04") {
		t.Errorf("hint sample %q shows the value", f[0].Sample)
	}
	for name, vals := range map[string]values{
		"placeholders":   repeat(100, func(i int) string { return []string{"", "n/a", "unknown", "***"}[i%4] }),
		"one default":    repeat(100, func(int) string { return "redacted-by-default" }),
		"no rows at all": nil,
	} {
		if f := judge("people", "people", column{name: "street", category: 'S'}, vals, DefaultMinRate); len(f) != 0 {
			t.Errorf("street with %s: %+v, want no finding", name, f)
		}
	}
}

func TestJudge_AValueDetectorReplacesTheHint(t *testing.T) {
	f := judge("orders", "orders", column{name: "customer_email", category: 'S'}, repeat(50, func(i int) string { return fmt.Sprintf("c%d@example.org", i) }), DefaultMinRate)
	if len(f) != 1 || f[0].Detector != Email || f[0].Sample != "c***@e***.org" {
		t.Fatalf("customer_email: %+v, want one email finding with sample c***@e***.org", f)
	}
}

func TestJudge_RandomLongNumbersAreNotCards(t *testing.T) {
	// One in ten of these passes Luhn, twice the default MinRate.
	vals := repeat(1000, func(i int) string { return fmt.Sprintf("4%015d", uint64(i)*7919*104729%1_000_000_000_000_000) })
	if f := judge("events", "events", column{name: "external_ref", category: 'N'}, vals, DefaultMinRate); len(f) != 0 {
		t.Fatalf("random 16-digit numbers: %+v, want no finding", f)
	}
	cards := repeat(10, func(i int) string { return []string{"4111111111111111", "5500000000000004", "4242424242424242"}[i%3] })
	if f := judge("payments", "payments", column{name: "pan", category: 'S'}, cards, DefaultMinRate); len(f) != 1 || f[0].Detector != CreditCard {
		t.Fatalf("card numbers: %+v, want a credit_card finding", f)
	}
}

func TestJudge_MinRateDecides(t *testing.T) {
	vals := repeat(100, func(i int) string {
		if i < 3 {
			return fmt.Sprintf("write to user%d@example.org please", i)
		}
		return "delivered to the front door"
	})
	if f := judge("orders", "orders", column{name: "notes", category: 'S'}, vals, DefaultMinRate); len(f) != 0 {
		t.Errorf("3%% emails at MinRate 5%%: %+v, want none", f)
	}
	if f := judge("orders", "orders", column{name: "notes", category: 'S'}, vals, 0.01); len(f) != 1 || f[0].Rate != 0.03 {
		t.Errorf("3%% emails at MinRate 1%%: %+v, want one finding at 0.03", f)
	}
}
