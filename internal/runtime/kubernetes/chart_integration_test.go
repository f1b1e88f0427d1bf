package kubernetes

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"

	"github.com/prenv/prenv/internal/env"
)

// renderDemo renders examples/demo/chart as release name in namespace ns
// with the values prenv sets, and decodes every manifest.
func renderDemo(t *testing.T, name, ns string, vals map[string]any) []runtime.Object {
	t.Helper()
	ch, err := loader.Load(filepath.Join("..", "..", "..", "examples", "demo", "chart"))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: name, Namespace: ns, IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var names []string
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	var objs []runtime.Object
	for _, f := range names {
		if !strings.HasSuffix(f, ".yaml") || strings.TrimSpace(files[f]) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(files[f]), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, files[f])
		}
		objs = append(objs, obj)
	}
	return objs
}

func prenvValues(commit string, podLabels map[string]any) map[string]any {
	return map[string]any{
		"image":    map[string]any{"tag": commit},
		"database": map[string]any{"secretName": SecretName},
		"ingress": map[string]any{"host": "pr-21.staging.example.com", "annotations": map[string]any{
			"external-dns.alpha.kubernetes.io/hostname": "pr-21.staging.example.com",
			"cert-manager.io/cluster-issuer":            "letsencrypt",
			"nginx.ingress.kubernetes.io/auth-url":      "https://oauth2.example.com/oauth2/auth",
		}},
		"migration": map[string]any{"podLabels": podLabels},
	}
}

func TestDemoChart_RendersWhatPrenvNeeds(t *testing.T) {
	objs := renderDemo(t, "pr-21", "pr-21", prenvValues("0123abcd", nil))
	var dep *appsv1.Deployment
	var job *batchv1.Job
	var ing *networkingv1.Ingress
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			dep = x
		case *batchv1.Job:
			job = x
		case *networkingv1.Ingress:
			ing = x
		}
	}
	if dep == nil || job == nil || ing == nil {
		t.Fatalf("want a Deployment, a Job and an Ingress, got %d objects", len(objs))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "example/prenv-demo-app:0123abcd" || c.Env[2].ValueFrom.SecretKeyRef.Name != SecretName {
		t.Fatalf("deployment container %+v", c)
	}
	if job.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" || !strings.Contains(job.Annotations["helm.sh/hook-delete-policy"], "before-hook-creation") {
		t.Fatalf("migration job annotations %v", job.Annotations)
	}
	if ing.Spec.Rules[0].Host != "pr-21.staging.example.com" || ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" ||
		ing.Annotations["nginx.ingress.kubernetes.io/auth-url"] == "" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "pr-21-demo-tls" {
		t.Fatalf("ingress %+v %v", ing.Spec, ing.Annotations)
	}
}

func TestDemoChart_RunsInAPreparedNamespaceAtTheRestrictedLevel(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	n.Options.PodSecurity = "restricted"
	k := env.Key{PR: 21}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Teardown(ctx, k) })
	waitFor(t, 30*time.Second, func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts("pr-21").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	for _, o := range renderDemo(t, "pr-21", "pr-21", prenvValues("0123abcd", nil)) {
		var err error
		switch x := o.(type) {
		case *appsv1.Deployment:
			_, err = c.Client.AppsV1().Deployments("pr-21").Create(ctx, x, metav1.CreateOptions{})
		case *batchv1.Job:
			_, err = c.Client.BatchV1().Jobs("pr-21").Create(ctx, x, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = c.Client.CoreV1().Services("pr-21").Create(ctx, x, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = c.Client.NetworkingV1().Ingresses("pr-21").Create(ctx, x, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	waitFor(t, 60*time.Second, func() bool {
		j, err := c.Client.BatchV1().Jobs("pr-21").Get(ctx, "pr-21-demo-migrate", metav1.GetOptions{})
		return err == nil && j.Status.Succeeded == 1
	})
	waitFor(t, 60*time.Second, func() bool {
		d, err := c.Client.AppsV1().Deployments("pr-21").Get(ctx, "pr-21-demo", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 1
	})
}
