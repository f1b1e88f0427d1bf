package scan

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The report is read by people and pasted into tickets and CI logs, so a
// sample shows the shape of a value, never the value: at most its first
// letter per part and its last digits.

// maskEmail keeps the first letter of the local part and of the domain and
// the top-level domain: jane.doe@example.org -> j***@e***.org.
func maskEmail(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	if !ok {
		return maskWords(s)
	}
	tld := ""
	if i := strings.LastIndexByte(domain, '.'); i >= 0 {
		tld = domain[i:]
	}
	return firstRune(local) + "***@" + firstRune(domain) + "***" + tld
}

// maskDigits keeps a leading "+country code" group, the separators and the
// last keep digits: +1 555 123 4567 -> +1 *** *** **67.
func maskDigits(keep int) func(string) string {
	return func(s string) string {
		total := countDigits(s)
		var b strings.Builder
		seen := 0
		inCountry := strings.HasPrefix(s, "+")
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !isDigit(c) {
				if inCountry && c != '+' {
					inCountry = false
				}
				b.WriteByte(c)
				continue
			}
			seen++
			if inCountry || seen > total-keep {
				b.WriteByte(c)
			} else {
				b.WriteByte('*')
			}
		}
		return b.String()
	}
}

// maskCard keeps the first digit (the network) and the last four, as card
// receipts do: 4111 1111 1111 1111 -> 4*** **** **** 1111.
func maskCard(s string) string {
	total := countDigits(s)
	var b strings.Builder
	seen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) {
			b.WriteByte(c)
			continue
		}
		seen++
		if seen == 1 || seen > total-4 {
			b.WriteByte(c)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// maskIBAN keeps the country and the last two characters.
func maskIBAN(s string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			n++
		}
	}
	seen := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' {
			b.WriteByte(c)
			continue
		}
		seen++
		if seen <= 2 || seen > n-2 {
			b.WriteByte(c)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// maskIP keeps the first group: 203.0.113.7 -> 203.*.*.*, 2001:db8::1 -> 2001:*.
func maskIP(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 && !strings.Contains(s, ":") {
		return s[:i] + ".*.*.*"
	}
	if i := strings.IndexByte(s, ':'); i >= 0 {
		return s[:i] + ":*"
	}
	return maskWords(s)
}

// maskWords keeps the first letter of each word: Jane Doe -> J*** D***.
// Long values keep at most four words.
func maskWords(s string) string {
	words := strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) })
	if len(words) > 4 {
		words = append(words[:4], "…")
	}
	for i, w := range words {
		if w != "…" {
			words[i] = firstRune(w) + "***"
		}
	}
	return strings.Join(words, " ")
}

func firstRune(s string) string {
	_, size := utf8.DecodeRuneInString(s)
	return s[:size]
}
