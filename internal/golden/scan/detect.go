package scan

import (
	"net"
	"regexp"
	"strings"
	"unicode"
)

// A detector reports the first personal value it finds in s. candidate is
// true when s held something shaped like the kind at all (a 16-digit run
// for credit cards): detectors whose check digit passes by chance (Luhn one
// time in ten, mod 97 one in ninety-seven) need most candidates to pass,
// so a column of random long numbers is not a column of card numbers.
type detector struct {
	name string
	find func(s string) (match string, candidate bool)
	// minValid is the share of candidates that must match; 0 when a match
	// cannot happen by chance.
	minValid float64
	mask     func(string) string
}

// Detector names, as they appear in Finding.Detector.
const (
	Email      = "email"
	Phone      = "phone"
	CreditCard = "credit_card"
	IBAN       = "iban"
	SSN        = "ssn"
	IP         = "ip"
	PersonName = "person_name"
)

var detectors = []detector{
	{name: Email, find: findEmail, mask: maskEmail},
	{name: Phone, find: findPhone, mask: maskDigits(2)},
	{name: CreditCard, find: findCard, minValid: 0.5, mask: maskCard},
	{name: IBAN, find: findIBAN, minValid: 0.5, mask: maskIBAN},
	{name: SSN, find: findSSN, mask: maskDigits(0)},
	{name: IP, find: findIP, mask: maskIP},
	{name: PersonName, find: findPersonName, mask: maskWords},
}

var emailRE = regexp.MustCompile(`[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b`)

// findEmail finds an address anywhere in s, so that "write to
// jane@example.org" in a notes column counts. A domain needs a dot and a
// alphabetic top-level label: "user@localhost" and "a@1.2" do not count.
func findEmail(s string) (string, bool) {
	if !strings.Contains(s, "@") {
		return "", false
	}
	m := emailRE.FindString(s)
	return m, m != ""
}

var (
	// E.164 written with or without separators: +44 7700 900123,
	// +1 (555) 123-4567, +4930123456.
	e164RE = regexp.MustCompile(`\+[1-9][0-9 ().\-]{6,22}[0-9]`)
	// North American: (555) 123-4567, 555-123-4567, 555.123.4567.
	nanpRE = regexp.MustCompile(`(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}`)
	// National with a trunk 0 and separators: 07700 900123, 020 7946 0958,
	// 030 1234567, 06 12 34 56 78, 06.12.34.56.78.
	trunkRE = regexp.MustCompile(`0[1-9][0-9]{0,3}(?:[ \-][0-9]{3,8}){1,2}|0[1-9](?:[ .][0-9]{2}){4}`)
)

// findPhone finds a phone number written the way people write them: with a
// leading + (E.164), or in a national format with its separators. A bare
// run of digits is never a phone here (ids, order numbers, amounts), nor
// are dates (2025-01-31, 31.01.2025), times, decimals or UUIDs: a match must
// stand alone (no digit, letter or joining punctuation on either side), and
// hold 8 to 15 digits.
func findPhone(s string) (string, bool) {
	for _, re := range []*regexp.Regexp{e164RE, nanpRE, trunkRE} {
		for _, loc := range re.FindAllStringIndex(s, -1) {
			m := strings.TrimRight(s[loc[0]:loc[1]], " .-(")
			end := loc[0] + len(m)
			if !standsAlone(s, loc[0], end) || strings.Contains(m, "  ") {
				continue
			}
			n := countDigits(m)
			if n < 8 || n > 15 {
				continue
			}
			if re == e164RE && !oneSeparatorKind(m[1:]) {
				continue
			}
			return m, true
		}
	}
	return "", false
}

// oneSeparatorKind refuses mixes such as "+2025-01-31 10.5", where a
// timestamp follows a plus sign; phone numbers use one kind of separator
// (a space after a parenthesised area code aside: +1 (555) 123-4567).
func oneSeparatorKind(s string) bool {
	if strings.Contains(s, ")") {
		s = strings.NewReplacer(" (", "", ") ", "", "(", "", ")", "").Replace(s)
	}
	var seen rune
	for _, r := range s {
		if r == ' ' || r == '-' || r == '.' {
			if seen != 0 && seen != r {
				return false
			}
			seen = r
		}
	}
	return true
}

// standsAlone says whether s[i:j] is not glued to a neighbouring word,
// number, date or decimal.
func standsAlone(s string, i, j int) bool {
	if i > 0 {
		r := rune(s[i-1])
		if isAlnum(r) || strings.ContainsRune("+-./:_#", r) {
			return false
		}
	}
	if j < len(s) {
		r := rune(s[j])
		if isAlnum(r) || strings.ContainsRune("-/:_@", r) {
			return false
		}
		// A full stop ends a sentence; followed by a digit it is a decimal
		// or a date.
		if (r == '.' || r == ',') && j+1 < len(s) && isDigit(s[j+1]) {
			return false
		}
	}
	return true
}

