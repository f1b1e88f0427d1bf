package kube

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/testenv"
)

func TestControlPlane_SchedulesPodsCompletesAndFailsJobsAndEnforcesQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real control plane; runs without -short")
	}
	ctx := context.Background()
	bin, err := Binaries(ctx, testenv.ModuleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := Start(ctx, dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Stop(dir) })
	again, err := Start(ctx, dir, bin)
	if err != nil || again.Kubeconfig != c.Kubeconfig {
		t.Fatalf("a second Start did not reuse the running control plane: %v", err)
	}
	ns := "smoke"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the default service account", func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example/web:1"}}}}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "pod web Ready on the kwok node", func() bool {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == NodeName && p.Status.Phase == corev1.PodRunning
	})
	// Its log, through the apiserver from kwok's kubelet API.
	if err := c.SetLogs("listening on :8080", "GET /healthz 200"); err != nil {
		t.Fatal(err)
	}
	logs, err := c.Client.CoreV1().Pods(ns).GetLogs("web", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || string(logs) != "listening on :8080\nGET /healthz 200\n" {
		t.Fatalf("pod logs %q, %v", logs, err)
	}
	crash := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crash", Labels: map[string]string{CrashLabel: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example/web:1"}}}}
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, crash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "pod crash in CrashLoopBackOff", func() bool {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "crash", metav1.GetOptions{})
		return err == nil && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	job := func(name string, fail bool) *batchv1.Job {
		labels := map[string]string{}
		if fail {
			labels[FailLabel] = "true"
		}
		zero := int32(0)
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: batchv1.JobSpec{BackoffLimit: &zero,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "migrate", Image: "example/migrate:1"}}}}}}
	}
	for name, fail := range map[string]bool{"migrate-ok": false, "migrate-bad": true} {
		if _, err := c.Client.BatchV1().Jobs(ns).Create(ctx, job(name, fail), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	condition := func(name string, want batchv1.JobConditionType) func() bool {
		return func() bool {
			j, err := c.Client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, cond := range j.Status.Conditions {
				if cond.Type == want && cond.Status == corev1.ConditionTrue {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, 60*time.Second, "job migrate-ok Complete", condition("migrate-ok", batchv1.JobComplete))
	waitFor(t, 60*time.Second, "job migrate-bad Failed", condition("migrate-bad", batchv1.JobFailed))

	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{
		corev1.ResourceRequestsCPU: resource.MustParse("100m"), corev1.ResourceRequestsMemory: resource.MustParse("64Mi"),
		corev1.ResourceLimitsCPU: resource.MustParse("200m"), corev1.ResourceLimitsMemory: resource.MustParse("128Mi")}}}
	if _, err := c.Client.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	big := pod.DeepCopy()
	big.Name = "big"
	big.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi")}}
	waitFor(t, 30*time.Second, "the quota refusing a pod over it", func() bool {
		_, err := c.Client.CoreV1().Pods(ns).Create(ctx, big, metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), "exceeded quota")
	})
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
