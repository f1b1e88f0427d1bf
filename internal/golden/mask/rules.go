package mask

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrRules is wrapped by every error about the rules themselves: an unknown
// table, column or transformer, a transformer that does not fit the
// column's type, a missing salt, a where or sql that does not parse.
var ErrRules = errors.New("invalid masking rules")

// Rules are the masking rules of golden.masking in prenv.yaml.
type Rules struct {
	Salt   string                     // required once any rule exists; never written into the database
	Tables map[string]map[string]Rule // table ("people" or "schema.table") -> column -> rule
	Keep   []string                   // "table.column" reviewed as not personal
}

// Rule says how one column is masked.
type Rule struct {
	Transformer string            `yaml:"transformer"` // keep set_null redact hash email person_name first_name last_name phone address ip credit_card iban date_shift number_noise template sql json
	JSON        map[string]string `yaml:"json"`        // JSON path ($.a, $.a.b, $.list[*].email) -> transformer name, for json/jsonb columns
	Where       string            `yaml:"where"`       // SQL boolean over the row: only those rows are masked
	Template    string            `yaml:"template"`    // Go text/template over the row's columns (as strings): {{.first_name}}
	SQL         string            `yaml:"sql"`         // an SQL expression over the row, for anything else
	Value       string            `yaml:"value"`       // redact's fixed string (default "[redacted]")
	Days        int               `yaml:"days"`        // date_shift: ± days (default 30)
	Noise       float64           `yaml:"noise"`       // number_noise: relative, default 0.1
}

// UnmarshalYAML accepts a bare transformer name ("email") or the mapping
// form ({json: {...}}, {transformer: hash, where: ...}). In the mapping form
// the transformer may be left out when json, template or sql says it.
// Unknown fields are refused, so a typo does not silently leave a column
// unmasked.
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var name string
		if err := n.Decode(&name); err != nil {
			return err
		}
		*r = Rule{Transformer: name}
		return nil
	case yaml.MappingNode:
		known := map[string]bool{"transformer": true, "json": true, "where": true, "template": true, "sql": true, "value": true, "days": true, "noise": true}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; !known[k] {
				return fmt.Errorf("line %d: unknown field %q in a masking rule (known: transformer, json, where, template, sql, value, days, noise)", n.Content[i].Line, k)
			}
		}
		type plain Rule // no UnmarshalYAML: decodes the fields
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*r = Rule(p)
		if r.Transformer == "" {
			switch {
			case len(r.JSON) > 0:
				r.Transformer = "json"
			case r.Template != "":
				r.Transformer = "template"
			case r.SQL != "":
				r.Transformer = "sql"
			}
		}
		return nil
	default:
		return fmt.Errorf("line %d: a masking rule is a transformer name or a mapping", n.Line)
	}
}

// Empty reports whether r has no rules and no reviewed columns.
func (r Rules) Empty() bool {
	for _, cols := range r.Tables {
		if len(cols) > 0 {
			return false
		}
	}
	return len(r.Keep) == 0
}

// hasRules reports whether any column has a rule (the salt is then required).
func (r Rules) hasRules() bool {
	for _, cols := range r.Tables {
		if len(cols) > 0 {
			return true
		}
	}
	return false
}

// Covered returns "table.column" for every column a rule or keep names,
// spelled as in the rules ("people.email", or "sales.orders.total" when the
// rules qualify the table), so the scanner can skip them.
func (r Rules) Covered() map[string]bool {
	out := map[string]bool{}
	for t, cols := range r.Tables {
		for c := range cols {
			out[t+"."+c] = true
		}
	}
	for _, k := range r.Keep {
		out[k] = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// splitKeep splits a keep entry "table.column" or "schema.table.column".
func splitKeep(s string) (table, column string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
