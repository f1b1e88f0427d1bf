package kubernetes

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/runtimetest"
)

func TestMigrationJob_GatesTheRolloutOfAChartWithoutHooks(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	rt := &Runtime{
		Namespaces: n, Chart: filepath.Join("..", "..", "..", "examples", "demo", "chart"),
		Values:   suiteValues + "migration: {enabled: false}\n",
		Releases: &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 60 * time.Second},
		Migration: `
image: "example/prenv-demo-app:{{ .Commit }}"
command: ["/app", "migrate"]
{{- if eq .Commit "bad" }}
pod_labels: {prenv.dev/test-fail: "true"}
{{- end }}`,
	}
	k := env.Key{PR: 51}
	spec := func(commit string) runtime.Spec {
		return runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Labels: env.Labels("prenv", k, time.Now(), time.Hour),
			Database: dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}}
	}
	t.Cleanup(func() { rt.Teardown(ctx, k) })
	if err := rt.Check(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := runtimetest.Roll(ctx, rt, spec("c1")); err != nil {
		t.Fatal(err)
	}
	job, err := c.Client.BatchV1().Jobs("pr-51").Get(ctx, "prenv-migrate-c1", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 || job.Labels[LabelOwner] != "prenv" || job.Spec.Template.Spec.Containers[0].EnvFrom[0].SecretRef.Name != SecretName {
		t.Fatalf("migration job: %+v %v", job, err)
	}
	_, err = runtimetest.Roll(ctx, rt, spec("bad"))
	var se *runtime.StepError
	if !errors.As(err, &se) || se.Step != "migrate" || !strings.Contains(se.Output, "test failure requested") {
		t.Fatalf("a failing migration job: %v", err)
	}
	if got := image(t, c, "pr-51"); got != "example/prenv-demo-app:c1" {
		t.Fatalf("after a failed migration the deployment runs %s", got)
	}
	// A template that renders something else than a migration job is
	// refused before anything runs.
	rt.Migration = "imag: x"
	if err := rt.Check(ctx, k); !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), "runtime.kubernetes.migration") {
		t.Fatalf("Check with a bad migration template = %v", err)
	}
}
