package mask

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func run(t *testing.T, salt, name string, r Rule, col kind, in string) string {
	t.Helper()
	r.Transformer = name
	out, ok := transformers[name].apply(newKeyed(salt), &r, col, in)
	if !ok {
		t.Fatalf("%s(%q) = NULL", name, in)
	}
	return out
}

func luhnValid(s string) bool {
	return luhnDigit(s[:len(s)-1]) == int(s[len(s)-1]-'0')
}

func TestTransformers_AreDeterministicPerSaltAndKeepTheirFormat(t *testing.T) {
	cases := []struct {
		name string
		col  kind
		in   string
		re   string
	}{
		{"email", kindText, "Alice.Smith@corp.example", `^[a-z]+\.[0-9a-f]{16}@example\.com$`},
		{"hash", kindText, "secret", `^[0-9a-f]{32}$`},
		{"hash", kindUUID, "0b5c6a0e-3a43-4a4f-9a43-8f0e0b5c6a0e", `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`},
		{"person_name", kindText, "Jean Dupont", `^[A-Z][a-z]+ [A-Z][a-z]+$`},
		{"first_name", kindText, "Jean", `^[A-Z][a-z]+$`},
		{"last_name", kindText, "Dupont", `^[A-Z][a-z]+$`},
		{"phone", kindText, "+44 20 7946 0018", `^\+1-[2-9]\d\d-555-01\d\d$`},
		{"address", kindText, "10 Downing Street, London", `^\d{1,3} [A-Z][a-z]+( [A-Z][a-z]+)*, [A-Z][a-z]+ \d{5}$`},
		{"credit_card", kindText, "5500 0000 0000 0004", `^400000\d{10}$`},
		{"iban", kindText, "GB82WEST12345698765432", `^DE\d{20}$`},
		{"redact", kindText, "anything", `^\[redacted\]$`},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+string(c.col), func(t *testing.T) {
			a := run(t, "salt-1", c.name, Rule{}, c.col, c.in)
			if !regexp.MustCompile(c.re).MatchString(a) {
				t.Errorf("%s(%q) = %q, want it to match %s", c.name, c.in, a, c.re)
			}
			if a == c.in {
				t.Errorf("%s(%q) returned its input", c.name, c.in)
			}
			if again := run(t, "salt-1", c.name, Rule{}, c.col, c.in); again != a {
				t.Errorf("%s(%q) = %q then %q with the same salt", c.name, c.in, a, again)
			}
			if c.name == "redact" {
				return
			}
			other := run(t, "salt-2", c.name, Rule{}, c.col, c.in)
			different := run(t, "salt-1", c.name, Rule{}, c.col, c.in+"x")
			if other == a && different == a {
				t.Errorf("%s(%q) = %q whatever the salt or input", c.name, c.in, a)
			}
		})
	}
}

func TestEmail_SameMailboxWhateverTheCase(t *testing.T) {
	a := run(t, "s", "email", Rule{}, kindText, "Alice@Example.org")
	b := run(t, "s", "email", Rule{}, kindText, "alice@example.org ")
	if a != b {
		t.Errorf("email of the same mailbox in two cases: %q and %q", a, b)
	}
}

func TestInjectiveTransformers_GiveNoCollisionOn200000Inputs(t *testing.T) {
	for _, name := range []string{"email", "hash", "iban"} {
		seen := map[string]string{}
		k := newKeyed("salt")
		for i := 0; i < 200_000; i++ {
			in := "user" + strconv.Itoa(i) + "@corp.example"
			out, _ := transformers[name].apply(k, &Rule{}, kindText, in)
			if prev, dup := seen[out]; dup {
				t.Fatalf("%s: %q and %q both give %q", name, prev, in, out)
			}
			seen[out] = in
		}
	}
}

func TestCreditCard_IsLuhnValidInTheTestRange(t *testing.T) {
	for _, known := range []string{"4111111111111111", "4000000000000002", "5555555555554444"} {
		if !luhnValid(known) {
			t.Fatalf("luhn rejects the known-good %s", known)
		}
	}
	if luhnValid("4111111111111112") {
		t.Fatal("luhn accepts 4111111111111112")
	}
	for i := 0; i < 1000; i++ {
		out := run(t, "s", "credit_card", Rule{}, kindText, strconv.Itoa(i))
		if len(out) != 16 || !strings.HasPrefix(out, "400000") || !luhnValid(out) {
			t.Fatalf("credit_card(%d) = %q: want 16 Luhn-valid digits starting 400000", i, out)
		}
	}
}

