package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// notFields are PRENV_ variables that are no field of prenv.yaml: what the
// local runtime gives an app (PRENV_PR, PRENV_SHA, PRENV_ENV), the GitHub
// Action's own, and the test and bench scripts'.
var notFields = map[string]bool{"PRENV_PR": true, "PRENV_SHA": true, "PRENV_ENV": true, "PRENV_COMMAND": true, "PRENV_ARGS": true, "PRENV_VERSION": true}

var notFieldPrefixes = []string{"PRENV_TEST_", "PRENV_BENCH_", "PRENV_REFLINK_", "PRENV_CLUSTER_", "PRENV_RELEASE_"}

// FieldVariables are the PRENV_ variables that set a field of prenv.yaml.
func FieldVariables() []string {
	var out []string
	c := Default()
	_ = walkLeaves(reflect.ValueOf(&c).Elem(), "", func(path string, _ reflect.Value) error {
		out = append(out, "PRENV_"+strings.ToUpper(strings.ReplaceAll(path, ".", "_")))
		return nil
	})
	sort.Strings(out)
	return out
}

// MistypedEnv returns an error (wrapping ErrInvalid) for the first PRENV_
// variable in environ that sets no field but is a typo's distance from one
// (PRENV_DATABASE_LOCALPG_PORT for PRENV_DATABASE_LOCALPG_PORTS): prenv
// would otherwise go on without the setting the user meant. A variable that
// prenv.yaml references as ${NAME} (referenced, Config.Referenced), or
// that is far from every field, is the user's own and passes.
func MistypedEnv(environ []string, referenced map[string]bool) error {
	fields := FieldVariables()
	known := map[string]bool{}
	for _, f := range fields {
		known[f] = true
	}
	for name := range referenced {
		known[name] = true
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PRENV_") && !known[name] && !notFields[name] && !hasAnyPrefix(name, notFieldPrefixes) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		best, dist := "", 3
		for _, f := range fields {
			if d := editDistance(name, f); d < dist {
				best, dist = f, d
			}
		}
		if best != "" {
			return fmt.Errorf("%s is not a prenv.yaml field: did you mean %s? (unset it, or rename it): %w", name, best, ErrInvalid)
		}
	}
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
