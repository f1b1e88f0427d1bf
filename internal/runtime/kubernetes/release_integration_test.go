package kubernetes

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/testenv/kube"
)

func demoChart(t *testing.T) *chart.Chart {
	ch, err := loader.Load(filepath.Join("..", "..", "..", "examples", "demo", "chart"))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// prepared returns a namespace for PR pr and the releases helper.
func prepared(t *testing.T, c *kube.Cluster, pr int) (string, *Releases) {
	ctx := context.Background()
	n := namespaces(c)
	k := env.Key{PR: pr}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	ns, _ := n.Name(k)
	r := &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 60 * time.Second}
	t.Cleanup(func() { r.Uninstall(ns, ns); n.Teardown(ctx, k) })
	waitFor(t, 30*time.Second, func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	return ns, r
}

func image(t *testing.T, c *kube.Cluster, ns string) string {
	d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), ns+"-demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

func TestRelease_InstallsThenUpgradesWithTheHookGatingEachRollout(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns, r := prepared(t, c, 31)
	rel, err := r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("c1", nil), "c1")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Version != 1 || rel.Info.Status != rcommon.StatusDeployed || rel.Labels[LabelCommit] != "c1" {
		t.Fatalf("release %d %s %v", rel.Version, rel.Info.Status, rel.Labels)
	}
	if got := image(t, c, ns); got != "example/prenv-demo-app:c1" {
		t.Fatalf("image %s", got)
	}
	rel, err = r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("c2", nil), "c2")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Version != 2 || image(t, c, ns) != "example/prenv-demo-app:c2" {
		t.Fatalf("upgrade: revision %d image %s", rel.Version, image(t, c, ns))
	}
	if len(rel.Hooks) != 1 || rel.Hooks[0].LastRun.Phase != releasev1.HookPhaseSucceeded {
		t.Fatalf("the migration hook did not run and succeed: %+v", rel.Hooks)
	}
	cur, err := r.Current(ns, ns)
	if err != nil || cur.Labels[LabelCommit] != "c2" {
		t.Fatalf("Current = %v, %v", cur, err)
	}
}

func TestRelease_AFailingMigrationHookKeepsThePreviousRevisionServing(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns, r := prepared(t, c, 32)
	if _, err := r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("c1", nil), "c1"); err != nil {
		t.Fatal(err)
	}
	_, err := r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("bad", map[string]any{kube.FailLabel: "true"}), "bad")
	var de *DeployError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "pre-upgrade") || !strings.Contains(de.Diagnosis, "pr-32-demo-migrate failed") ||
		!strings.Contains(de.Diagnosis, "test failure requested") {
		t.Fatalf("err = %v", err)
	}
	if testing.Verbose() {
		t.Logf("up says: %v", err)
	}
	if got := image(t, c, ns); got != "example/prenv-demo-app:c1" {
		t.Fatalf("after a failed migration the deployment runs %s", got)
	}
	cur, err := r.Current(ns, ns)
	if err != nil || cur.Labels[LabelCommit] != "c1" {
		t.Fatalf("deployed revision = %v, %v", cur, err)
	}
}

// interrupted records what a run killed during an upgrade leaves: the
// revision after rel, pending-upgrade. It returns the Helm configuration.
func interrupted(t *testing.T, r *Releases, ns string, rel *releasev1.Release) *action.Configuration {
	t.Helper()
	cfg, err := r.config(ns)
	if err != nil {
		t.Fatal(err)
	}
	stuck := *rel
	info := *rel.Info
	stuck.Info, stuck.Version = &info, rel.Version+1
	stuck.Info.Status = rcommon.StatusPendingUpgrade
	if err := cfg.Releases.Create(&stuck); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRelease_AReleaseLeftPendingByAnInterruptedRunIsRecovered(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns, r := prepared(t, c, 33)
	rel, err := r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("c1", nil), "c1")
	if err != nil {
		t.Fatal(err)
	}
	// What a cancelled CI job leaves: a newer revision, pending-upgrade.
	cfg := interrupted(t, r, ns, rel)
	rel, err = r.Deploy(ctx, ns, ns, demoChart(t), prenvValues("c2", nil), "c2")
	if err != nil {
		t.Fatalf("up after an interrupted upgrade: %v", err)
	}
	if rel.Version != 3 || image(t, c, ns) != "example/prenv-demo-app:c2" {
		t.Fatalf("revision %d image %s", rel.Version, image(t, c, ns))
	}
	old, _ := cfg.Releases.Get(ns, 2)
	if o := old.(*releasev1.Release); o.Info.Status == rcommon.StatusPendingUpgrade {
		t.Fatal("the interrupted revision is still pending")
	}
}