func TestIBAN_HasValidMod97CheckDigits(t *testing.T) {
	// ISO 13616's published examples.
	for _, known := range []string{"DE89370400440532013000", "GB82WEST12345698765432"} {
		if ibanMod97(known[4:]+known[:4]) != 1 {
			t.Fatalf("mod 97 rejects the known-good %s", known)
		}
	}
	if ibanMod97("370400440532013000DE88") == 1 {
		t.Fatal("mod 97 accepts a wrong check digit")
	}
	for i := 0; i < 1000; i++ {
		out := run(t, "s", "iban", Rule{}, kindText, strconv.Itoa(i))
		if len(out) != 22 || ibanMod97(out[4:]+out[:4]) != 1 {
			t.Fatalf("iban(%d) = %q: want a 22-character DE IBAN valid under mod 97", i, out)
		}
	}
}

func TestIP_IsInTheDocumentationRangesOfItsFamily(t *testing.T) {
	doc := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	for i := 0; i < 500; i++ {
		for _, in := range []string{"10.1.2." + strconv.Itoa(i%256), "2a00:1450::" + strconv.Itoa(i)} {
			out := run(t, "s", "ip", Rule{}, kindInet, in)
			a, err := netip.ParseAddr(out)
			if err != nil {
				t.Fatalf("ip(%q) = %q: %v", in, out, err)
			}
			if a.Is4() != netip.MustParseAddr(in).Is4() {
				t.Fatalf("ip(%q) = %q changed the family", in, out)
			}
			ok := false
			for _, p := range doc {
				ok = ok || p.Contains(a)
			}
			if !ok {
				t.Fatalf("ip(%q) = %q is outside the documentation ranges", in, out)
			}
		}
	}
}

func TestPhone_IsInTheFictionalRange(t *testing.T) {
	re := regexp.MustCompile(`^\+1-[2-9]\d\d-555-01\d\d$`)
	for i := 0; i < 1000; i++ {
		if out := run(t, "s", "phone", Rule{}, kindText, strconv.Itoa(i)); !re.MatchString(out) {
			t.Fatalf("phone(%d) = %q, outside +1-NXX-555-0100..0199", i, out)
		}
	}
}

func TestDateShift_MovesByAtMostDaysAndNeverZero(t *testing.T) {
	base := time.Date(1980, 5, 17, 0, 0, 0, 0, time.UTC)
	seen := map[int]bool{}
	for i := 0; i < 2000; i++ {
		in := base.AddDate(0, 0, i).Format("2006-01-02")
		out := run(t, "s", "date_shift", Rule{Days: 10}, kindDate, in)
		got, err := time.Parse("2006-01-02", out)
		if err != nil {
			t.Fatalf("date_shift(%q) = %q: %v", in, out, err)
		}
		d := int(got.Sub(base.AddDate(0, 0, i)).Hours() / 24)
		if d == 0 || d < -10 || d > 10 {
			t.Fatalf("date_shift(%q, days 10) = %q: shifted %d days", in, out, d)
		}
		seen[d] = true
	}
	if len(seen) != 20 {
		t.Errorf("shifts used: %d of the 20 in ±10", len(seen))
	}
	ts := run(t, "s", "date_shift", Rule{}, kindTimestamp, "2024-02-29 13:45:01.5+00")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d 13:45:01\.5\+00$`).MatchString(ts) || ts[:10] == "2024-02-29" {
		t.Errorf("date_shift of a timestamp = %q, want another day at the same time", ts)
	}
	if out := run(t, "s", "date_shift", Rule{}, kindDate, "infinity"); out != "infinity" {
		t.Errorf("date_shift(infinity) = %q", out)
	}
}

func TestNumberNoise_StaysWithinTheNoiseAndKeepsTheScale(t *testing.T) {
	for i := 1; i <= 1000; i++ {
		in := strconv.Itoa(i*7) + ".25"
		out := run(t, "s", "number_noise", Rule{Noise: 0.2}, kindNumber, in)
		f, _ := strconv.ParseFloat(out, 64)
		orig := float64(i*7) + 0.25
		if f < orig*0.8-0.01 || f > orig*1.2+0.01 || !regexp.MustCompile(`^\d+\.\d\d$`).MatchString(out) {
			t.Fatalf("number_noise(%s, 0.2) = %s", in, out)
		}
	}
	if out := run(t, "s", "number_noise", Rule{}, kindInt, "1000"); strings.Contains(out, ".") || out == "" {
		t.Errorf("number_noise of an integer = %q", out)
	}
}

func TestJSONPaths_MaskNestedObjectsAndArrays(t *testing.T) {
	var rules []jsonRule
	for path, tr := range map[string]string{"$.address": "address", "$.contacts[*].email": "email", "$.missing.deep": "email", "$.age": "number_noise"} {
		steps, err := parseJSONPath(path)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, jsonRule{path: path, steps: steps, transformer: tr})
	}
	in := `{"address":"1 Real Road","age":40,"contacts":[{"email":"a@corp.example","kind":"work"},{"email":null},{"email":"b@corp.example"}],"theme":"dark <b>"}`
	out, err := maskJSON(newKeyed("s"), rules, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"1 Real Road", "a@corp.example", "b@corp.example", `"age":40,`} {
		if strings.Contains(out, gone) {
			t.Errorf("masked JSON still has %s: %s", gone, out)
		}
	}
	for _, kept := range []string{`"kind":"work"`, `"email":null`, `"theme":"dark <b>"`, "@example.com"} {
		if !strings.Contains(out, kept) {
			t.Errorf("masked JSON lacks %s: %s", kept, out)
		}
	}
	email := run(t, "s", "email", Rule{}, kindText, "a@corp.example")
	if !strings.Contains(out, email) {
		t.Errorf("the JSON email of a@corp.example is not the column email %s: %s", email, out)
	}
	for _, bad := range []string{"contacts", "$", "$.a..b", "$.a[0]", `$["x`} {
		if _, err := parseJSONPath(bad); err == nil {
			t.Errorf("path %q parsed", bad)
		}
	}
}

