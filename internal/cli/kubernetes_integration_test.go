package cli_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/testenv"
	"github.com/prenv/prenv/internal/testenv/kube"
)

const kubeValues = `|
      image: {tag: "{{ .Commit }}"}
      database: {secretName: {{ .SecretName }}}
      ingress:
        host: "{{ .Name }}.preview.example.com"
        annotations:
          external-dns.alpha.kubernetes.io/hostname: "{{ .Name }}.preview.example.com"
          cert-manager.io/cluster-issuer: letsencrypt`

// kubeHarness is a harness whose prenv.yaml selects the kubernetes runtime
// on a test control plane.
func kubeHarness(t *testing.T, extra string) (*harness, *kube.Cluster) {
	h := newHarness(t)
	root := testenv.ModuleRoot(t)
	ctx := context.Background()
	bin, err := kube.Binaries(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	c, err := kube.Start(ctx, dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kube.Stop(dir) })
	h.dir = t.TempDir()
	h.writeKubeConfig(c.Kubeconfig, filepath.Join(root, "examples", "demo", "chart"), kubeValues, extra)
	return h, c
}

func (h *harness) writeKubeConfig(kubeconfig, chart, values, extra string) {
	cfg := fmt.Sprintf(`version: 1
runtime:
  provider: kubernetes
  kubernetes:
    kubeconfig: %s
    chart: %s
    url: "https://{{ .Name }}.preview.example.com"
    timeout: 60s
    delete_timeout: 60s
    values: %s
%s`, kubeconfig, chart, values, extra)
	if err := os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte(cfg), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func TestKubernetes_UpNewCommitAndDownThroughTheCLI(t *testing.T) {
	h, c := kubeHarness(t, "")
	// Credentials from an exec plugin, as 'aws eks update-kubeconfig' writes.
	execConfig, err := c.ExecKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	root := testenv.ModuleRoot(t)
	h.writeKubeConfig(execConfig, filepath.Join(root, "examples", "demo", "chart"), kubeValues, "")
	h.golden(10)
	ctx := context.Background()
	h.must("up", "--pr", "41", "--sha", "c1")
	st := h.status(41)
	if st.State != "ready" || st.Commit != "c1" || st.URL != "https://pr-41.preview.example.com" || !strings.Contains(st.stepNames(), "deploy") {
		t.Fatalf("status after up: %+v", st)
	}
	if st.Auth.User != "" || st.Auth.Password != "" {
		t.Fatalf("status shows prenv's basic-auth login for a Kubernetes environment, which the team's auth layer guards: %+v", st.Auth)
	}
	secret, err := c.Client.CoreV1().Secrets("pr-41").Get(ctx, "prenv-database", metav1.GetOptions{})
	if err != nil || string(secret.Data["DATABASE_URL"]) != st.Database.URL {
		t.Fatalf("the environment's Secret does not hold its database: %v", err)
	}
	ing, err := c.Client.NetworkingV1().Ingresses("pr-41").Get(ctx, "pr-41-demo", metav1.GetOptions{})
	if err != nil || ing.Spec.Rules[0].Host != "pr-41.preview.example.com" || ing.Annotations["cert-manager.io/cluster-issuer"] != "letsencrypt" {
		t.Fatalf("ingress: %+v %v", ing, err)
	}
	// The team turns on the basic-auth login prenv makes, for ingress-nginx.
	h.writeKubeConfig(execConfig, filepath.Join(root, "examples", "demo", "chart"), kubeValues+`
          nginx.ingress.kubernetes.io/auth-type: basic
          nginx.ingress.kubernetes.io/auth-secret: "{{ .AuthSecretName }}"`, "    basic_auth: {enabled: true}\n")
	if out := h.must("up", "--pr", "41", "--sha", "c2"); !strings.Contains(out, "login:    prenv / ") {
		t.Fatalf("up does not show the login:\n%s", out)
	}
	st2 := h.status(41)
	auth, err := c.Client.CoreV1().Secrets("pr-41").Get(ctx, "prenv-basic-auth", metav1.GetOptions{})
	if err != nil || st2.Auth.User != "prenv" || st2.Auth.Password == "" || string(auth.Data["password"]) != st2.Auth.Password {
		t.Fatalf("status login %+v, secret %v", st2.Auth, err)
	}
	ing, err = c.Client.NetworkingV1().Ingresses("pr-41").Get(ctx, "pr-41-demo", metav1.GetOptions{})
	if err != nil || ing.Annotations["nginx.ingress.kubernetes.io/auth-secret"] != "prenv-basic-auth" {
		t.Fatalf("ingress annotations after basic_auth: %v %v", ing.Annotations, err)
	}
	d, err := c.Client.AppsV1().Deployments("pr-41").Get(ctx, "pr-41-demo", metav1.GetOptions{})
	if err != nil || st2.Commit != "c2" || st2.Database.URL != st.Database.URL || d.Spec.Template.Spec.Containers[0].Image != "example/prenv-demo-app:c2" {
		t.Fatalf("after a new commit: %+v, image %v", st2, err)
	}
	// prenv logs shows what the environment's containers printed.
	if err := c.SetLogs("shop listening on :8080", "GET / 200"); err != nil {
		t.Fatal(err)
	}
	if out := h.must("logs", "--pr", "41"); !strings.Contains(out, "/app | shop listening on :8080\n") || !strings.Contains(out, "/app | GET / 200\n") {
		t.Fatalf("logs:\n%s", out)
	}
	if out := h.must("logs", "--pr", "41", "-n", "1"); strings.Contains(out, "shop listening") || !strings.Contains(out, "GET / 200") {
		t.Fatalf("logs -n 1:\n%s", out)
	}
	if out := h.must("ls"); !strings.Contains(out, "https://pr-41.preview.example.com") {
		t.Fatalf("ls:\n%s", out)
	}
	for i := 0; i < 2; i++ {
		h.must("down", "--pr", "41")
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "pr-41", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace after down: %v", err)
	}
	if _, errs, code := h.run("logs", "--pr", "41"); code != 5 || !strings.Contains(errs, "pr-41 has no pods") {
		t.Fatalf("logs after down: exit %d\n%s", code, errs)
	}
}

func TestKubernetes_BadInputIsRefusedBeforeAnythingIsCreated(t *testing.T) {
	h, c := kubeHarness(t, "")
	h.golden(10)
	root := testenv.ModuleRoot(t)
	chart := filepath.Join(root, "examples", "demo", "chart")
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	unreachable := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(unreachable, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://%s\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n", closed)), 0o600)
	cases := []struct {
		name                  string
		kubeconfig, ch, extra string
		values                string
		code                  int
		want                  string
	}{
		{"a chart path that does not exist", c.Kubeconfig, "/nonexistent/chart", "", kubeValues, 2, "runtime.kubernetes.chart"},
		{"a values template with an unknown field", c.Kubeconfig, chart, "", `"image: {tag: {{ .Branch }}}"`, 2, "can't evaluate field Branch"},
		{"a chart that does not render", c.Kubeconfig, chart, "", `"database: {secretName: \"\"}"`, 2, "does not render"},
		{"an invalid namespace template", c.Kubeconfig, chart, "    namespace: \"PR_{{ .PR }}\"\n", kubeValues, 2, "not a DNS label"},
		{"an unreachable cluster", unreachable, chart, "", kubeValues, 1, "cannot reach the cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.writeKubeConfig(tc.kubeconfig, tc.ch, tc.values, tc.extra)
			out, errs, code := h.run("up", "--pr", "42", "--sha", "c1")
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, tc.code, tc.want, out, errs)
			}
			h.nothingRecorded()
			if _, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "pr-42", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("a namespace was created: %v", err)
			}
			if n := len(dirs(t, filepath.Join(h.home, "clones"))); n != 0 {
				t.Fatalf("a database was cloned")
			}
		})
	}
}
