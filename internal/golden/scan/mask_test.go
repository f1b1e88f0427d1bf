package scan

import "testing"

func TestMask_ShowsTheShapeNotTheValue(t *testing.T) {
	cases := []struct{ name, got, want string }{
		{"email", maskEmail("jane.doe@example.com"), "j***@e***.com"},
		{"phone", maskDigits(2)("+1 555 123 4567"), "+1 *** *** **67"},
		{"national phone", maskDigits(2)("(555) 234-5678"), "(***) ***-**78"},
		{"card", maskCard("4111 1111 1111 1111"), "4*** **** **** 1111"},
		{"card digits", maskCard("5500000000000004"), "5***********0004"},
		{"iban", maskIBAN("DE89370400440532013000"), "DE******************00"},
		{"ssn", maskDigits(0)("123-45-6789"), "***-**-****"},
		{"ipv4", maskIP("203.0.113.7"), "203.*.*.*"},
		{"ipv6", maskIP("2001:db8::1"), "2001:*"},
		{"name", maskWords("Jane Doe"), "J*** D***"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: masked to %q, want %q", c.name, c.got, c.want)
		}
	}
}
