package cli_test

import (
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// prenv version, --version, and -o yaml wherever -o json is (issue 13).
func TestOutput_VersionAndYAMLBesideJSON(t *testing.T) {
	h := newHarness(t)
	var v struct {
		Version, Commit, Go, Platform string
	}
	if err := json.Unmarshal([]byte(h.must("version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version == "" || v.Go != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version -o json: %+v", v)
	}
	text := h.must("version")
	if !strings.HasPrefix(text, "prenv "+v.Version) || !strings.Contains(text, v.Go) || h.must("--version") != text {
		t.Fatalf("version: %q, --version: %q", text, h.must("--version"))
	}
	if v.Commit != "" && !strings.Contains(text, v.Commit[:12]) {
		t.Fatalf("version %q does not name the commit %s", text, v.Commit)
	}

	h.golden(10)
	h.must("up", "--pr", "3", "--sha", "c0ffee")
	for _, args := range [][]string{{"status", "--pr", "3"}, {"ls"}, {"golden", "ls"}, {"version"}} {
		var fromJSON, fromYAML any
		if err := json.Unmarshal([]byte(h.must(append(args, "-o", "json")...)), &fromJSON); err != nil {
			t.Fatal(err)
		}
		out := h.must(append(args, "-o", "yaml")...)
		if err := yaml.Unmarshal([]byte(out), &fromYAML); err != nil {
			t.Fatalf("%v -o yaml does not parse: %v\n%s", args, err, out)
		}
		// YAML reads timestamps and numbers by its own rules: compare
		// through JSON.
		norm, _ := json.Marshal(fromYAML)
		var back any
		json.Unmarshal(norm, &back)
		if !reflect.DeepEqual(fromJSON, back) {
			t.Fatalf("%v: -o yaml says other than -o json:\n%s", args, out)
		}
		if strings.HasPrefix(strings.TrimSpace(out), "{") || strings.HasPrefix(strings.TrimSpace(out), "[{") {
			t.Fatalf("%v -o yaml is JSON's flow style:\n%s", args, out)
		}
	}
	h.must("down", "--pr", "3")
}
