package scan

import (
	_ "embed"
	"strings"
	"unicode"
	"unicode/utf8"
)

//go:embed first_names.txt
var firstNamesTxt string

var firstNames = func() map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(firstNamesTxt, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[line] = true
		}
	}
	return m
}()

// findPersonName counts a whole value that reads "First Last" (two to four
// capitalised words, initials allowed in the middle, particles such as "van"
// or "de" before the last) or "Last, First", with a first name from the
// embedded dictionary. Names inside free text are not matched: too many
// product names and sentences start with a capitalised word.
func findPersonName(s string) (string, bool) {
	v := strings.TrimSpace(s)
	if len(v) < 4 || len(v) > 80 {
		return "", false
	}
	if last, first, ok := strings.Cut(v, ", "); ok {
		if firstNames[first] && nameWord(last) {
			return v, true
		}
		return "", false
	}
	words := strings.Fields(v)
	if len(words) < 2 || len(words) > 4 || !firstNames[words[0]] || !nameWord(words[len(words)-1]) {
		return "", false
	}
	for _, w := range words[1 : len(words)-1] {
		if !nameWord(w) && !initial(w) && !particles[w] {
			return "", false
		}
	}
	return v, true
}

var particles = map[string]bool{"van": true, "von": true, "de": true, "der": true, "den": true, "da": true, "di": true, "del": true, "la": true, "le": true, "bin": true, "al": true, "ibn": true}

// nameWord is a capitalised word of letters, with ' or - inside (O'Brien,
// Smith-Jones).
func nameWord(w string) bool {
	r, size := utf8.DecodeRuneInString(w)
	if !unicode.IsUpper(r) || len(w) < 2 {
		return false
	}
	lower := false
	for _, r := range w[size:] {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r), r == '\'', r == '-', r == '’':
		default:
			return false
		}
	}
	return lower
}

func initial(w string) bool {
	r, size := utf8.DecodeRuneInString(w)
	return unicode.IsUpper(r) && (len(w) == size || w[size:] == ".")
}
