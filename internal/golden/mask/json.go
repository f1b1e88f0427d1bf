package mask

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// jsonStep is one step of a path: a key, or every element of an array.
type jsonStep struct {
	key string
	all bool
}

type jsonRule struct {
	path        string
	steps       []jsonStep
	transformer string
}

// parseJSONPath parses the subset of JSONPath the rules use: $ followed by
// .key, ["key"] and [*] steps ($.a.b, $.contacts[*].email).
func parseJSONPath(p string) ([]jsonStep, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("path %q must start with $", p)
	}
	s := p[1:]
	var steps []jsonStep
	for s != "" {
		switch {
		case strings.HasPrefix(s, "[*]"):
			steps = append(steps, jsonStep{all: true})
			s = s[3:]
		case strings.HasPrefix(s, `["`):
			end := strings.Index(s, `"]`)
			if end < 0 {
				return nil, fmt.Errorf("path %q: unterminated [\"", p)
			}
			steps = append(steps, jsonStep{key: s[2:end]})
			s = s[end+2:]
		case s[0] == '.':
			s = s[1:]
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			if end == 0 {
				return nil, fmt.Errorf("path %q: empty key", p)
			}
			steps = append(steps, jsonStep{key: s[:end]})
			s = s[end:]
		default:
			return nil, fmt.Errorf("path %q: expected .key, [\"key\"] or [*] at %q", p, s)
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("path %q names the whole document: give the column a transformer instead", p)
	}
	return steps, nil
}

// maskJSON applies each path's transformer to the values it reaches: a
// scalar is transformed (strings as text, numbers for number_noise); an
// object or array reached is masked whole, every scalar inside it
// transformed (set_null and redact replace it). [*] steps over the members
// of an object as over the elements of an array. A path that reaches
// nothing in a row is no error: documents differ from row to row.
func maskJSON(k *keyed, rules []jsonRule, in string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(in))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return "", err
	}
	for _, r := range rules {
		doc = walkJSON(k, r, r.steps, doc)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func walkJSON(k *keyed, r jsonRule, steps []jsonStep, v any) any {
	if len(steps) == 0 {
		return maskJSONValue(k, r.transformer, v)
	}
	st := steps[0]
	switch x := v.(type) {
	case map[string]any:
		if st.all {
			for key := range x {
				x[key] = walkJSON(k, r, steps[1:], x[key])
			}
			return v
		}
		if child, ok := x[st.key]; ok {
			x[st.key] = walkJSON(k, r, steps[1:], child)
		}
	case []any:
		if st.all {
			for i := range x {
				x[i] = walkJSON(k, r, steps[1:], x[i])
			}
		}
	}
	return v
}

func maskJSONValue(k *keyed, name string, v any) any {
	if v == nil {
		return nil // NULL stays NULL
	}
	rule := Rule{Transformer: name}
	switch name {
	case "set_null":
		return nil
	case "redact":
		s, _ := redact(k, &rule, kindText, "")
		return s
	case "keep":
		return v
	}
	t := transformers[name]
	switch x := v.(type) {
	case string:
		if out, ok := t.apply(k, &rule, kindText, x); ok {
			return out
		}
		return nil
	case json.Number:
		if name == "number_noise" {
			col := kindNumber
			if !strings.ContainsAny(x.String(), ".eE") {
				col = kindInt
			}
			out, _ := numberNoise(k, &rule, col, x.String())
			return json.Number(out)
		}
		out, _ := t.apply(k, &rule, kindText, x.String())
		return out
	case map[string]any:
		// A path that reaches an object masks all of it: left as it is,
		// {"address": {"street": ...}} would keep the street.
		for key := range x {
			x[key] = maskJSONValue(k, name, x[key])
		}
	case []any:
		for i := range x {
			x[i] = maskJSONValue(k, name, x[i])
		}
	}
	return v // booleans
}

// jsonTransformers are the transformers a JSON path may name.
func jsonTransformer(name string) bool {
	switch name {
	case "json", "template", "sql":
		return false
	}
	_, ok := transformers[name]
	return ok
}
