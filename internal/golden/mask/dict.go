package mask

import (
	_ "embed"
	"strings"
)

// The word lists are embedded so a golden build needs no network and gives
// the same fakes on every machine: changing a list changes every output.
var (
	//go:embed dict/first_names.txt
	firstNamesTxt string
	//go:embed dict/last_names.txt
	lastNamesTxt string
	//go:embed dict/streets.txt
	streetsTxt string
	//go:embed dict/cities.txt
	citiesTxt string

	firstNames = words(firstNamesTxt)
	lastNames  = words(lastNamesTxt)
	streets    = words(streetsTxt)
	cities     = words(citiesTxt)
)

func words(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
