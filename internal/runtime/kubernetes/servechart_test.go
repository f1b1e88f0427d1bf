package kubernetes_test

import (
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"

	"github.com/prenv/prenv/internal/config"
)

var updateGolden = flag.Bool("update", false, "rewrite the rendered charts in testdata/servechart")

// serveChart is prenv's own chart, deploy/helm/prenv: prenv serve in the
// team's cluster.
var serveChart = filepath.Join("..", "..", "..", "deploy", "helm", "prenv")

// serveValues are the least a team gives: its image and, for two
// replicas, the shared store's Secret; more merges over them.
func serveValues(more string) map[string]any {
	vals := map[string]any{}
	base := "image: {repository: registry.example.com/platform/prenv}\nsecrets: {store: {name: prenv-store, key: url}}\n"
	for _, doc := range []string{base, more} {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			panic(err)
		}
		vals = util.MergeTables(m, vals)
	}
	return vals
}

// renderServe renders the chart as Helm install does, its values checked
// against values.schema.json, and returns the manifests by file.
func renderServe(t *testing.T, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(serveChart)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := util.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{Name: "prenv", Namespace: "prenv-system", IsInstall: true}, common.DefaultCapabilities, false)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// decoded is every manifest of files, decoded, in the files' order.
func decoded(t *testing.T, files map[string]string) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	for _, f := range sortedKeys(files) {
		if !strings.HasSuffix(f, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[f], "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
			if err != nil {
				if strings.Contains(doc, "kind: ServiceMonitor") {
					continue // the Prometheus Operator's kind: not in client-go's scheme
				}
				t.Fatalf("%s: %v\n%s", f, err, doc)
			}
			objs = append(objs, obj)
		}
	}
	return objs
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestServeChart_LintsClean(t *testing.T) {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = "prenv-system"
	for name, vals := range map[string]map[string]any{"defaults": serveValues(""), "everything": serveValues(everything)} {
		res := l.Run([]string{serveChart}, vals)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev { // INFO (no icon) is advice
				t.Errorf("%s: helm lint --strict: %s", name, m)
			}
		}
		for _, err := range res.Errors {
			t.Errorf("%s: helm lint --strict: %v", name, err)
		}
	}
}

// everything turns on every part of the chart.
const everything = `
image: {tag: v1.2.3, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
config:
  version: 1
  owner: acme-previews
  repository: acme/shop
  sweep: {interval: 1h}
  database: {provider: aurora, aurora: {region: eu-west-1, subnet_group: previews, security_groups: [sg-1]}}
  runtime: {provider: kubernetes, kubernetes: {chart: oci://registry.example.com/charts/shop, url: "https://{{ .Name }}.preview.example.com"}}
  golden: {schedule: "17 2 * * *", source: {aurora: {cluster: prod}}}
secrets:
  webhook: {name: prenv-github, key: webhook-secret}
  githubAppKey: {name: prenv-github, key: private-key.pem}
  password: {name: prenv-login, key: password}
env: [{name: AWS_REGION, value: eu-west-1}]
serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/prenv-previews"}}
rbac: {extraRules: [{apiGroups: [policy], resources: [poddisruptionbudgets], verbs: [get, create, update, patch, delete]}]}
ingress: {enabled: true, className: nginx, host: prenv.example.com, tlsSecret: prenv-tls, annotations: {cert-manager.io/cluster-issuer: letsencrypt}}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
sweep: {cronJob: {enabled: true}}
golden: {cronJob: {enabled: true, serviceAccount: {annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/prenv-golden"}}}}
`

// The rendered manifests are kept in testdata: a change to the chart shows
// in review as a change to what it makes (go test -update rewrites them).
func TestServeChart_RendersTheManifestsInTestdata(t *testing.T) {
	for name, more := range map[string]string{"defaults": "", "everything": everything} {
		files, err := renderServe(t, serveValues(more))
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, f := range sortedKeys(files) {
			if strings.TrimSpace(files[f]) == "" || strings.HasSuffix(f, "NOTES.txt") {
				continue
			}
			b.WriteString("# " + f + "\n" + strings.TrimSpace(files[f]) + "\n")
		}
		golden := filepath.Join("testdata", "servechart", name+".yaml")
		if *updateGolden {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (go test -run TestServeChart -update writes it)", err)
		}
		if string(want) != b.String() {
			t.Errorf("%s: the rendered chart differs from %s (go test -run TestServeChart -update rewrites it after review):\n%s", name, golden, b.String())
		}
	}
}

