package kubernetes

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/runtimetest"
)

// suiteValues is the values template the conformance suite runs with: its
// bad commits fail the migration hook, or ask for more replicas than the
// quota admits (12 × 250m CPU limit > 2), so the rollout never completes.
const suiteValues = `
image: {tag: "{{ .Commit }}"}
database: {secretName: {{ .SecretName }}}
ingress: {host: "{{ .Name }}.preview.example.com"}
{{- if eq .Commit "bad-migration" }}
migration: {podLabels: {prenv.dev/test-fail: "true"}}
{{- end }}
{{- if eq .Commit "bad-deploy" }}
replicas: 12
{{- end }}
`

func TestRuntime_Conformance(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T) runtime.Runtime {
			o := DefaultOptions("suite")
			o.DeleteTimeout = 60 * time.Second
			n := &Namespaces{Client: c.Client, Options: o}
			// A fresh world: the previous subtest's environments go first.
			old, _ := n.List(ctx)
			for _, in := range old {
				if err := n.Teardown(ctx, in.Key); err != nil {
					t.Fatal(err)
				}
			}
			return &Runtime{
				Namespaces: n, Chart: filepath.Join("..", "..", "..", "examples", "demo", "chart"), Values: suiteValues,
				URL:      "https://{{ .Name }}.preview.example.com",
				Releases: &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 15 * time.Second},
			}
		},
		Spec: func(t *testing.T, rt runtime.Runtime, k env.Key, commit string) runtime.Spec {
			return runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Labels: env.Labels("suite", k, time.Now(), time.Hour),
				Database: dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}}
		},
		Foreign: func(t *testing.T, rt runtime.Runtime, k env.Key) {
			name, _ := rt.(*Runtime).Namespaces.Name(k)
			if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}) })
		},
	})
}

func TestRuntime_DeploysAChartFromARegistryOrARepository(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	for i, src := range []ChartSource{
		{Ref: ociRegistry(t, "0.4.0") + "/demo", PlainHTTP: true},
		{Ref: "demo", Repo: chartRepo(t, "0.4.0", "0.5.0"), Version: "0.5.0"},
	} {
		src.CacheDir = t.TempDir()
		rt := &Runtime{
			Namespaces: namespaces(c), Chart: src.Ref, ChartSource: src, Values: suiteValues,
			Releases: &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 60 * time.Second},
		}
		k := env.Key{PR: 55 + i}
		t.Cleanup(func() { rt.Teardown(ctx, k) })
		s := runtime.Spec{Key: k, Name: k.Name(), Commit: "c1", Labels: env.Labels("prenv", k, time.Now(), time.Hour),
			Database: dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}}
		if err := rt.Check(ctx, k); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if _, err := runtimetest.Roll(ctx, rt, s); err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		ns, _ := rt.Namespaces.Name(k)
		rel, err := rt.Releases.Current(ns, releaseName(k))
		if err != nil || rel.Chart.Metadata.Version != src.Version && src.Version != "" || image(t, c, ns) != "example/prenv-demo-app:c1" {
			t.Fatalf("%s: release %v %v, image %s", src, rel, err, image(t, c, ns))
		}
		if src.Version == "" && rel.Chart.Metadata.Version != "0.4.0" {
			t.Fatalf("%s: deployed chart %s", src, rel.Chart.Metadata.Version)
		}
	}
}