func TestRelease_AChartOverTheQuotaSaysWhichQuota(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns, r := prepared(t, c, 34)
	r.Timeout = 8 * time.Second
	vals := prenvValues("c1", nil)
	vals["migration"] = map[string]any{"enabled": false}
	vals["resources"] = map[string]any{"requests": map[string]any{"cpu": "3", "memory": "64Mi"}, "limits": map[string]any{"cpu": "3", "memory": "64Mi"}}
	_, err := r.Deploy(ctx, ns, ns, demoChart(t), vals, "c1")
	var de *DeployError
	if !errors.As(err, &de) || !strings.Contains(de.Diagnosis, "exceeded quota: "+QuotaName) {
		t.Fatalf("err = %v", err)
	}
	if testing.Verbose() {
		t.Logf("up says: %v", err)
	}
}

func TestRelease_AHookLeftRunningByAnInterruptedRunIsCleanedUp(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns, r := prepared(t, c, 35)
	// A chart whose hook is deleted only when it succeeds: a hook Job an
	// interrupted run leaves behind would block the next one.
	ch := demoChart(t)
	for _, f := range ch.Templates {
		if strings.HasSuffix(f.Name, "migration-job.yaml") {
			f.Data = []byte(strings.Replace(string(f.Data), "before-hook-creation,hook-succeeded", "hook-succeeded", 1))
		}
	}
	rel, err := r.Deploy(ctx, ns, ns, ch, prenvValues("c1", nil), "c1")
	if err != nil {
		t.Fatal(err)
	}
	// The run that was killed: revision 2 pending-upgrade, its hook Job
	// created and still there.
	cfg := interrupted(t, r, ns, rel)
	hook := rel.Hooks[0]
	res, err := cfg.KubeClient.Build(strings.NewReader(hook.Manifest), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.KubeClient.Create(res); err != nil {
		t.Fatal(err)
	}
	before, err := c.Client.BatchV1().Jobs(ns).Get(ctx, hook.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel, err = r.Deploy(ctx, ns, ns, ch, prenvValues("c2", nil), "c2")
	if err != nil {
		t.Fatalf("up after a run interrupted during its hook: %v", err)
	}
	if rel.Version != 3 || rel.Hooks[0].LastRun.Phase != releasev1.HookPhaseSucceeded || image(t, c, ns) != "example/prenv-demo-app:c2" {
		t.Fatalf("revision %d hook %s image %s", rel.Version, rel.Hooks[0].LastRun.Phase, image(t, c, ns))
	}
	if after, err := c.Client.BatchV1().Jobs(ns).Get(ctx, hook.Name, metav1.GetOptions{}); err == nil && after.UID == before.UID {
		t.Fatal("the interrupted run's hook Job is still there")
	}
}

func TestRelease_ARolloutThatCannotFinishSaysWhyInWords(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	if err := c.SetLogs("starting shop", "panic: DATABASE_URL: connection refused"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		vals map[string]any
		want []string
	}{
		{"a crash-looping container, with its last lines", map[string]any{"podLabels": map[string]any{kube.CrashLabel: "true"}},
			[]string{"container app is waiting: CrashLoopBackOff", "last lines:", "panic: DATABASE_URL: connection refused"}},
		{"an image that cannot be pulled", map[string]any{"podLabels": map[string]any{kube.ImagePullLabel: "true"}},
			[]string{"container app is waiting: ImagePullBackOff", `Back-off pulling image "example/prenv-demo-app:c1"`}},
		{"pods no node can take", map[string]any{"nodeSelector": map[string]any{"disktype": "ssd"}},
			[]string{"cannot be scheduled", "node(s) didn't match Pod's node affinity/selector"}},
		{"pods Pod Security admission refuses", map[string]any{"securityContext": map[string]any{"privileged": true, "allowPrivilegeEscalation": true}},
			[]string{"cannot create pods", `violates PodSecurity "baseline:latest"`, "privileged"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, r := prepared(t, c, 36+i)
			r.Timeout = 8 * time.Second
			vals := prenvValues("c1", nil)
			vals["migration"] = map[string]any{"enabled": false}
			for k, v := range tc.vals {
				vals[k] = v
			}
			_, err := r.Deploy(ctx, ns, ns, demoChart(t), vals, "c1")
			var de *DeployError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(de.Diagnosis, w) {
					t.Fatalf("the diagnosis does not say %q:\n%v", w, err)
				}
			}
			if testing.Verbose() {
				t.Logf("up says: %v", err)
			}
		})
	}
}