// What the manifests say, read as Kubernetes reads them.
func TestServeChart_RunsServeNonRootReadOnlyWithProbesAndNoDuplicateSchedules(t *testing.T) {
	files, err := renderServe(t, serveValues(everything))
	if err != nil {
		t.Fatal(err)
	}
	var dep *appsv1.Deployment
	var cm *corev1.ConfigMap
	var crons []*batchv1.CronJob
	for _, o := range decoded(t, files) {
		switch x := o.(type) {
		case *networkingv1.Ingress:
			// The outside reaches the webhooks and the log pages, never
			// /metrics or the API.
			var paths []string
			for _, p := range x.Spec.Rules[0].HTTP.Paths {
				paths = append(paths, p.Path)
			}
			if strings.Join(paths, " ") != "/webhooks/github /envs/" {
				t.Errorf("the Ingress routes %v", paths)
			}
		case *appsv1.Deployment:
			dep = x
		case *corev1.ConfigMap:
			cm = x
		case *batchv1.CronJob:
			crons = append(crons, x)
		}
	}
	if dep == nil || cm == nil || len(crons) != 2 {
		t.Fatalf("a Deployment, a ConfigMap and two CronJobs: %v %v %d", dep != nil, cm != nil, len(crons))
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if *dep.Spec.Replicas != 2 || c.Image != "registry.example.com/platform/prenv@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("replicas %d image %s", *dep.Spec.Replicas, c.Image)
	}
	if !*pod.SecurityContext.RunAsNonRoot || *pod.SecurityContext.RunAsUser != 65532 || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		*c.SecurityContext.AllowPrivilegeEscalation || c.SecurityContext.Capabilities.Drop[0] != "ALL" {
		t.Errorf("security: pod %+v container %+v", pod.SecurityContext, c.SecurityContext)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/api/v1/ready" || c.LivenessProbe.HTTPGet.Path != "/api/v1/health" {
		t.Errorf("probes: ready %s alive %s", c.ReadinessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Path)
	}
	if strings.Join(c.Args, " ") != "serve --config /etc/prenv/prenv.yaml --listen :8080 --log-format json" {
		t.Errorf("args %v", c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env[e.Name] = "field " + e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["PRENV_STORE"] != "prenv-store/url" || env["PRENV_GITHUB_WEBHOOK_SECRET"] != "prenv-github/webhook-secret" ||
		env["PRENV_GITHUB_APP_KEY_FILE"] != "/etc/prenv/github/private-key.pem" || env["AWS_REGION"] != "eu-west-1" || env["PRENV_HOME"] != "/var/lib/prenv" ||
		env["POD_NAMESPACE"] != "field metadata.namespace" {
		t.Errorf("env %v", env)
	}
	// The CronJobs sweep and build: serve does neither.
	var cfg struct {
		Sweep  struct{ Interval string }
		Golden map[string]any
	}
	if err := yaml.Unmarshal([]byte(cm.Data["prenv.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Sweep.Interval != "0s" || cfg.Golden["schedule"] != nil || cfg.Golden["source"] == nil {
		t.Errorf("serve's prenv.yaml with the CronJobs on:\n%s", cm.Data["prenv.yaml"])
	}
	// prenv itself reads the file the chart writes.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prenv.yaml"), []byte(cm.Data["prenv.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load("", dir, func(string) string { return "" }); err != nil {
		t.Errorf("prenv does not load the prenv.yaml the chart writes: %v\n%s", err, cm.Data["prenv.yaml"])
	}
	for _, cj := range crons {
		spec := cj.Spec.JobTemplate.Spec.Template.Spec
		if strings.HasSuffix(cj.Name, "-golden") && spec.ServiceAccountName != "prenv-golden" {
			t.Errorf("the golden build runs as %s, not a service account of its own", spec.ServiceAccountName)
		}
		if spec.Containers[0].Args[0] != map[bool]string{true: "golden", false: "sweep"}[strings.HasSuffix(cj.Name, "-golden")] {
			t.Errorf("%s runs %v", cj.Name, spec.Containers[0].Args)
		}
		// Their pods are not serve's: the Service and the budget select
		// serve's alone.
		if cj.Spec.JobTemplate.Spec.Template.Labels["app.kubernetes.io/component"] == "serve" {
			t.Errorf("%s's pods carry serve's component label", cj.Name)
		}
	}
}

func TestServeChart_RefusesValuesThatCannotWork(t *testing.T) {
	for want, vals := range map[string]map[string]any{
		"image.repository: where make image pushed":                     {"secrets": map[string]any{"store": map[string]any{"name": "s", "key": "url"}}},
		"replicaCount is more than 1 but secrets.store names no Secret": {"image": map[string]any{"repository": "r/prenv"}},
		"digest":   serveValues("image: {digest: latest}"),
		"imagetag": serveValues("imagetag: v1"),
		"config.database.provider: in a cluster prenv clones Aurora":            serveValues("config: {database: {provider: localpg}}"),
		"golden.cronJob.serviceAccount.name: the golden build reads production": serveValues("golden: {cronJob: {enabled: true, serviceAccount: {create: false}}}"),
	} {
		_, err := renderServe(t, vals)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error with %q, got %v", want, err)
		}
	}
	// One replica needs no shared store.
	if _, err := renderServe(t, map[string]any{"image": map[string]any{"repository": "r/prenv"}, "replicaCount": 1, "config": map[string]any{"database": map[string]any{"provider": "aurora"}}}); err != nil {
		t.Errorf("one replica without a store: %v", err)
	}
}