func isAlnum(r rune) bool { return r < 128 && (isDigit(byte(r)) || unicode.IsLetter(r)) }
func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Card numbers written whole or in groups of four (4111 1111 1111 1111,
// 4111-1111-1111-1111), or Amex's 4-6-5.
var cardRE = regexp.MustCompile(`[0-9]{13,19}|[0-9]{4}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?|3[47][0-9]{2}[ \-][0-9]{6}[ \-][0-9]{5}`)

// findCard finds a 13 to 19 digit number that starts like a card issued by
// a major network (2, 3, 4, 5 or 6), is not one digit repeated, and passes
// Luhn's check. Every such number is a candidate; the detector counts only
// when most candidates pass, as one random number in ten passes Luhn.
func findCard(s string) (string, bool) {
	candidate := false
	for _, loc := range cardRE.FindAllStringIndex(s, -1) {
		if !standsAlone(s, loc[0], loc[1]) {
			continue
		}
		m := s[loc[0]:loc[1]]
		d := digitsOf(m)
		if len(d) < 13 || len(d) > 19 || !strings.ContainsRune("23456", rune(d[0])) {
			continue
		}
		candidate = true
		if strings.Count(d, d[:1]) == len(d) {
			continue
		}
		if luhn(d) {
			return m, true
		}
	}
	return "", candidate
}

func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// ibanRE finds IBANs printed whole or in groups of four.
var ibanRE = regexp.MustCompile(`\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`)

// ibanLengths are the lengths of IBANs in countries that issue them (the
// SWIFT IBAN registry), so a token of the right shape but the wrong length
// for its country is not one.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
	"FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
	"HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
	"LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
	"NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
	"SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}

// findIBAN finds an IBAN of a known country with its length, whose check
// digits pass ISO 13616's mod 97.
func findIBAN(s string) (string, bool) {
	candidate := false
	for _, m := range ibanRE.FindAllString(s, -1) {
		c := strings.ReplaceAll(m, " ", "")
		if ibanLengths[c[:2]] != len(c) {
			continue
		}
		candidate = true
		if ibanValid(c) {
			return m, true
		}
	}
	return "", candidate
}

func ibanValid(c string) bool {
	r := c[4:] + c[:4]
	mod := 0
	for i := 0; i < len(r); i++ {
		ch := r[i]
		switch {
		case isDigit(ch):
			mod = (mod*10 + int(ch-'0')) % 97
		case ch >= 'A' && ch <= 'Z':
			mod = (mod*100 + int(ch-'A'+10)) % 97
		default:
			return false
		}
	}
	return mod == 1
}

var ssnRE = regexp.MustCompile(`\b([0-9]{3})-([0-9]{2})-([0-9]{4})\b`)

// findSSN finds a US social security number written AAA-GG-SSSS. Areas
// 000, 666 and 900-999, group 00 and serial 0000 are never issued (SSA),
// so they do not count. Nine digits without dashes are not matched: they
// are as likely an id, and a column named ssn is caught by its hint.
func findSSN(s string) (string, bool) {
	for _, loc := range ssnRE.FindAllStringSubmatchIndex(s, -1) {
		if !standsAlone(s, loc[0], loc[1]) {
			continue
		}
		area, group, serial := s[loc[2]:loc[3]], s[loc[4]:loc[5]], s[loc[6]:loc[7]]
		if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
			continue
		}
		return s[loc[0]:loc[1]], true
	}
	return "", false
}

// findIP finds an IPv4 or IPv6 address among the tokens of s (split on
// space and on punctuation that cannot be part of one), parsed with
// net.ParseIP, with an optional /prefix (inet, cidr). A version such as
// 1.2.3 is not an address; 1.2.3.4 is, as there is no telling them apart.
// Unspecified and loopback addresses (0.0.0.0, ::, 127.0.0.1, ::1) are not
// personal and do not count.
func findIP(s string) (string, bool) {
	if !strings.ContainsAny(s, ".:") {
		return "", false
	}
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool {
		return !(isAlnum(r) || r == '.' || r == ':' || r == '/' || r == '%')
	}) {
		tok = strings.TrimRight(tok, ".:")
		addr, _, _ := strings.Cut(tok, "/")
		addr, _, _ = strings.Cut(addr, "%") // an IPv6 zone: fe80::1%eth0
		if !strings.ContainsAny(addr, ".:") || len(addr) < 2 {
			continue
		}
		ip := net.ParseIP(addr)
		if ip == nil || ip.IsUnspecified() || ip.IsLoopback() {
			continue
		}
		// A time such as 12:30 or a MAC address is not IPv6: net.ParseIP
		// refuses both already; a bare "::" is handled above.
		return tok, true
	}
	return "", false
}
