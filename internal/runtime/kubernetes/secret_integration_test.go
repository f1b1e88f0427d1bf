package kubernetes

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/runtimetest"
)

// A chart written the way the common guides write one reads DATABASE_URL
// from the Secret <release>-db-secrets, key database_url, in its migration
// hook and its app: with runtime.kubernetes.secret it deploys unchanged
// (issue 13).
func TestSecret_AChartReadingItsOwnSecretDeploysUnchanged(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	n.Options.SecretTemplate = "{{ .Release }}-db-secrets"
	n.Options.SecretKeys = map[string]string{"database_url": "url"}
	rt := &Runtime{Namespaces: n, Chart: filepath.Join("testdata", "guide-chart"),
		Releases: &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 60 * time.Second}}
	k := env.Key{PR: 52}
	db := dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}
	spec := runtime.Spec{Key: k, Name: k.Name(), Commit: "c1", Labels: env.Labels("prenv", k, time.Now(), time.Hour), Database: db}
	t.Cleanup(func() { rt.Teardown(context.Background(), k) })
	if err := rt.Check(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := runtimetest.Roll(ctx, rt, spec); err != nil {
		t.Fatal(err)
	}
	secrets := c.Client.CoreV1().Secrets("pr-52")
	s, err := secrets.Get(ctx, "pr-52-db-secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]byte{"database_url": []byte(db.URL)}; !reflect.DeepEqual(s.Data, want) || s.Labels[LabelOwner] != "prenv" {
		t.Fatalf("the Secret holds %v (labels %v); want only database_url", s.Data, s.Labels)
	}
	if _, err := secrets.Get(ctx, SecretName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("%s was made as well: %v", SecretName, err)
	}
	// What the chart's hook Job and app read is there: the hook ran to
	// completion, and every secretKeyRef names a key the Secret has.
	job, err := c.Client.BatchV1().Jobs("pr-52").Get(ctx, "pr-52-migrate", metav1.GetOptions{})
	if err != nil || job.Status.Succeeded != 1 {
		t.Fatalf("the chart's migration hook: %v %+v", err, job.Status)
	}
	dep, err := c.Client.AppsV1().Deployments("pr-52").Get(ctx, "pr-52", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range [][]corev1.EnvVar{job.Spec.Template.Spec.Containers[0].Env, dep.Spec.Template.Spec.Containers[0].Env} {
		ref := env[0].ValueFrom.SecretKeyRef
		if got, err := secrets.Get(ctx, ref.Name, metav1.GetOptions{}); err != nil || string(got.Data[ref.Key]) != db.URL {
			t.Fatalf("the chart reads %s/%s: %v", ref.Name, ref.Key, err)
		}
	}

	// Renamed: the old Secret goes (the password must not stay where
	// nothing reads it); another installation's Secret stays.
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs-db", Labels: map[string]string{LabelOwner: "someone-else", LabelRole: RoleDatabase}}}
	if _, err := secrets.Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Options.SecretTemplate = "{{ .Name }}-database"
	if err := rt.Prepare(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.Get(ctx, "pr-52-db-secrets", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the Secret under its old name: %v; want it deleted", err)
	}
	for _, name := range []string{"pr-52-database", "theirs-db"} {
		if _, err := secrets.Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Bad settings are refused before anything is touched.
	for _, bad := range []struct {
		tmpl string
		keys map[string]string
		want string
	}{
		{"{{ .Release }}_DB", nil, `runtime.kubernetes.secret.name: "{{ .Release }}_DB" renders "pr-123456-an-organisation-a-repository-24165a_DB", not a Secret's name`},
		{"prenv-basic-auth", nil, "the basic-auth Secret's name"},
		{"{{ .Nmae }}", nil, "(fields: .PR, .Name, .Repo, .Namespace, .Release)"},
		{"", map[string]string{"database_url": "uri"}, `runtime.kubernetes.secret.keys.database_url: "uri": want one of url, host, port, database, user, password`},
		{"", map[string]string{"DATABASE URL": "url"}, `runtime.kubernetes.secret.keys: "DATABASE URL" is not a key a Secret can have`},
	} {
		n.Options.SecretTemplate, n.Options.SecretKeys = bad.tmpl, bad.keys
		if err := rt.Check(ctx, k); !errors.Is(err, runtime.ErrInvalid) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Check with secret %q %v = %v; want it to say %s", bad.tmpl, bad.keys, err, bad.want)
		}
	}
}