func TestCopyText_RoundTripsEscapes(t *testing.T) {
	for _, s := range []string{"plain", "tab\there", "new\nline\r", `back\slash`, "\b\f\v", "ünïcødé"} {
		enc := copyEncode(nil, s)
		if strings.ContainsAny(string(enc), "\t\n") {
			t.Errorf("encoded %q keeps a framing byte: %q", s, enc)
		}
		if dec := copyDecode(enc); dec != s {
			t.Errorf("round trip of %q gave %q", s, dec)
		}
	}
	if got := copyDecode([]byte(`\101\x42`)); got != "AB" {
		t.Errorf(`decode \101\x42 = %q`, got)
	}
}

func TestRule_UnmarshalYAMLTakesANameOrAMapping(t *testing.T) {
	src := `
email: email
profile: {json: {"$.contacts[*].email": email}}
notes: {transformer: redact, where: "id > 10", value: "[gone]"}
nick: {template: "{{.first_name}}"}
`
	var got map[string]Rule
	if err := yaml.Unmarshal([]byte(src), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]Rule{
		"email":   {Transformer: "email"},
		"profile": {Transformer: "json", JSON: map[string]string{"$.contacts[*].email": "email"}},
		"notes":   {Transformer: "redact", Where: "id > 10", Value: "[gone]"},
		"nick":    {Transformer: "template", Template: "{{.first_name}}"},
	}
	for k, w := range want {
		g := got[k]
		if g.Transformer != w.Transformer || g.Where != w.Where || g.Value != w.Value || g.Template != w.Template || len(g.JSON) != len(w.JSON) {
			t.Errorf("%s = %+v, want %+v", k, g, w)
		}
	}
	var r map[string]Rule
	err := yaml.Unmarshal([]byte(`email: {transfomer: email}`), &r)
	if err == nil || !strings.Contains(err.Error(), `unknown field "transfomer"`) {
		t.Errorf("a misspelt field: err = %v, want it refused", err)
	}
}

func TestRules_EmptyAndCovered(t *testing.T) {
	if !(Rules{}).Empty() {
		t.Error("no rules: not Empty")
	}
	r := Rules{Tables: map[string]map[string]Rule{"people": {"email": {Transformer: "email"}}}, Keep: []string{"orders.total"}}
	if r.Empty() {
		t.Error("rules: Empty")
	}
	c := r.Covered()
	if !c["people.email"] || !c["orders.total"] || len(c) != 2 {
		t.Errorf("Covered = %v", c)
	}
}

func TestSuggest_NamesTheClosest(t *testing.T) {
	if got := suggest("peple", []string{"orders", "people", "sales.people_x"}); got != ` (did you mean "people"?)` {
		t.Errorf("suggest = %q", got)
	}
	if got := suggest("zzzzzz", []string{"orders", "people"}); got != "" {
		t.Errorf("suggest of a stranger = %q", got)
	}
}
