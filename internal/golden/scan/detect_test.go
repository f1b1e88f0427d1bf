package scan

import (
	"testing"
)

// detectCases lists, per detector, values it must find (with the match it
// should report) and values it must pass.
var detectCases = []struct {
	detector string
	find     func(string) (string, bool)
	yes      map[string]string // value -> match
	no       []string
}{
	{Email, findEmail,
		map[string]string{
			"jane@example.org": "jane@example.org",
			"call me at jane.doe+tag@mail.example.co.uk.": "jane.doe+tag@mail.example.co.uk",
			"Contact: <o'brien@example.com>":              "brien@example.com",
		},
		[]string{"user@localhost", "@handle", "a@1.2", "price 12@3.50", "placed", "foo@bar"}},
	{Phone, findPhone,
		map[string]string{
			"+44 7700 900123":                  "+44 7700 900123",
			"+14155552671":                     "+14155552671",
			"+1 (555) 123-4567":                "+1 (555) 123-4567",
			"(555) 234-5678":                   "(555) 234-5678",
			"call 555-234-5678 after six":      "555-234-5678",
			"555.234.5678":                     "555.234.5678",
			"07700 900123":                     "07700 900123",
			"020 7946 0958":                    "020 7946 0958",
			"06 12 34 56 78":                   "06 12 34 56 78",
			"06.12.34.56.78":                   "06.12.34.56.78",
			"ring +49 30 123456, thanks":       "+49 30 123456",
			"+44 7000 123456 is my new number": "+44 7000 123456",
		},
		[]string{
			"4155552671", "123456789012", "42", "1200", "2025-01-31", "31.01.2025", "01-02-2025", "2025-01-31 10:00:00+00",
			"2025-03-04T05:06:07Z", "12:30:45", "1234.56", "1,234.56", "$12,345.67", "-1234567.89",
			"550e8400-e29b-41d4-a716-446655440000", "00000000-0000-0000-0000-000000000000",
			"ORD-2025-000123", "SKU-555-234-5678", "INV 2025 0001", "v1.2.3", "10.0.0.1", "+5", "+12.5%",
			"0001_people_and_orders", "Espresso beans 1kg", "Paper filters x100", "NW1 2AB",
			"2025-01-31 10:00:00+05:30", "+00:00", "123-45-6789",
		}},
	{CreditCard, findCard,
		map[string]string{
			"4111111111111111":           "4111111111111111",
			"4111 1111 1111 1111":        "4111 1111 1111 1111",
			"5500-0000-0000-0004":        "5500-0000-0000-0004",
			"3782 822463 10005":          "3782 822463 10005",
			"paid with 6011111111111117": "6011111111111117",
		},
		[]string{"4111111111111112", "5555555555555555", "1234567890123452", "4111 1111 1111", "41111111111111111111",
			"12345678901234567", "2025-01-31", "order 4111111111111111x"}},
	{IBAN, findIBAN,
		map[string]string{
			"DE89370400440532013000":       "DE89370400440532013000",
			"GB82 WEST 1234 5698 7654 32":  "GB82 WEST 1234 5698 7654 32",
			"pay to NL91ABNA0417164300 ok": "NL91ABNA0417164300",
		},
		[]string{"DE88370400440532013000", "GB82WEST12345698765433", "NL91ABNA041716430", "XX89370400440532013000", "SKU1234ABCD5678"}},
	{SSN, findSSN,
		map[string]string{"123-45-6789": "123-45-6789", "ssn 078-05-1120 on file": "078-05-1120"},
		[]string{"000-12-3456", "666-12-3456", "900-12-3456", "987-65-4321", "123-00-4567", "123-45-0000", "123456789", "2025-01-31", "1123-45-6789"}},
	{IP, findIP,
		map[string]string{
			"203.0.113.7":               "203.0.113.7",
			"login from 198.51.100.23.": "198.51.100.23",
			"2001:db8::8a2e:370:7334":   "2001:db8::8a2e:370:7334",
			"10.1.2.3/32":               "10.1.2.3/32",
			"fe80::1%eth0 then":         "fe80::1%eth0",
		},
		[]string{"127.0.0.1", "0.0.0.0", "::1", "::", "1.2.3", "12:30:45", "2025-01-31 10:00:00+00", "1234.56",
			"550e8400-e29b-41d4-a716-446655440000", "std::string", "aa:bb:cc:dd:ee:ff", "999.1.1.1"}},
	{PersonName, findPersonName,
		map[string]string{
			"Jane Doe":           "Jane Doe",
			"Ada Abara":          "Ada Abara",
			"Maria van der Berg": "Maria van der Berg",
			"John F. Kennedy":    "John F. Kennedy",
			"Patrick O'Brien":    "Patrick O'Brien",
			"Smith-Jones, Sarah": "Smith-Jones, Sarah",
			"  Priya Sharma  ":   "Priya Sharma",
		},
		[]string{"Person 12", "Ceramic mug", "Espresso beans 1kg", "Hand grinder", "Jane", "jane doe", "JANE DOE",
			"Mark Complete", "Summer Sale", "Jane Doe called about her order yesterday", "Rosa 2", "placed", "Northwick"}},
}

func TestDetectors_FindTheirKindAndPassLookalikes(t *testing.T) {
	for _, c := range detectCases {
		t.Run(c.detector, func(t *testing.T) {
			for v, want := range c.yes {
				if got, _ := c.find(v); got != want {
					t.Errorf("%q: found %q, want %q", v, got, want)
				}
			}
			for _, v := range c.no {
				if got, _ := c.find(v); got != "" {
					t.Errorf("%q: found %q, want no match", v, got)
				}
			}
		})
	}
}

func TestLuhn_ValidAndInvalidNumbers(t *testing.T) {
	for d, want := range map[string]bool{"4111111111111111": true, "4111111111111112": false, "79927398713": true, "79927398710": false, "378282246310005": true} {
		if got := luhn(d); got != want {
			t.Errorf("luhn(%s) = %v, want %v", d, got, want)
		}
	}
}

func TestIBAN_CheckDigitsDecide(t *testing.T) {
	for c, want := range map[string]bool{"DE89370400440532013000": true, "DE88370400440532013000": false, "GB82WEST12345698765432": true, "GB83WEST12345698765432": false, "FR1420041010050500013M02606": true} {
		if got := ibanValid(c); got != want {
			t.Errorf("ibanValid(%s) = %v, want %v", c, got, want)
		}
	}
}
