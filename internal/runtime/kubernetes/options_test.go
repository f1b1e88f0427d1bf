package kubernetes

import (
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/env"
)

func TestOptions_ValidateNamesTheField(t *testing.T) {
	cases := map[string]struct {
		edit func(*Options)
		want string
	}{
		"template that does not parse": {func(o *Options) { o.NamespaceTemplate = "pr-{{ .PR" }, "runtime.kubernetes.namespace"},
		"unknown field":                {func(o *Options) { o.NamespaceTemplate = "pr-{{ .Branch }}" }, "can't evaluate field Branch"},
		"not a DNS label":              {func(o *Options) { o.NamespaceTemplate = "PR_{{ .PR }}" }, "not a DNS label"},
		"too long":                     {func(o *Options) { o.NamespaceTemplate = "{{ .Repo }}-{{ .Repo }}-{{ .Repo }}" }, "not a DNS label"},
		"bad quantity":                 {func(o *Options) { o.Quota["limits.memory"] = "lots" }, "runtime.kubernetes.quota.limits.memory"},
		"bad level":                    {func(o *Options) { o.PodSecurity = "strict" }, "runtime.kubernetes.pod_security"},
	}
	for name, c := range cases {
		o := DefaultOptions("prenv")
		c.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if err := DefaultOptions("prenv").Validate(); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions("prenv")
	o.NamespaceTemplate = "preview-{{ .Name }}"
	if got, err := o.namespace(env.Key{Repo: "Acme/Shop.Web", PR: 3}); err != nil || len(got) > 63 || !dnsLabel.MatchString(got) {
		t.Fatalf("{{ .Name }} renders %q, %v", got, err)
	}
}
