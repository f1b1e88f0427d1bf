package kubernetes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/env"
)

func TestNamespacePattern_MatchesWhatTheTemplateCanRenderOnly(t *testing.T) {
	for _, c := range []struct {
		template string
		match    []string
		not      []string
	}{
		{"pr-{{ .PR }}", []string{"pr-1", "pr-12345"}, []string{"pr-", "pr-0", "pr-1x", "xpr-1", "pr-1-shop"}},
		{"{{ .Name }}", []string{"pr-1", env.Key{Repo: "acme/shop", PR: 7}.Name()}, []string{"preview-1", "pr-x"}},
		{"preview-{{ .PR }}-app", []string{"preview-3-app"}, []string{"preview-3", "preview-a-app"}},
	} {
		o := DefaultOptions("prenv")
		o.NamespaceTemplate = c.template
		re, err := o.pattern()
		if err != nil || re == nil {
			t.Fatalf("%s: %v, %v", c.template, re, err)
		}
		for _, name := range c.match {
			if !re.MatchString(name) {
				t.Errorf("%s does not match %s (%s)", c.template, name, re)
			}
		}
		for _, name := range c.not {
			if re.MatchString(name) {
				t.Errorf("%s matches %s (%s)", c.template, name, re)
			}
		}
	}
}

func TestLegacySelector_SelectsByWholeNameAndLabelsWithoutAnOwner(t *testing.T) {
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	eph := map[string]string{"ephemeral": "true"}
	m, err := legacySelector(&env.Legacy{NamePattern: "preview-[0-9]+", Labels: eph})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns   *corev1.Namespace
		want bool
	}{
		{ns("preview-1", eph), true},
		{ns("preview-1", nil), false},
		{ns("preview-1", map[string]string{"ephemeral": "false"}), false},
		{ns("preview-1x", eph), false},
		{ns("my-preview-1", eph), false},
		{ns("preview-1", map[string]string{"ephemeral": "true", LabelOwner: "prenv"}), false},
	} {
		if got := m.matches(c.ns); got != c.want {
			t.Errorf("%s %v: selected %v, want %v", c.ns.Name, c.ns.Labels, got, c.want)
		}
	}
	// Labels alone never select a system namespace; no criteria select
	// nothing.
	m, _ = legacySelector(&env.Legacy{Labels: eph})
	if m.matches(ns("kube-system", eph)) || !m.matches(ns("anything", eph)) {
		t.Error("labels alone: wrong selection")
	}
	if m, _ := legacySelector(&env.Legacy{}); m.matches(ns("preview-1", eph)) {
		t.Error("empty criteria selected a namespace")
	}
}
