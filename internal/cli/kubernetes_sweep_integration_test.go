package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prenv/prenv/internal/env"
	k8srt "github.com/prenv/prenv/internal/runtime/kubernetes"
	"github.com/prenv/prenv/internal/testenv"
	"github.com/prenv/prenv/internal/testenv/kube"
)

// The sweeper's acceptance tests on Kubernetes, through the CLI: leaks are
// made the way they happen (an up killed with -9 at each step, the store
// lost), and what is gone or left is read from the API server with
// client-go, never through prenv.

// kubeSweepOwner is this installation's owner id: sweep --apply refuses
// the default "prenv" on a cluster every installation may share.
const kubeSweepOwner = "acme-previews"

// kubeSweepItem is one line of 'prenv sweep -o json' as these tests read it.
type kubeSweepItem struct {
	Provider string `json:"provider"`
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Legacy   bool   `json:"legacy"`
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason"`
	Outcome  string `json:"outcome"`
}

// kubeSweep runs 'prenv sweep -o json' with args and returns its items by
// "provider/kind/id"; it fails the test unless prenv exits 0.
func (h *harness) kubeSweep(args ...string) (applied bool, items map[string]kubeSweepItem) {
	h.t.Helper()
	out := h.must(append([]string{"sweep", "-o", "json"}, args...)...)
	var p struct {
		Applied bool            `json:"applied"`
		Items   []kubeSweepItem `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		h.t.Fatalf("sweep -o json: %v\n%s", err, out)
	}
	items = map[string]kubeSweepItem{}
	for _, it := range p.Items {
		items[it.Provider+"/"+it.Kind+"/"+it.ID] = it
	}
	return p.Applied, items
}

// clusterInventory is everything on the cluster a sweep could change, as
// the API server shows it: every namespace with its labels, annotations,
// phase and whether its deletion began, and every Helm release record
// (Helm's secret storage: Secrets labelled owner=helm) with its labels.
func clusterInventory(t *testing.T, c *kube.Cluster) []string {
	t.Helper()
	ctx := context.Background()
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ns := range nss.Items {
		out = append(out, fmt.Sprintf("namespace %s phase=%s deleting=%v labels=%v annotations=%v",
			ns.Name, ns.Status.Phase, ns.DeletionTimestamp != nil, ns.Labels, ns.Annotations))
	}
	secrets, err := c.Client.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		out = append(out, fmt.Sprintf("helm release record %s/%s labels=%v", s.Namespace, s.Name, s.Labels))
	}
	sort.Strings(out)
	return out
}

// clusterNamespace reads a namespace from the API server: nil once it is
// gone.
func clusterNamespace(t *testing.T, c *kube.Cluster, name string) *corev1.Namespace {
	t.Helper()
	ns, err := c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// namespaceUntouched fails the test unless name is still there, not being
// deleted.
func namespaceUntouched(t *testing.T, c *kube.Cluster, name string) {
	t.Helper()
	if ns := clusterNamespace(t, c, name); ns == nil || ns.DeletionTimestamp != nil {
		t.Errorf("namespace %s was deleted, or is being deleted: %+v", name, ns)
	}
}

// namespaceGone fails the test unless name is gone according to the API
// server (prenv says deleted only once the namespace controller is done).
func namespaceGone(t *testing.T, c *kube.Cluster, name string) {
	t.Helper()
	if ns := clusterNamespace(t, c, name); ns != nil {
		t.Errorf("namespace %s is still there (phase %s, deleting %v)", name, ns.Status.Phase, ns.DeletionTimestamp != nil)
	}
}

// createNamespace makes a namespace directly with client-go, as a person,
// a team's old script or another installation would.
func createNamespace(t *testing.T, c *kube.Cluster, name string, labels, annotations map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	if _, err := c.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// annotateNamespace sets annotations on a namespace.
func annotateNamespace(t *testing.T, c *kube.Cluster, name string, annotations map[string]string) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if _, err := c.Client.CoreV1().Namespaces().Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// prenvNamespaceMeta is what prenv writes on an environment's namespace
// when it makes one for owner, for namespaces a test makes directly.
func prenvNamespaceMeta(owner string, k env.Key, created time.Time) (labels, annotations map[string]string) {
	return map[string]string{k8srt.LabelOwner: owner, k8srt.LabelEnv: k.Name(), k8srt.LabelPR: strconv.Itoa(k.PR), k8srt.LabelEphemeral: "true"},
		map[string]string{k8srt.AnnotationKey: k.String(), k8srt.AnnotationRepo: k.Repo,
			k8srt.AnnotationCreatedAt: created.UTC().Format(time.RFC3339), k8srt.AnnotationExpiresAt: created.Add(time.Hour).UTC().Format(time.RFC3339)}
}

// waitCluster polls cond, which reads the cluster, until it holds; it
// fails the test after d, saying what was awaited.
func waitCluster(t *testing.T, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error: %v)", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killUpWhen starts 'prenv up --pr pr --sha c1' and kills it with SIGKILL
// as soon as cond, which reads the cluster, holds. It reports whether the
// kill found up still running (an up may finish between the condition and
// the kill); an up that ends before the condition holds fails the test.
func (h *harness) killUpWhen(pr int, what string, cond func() (bool, error)) bool {
	t := h.t
	t.Helper()
	cmd := h.command("up", "--pr", strconv.Itoa(pr), "--sha", "c1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(90 * time.Second)
	for {
		ok, err := cond()
		if ok {
			break
		}
		select {
		case werr := <-done:
			if ok, _ := cond(); ok {
				return false
			}
			t.Fatalf("up --pr %d ended (%v) before %s (last error: %v):\n%s", pr, werr, what, err, out.String())
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("up --pr %d: %s not seen within 90s (last error: %v):\n%s", pr, what, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	ee, ok := err.(*exec.ExitError)
	killed := ok && ee.Sys().(syscall.WaitStatus).Signaled()
	t.Logf("up --pr %d: %s; killed with -9: %v", pr, what, killed)
	return killed
}

// The leaks the sweeper exists for, on Kubernetes: ups killed with -9 when
// their namespace appears (prepare), while Helm's release is
// pending-install (deploy), and when the app is ready, then the store
// lost. A dry run changes nothing on the cluster; --apply removes every
// namespace of them, and their clones, and leaves alone another
// installation's namespace, a pr-N namespace without prenv's labels and
// one of ours with deletion protection (whose whole environment is kept).
// A namespace deleted out of band breaks neither sweep, up nor down.
func TestKubernetesSweep_WhatKilledUpsAndALostStoreLeftIsGoneFromTheCluster(t *testing.T) {
	h, c := kubeHarness(t, "")
	h.golden(10)
	h.extra = append(h.extra, "PRENV_SWEEP_GRACE=0s", "PRENV_OWNER="+kubeSweepOwner)
	ctx := context.Background()
	chart := filepath.Join(testenv.ModuleRoot(t), "examples", "demo", "chart")

	// pr-1 is up and protected by hand.
	h.must("up", "--pr", "1", "--sha", "c1")
	protection := k8srt.AnnotationDeletionProtection
	annotateNamespace(t, c, "pr-1", map[string]string{protection: "true"})

	// pr-2: killed in prepare, once its namespace exists.
	h.killUpWhen(2, "namespace pr-2 exists", func() (bool, error) {
		_, err := c.Client.CoreV1().Namespaces().Get(ctx, "pr-2", metav1.GetOptions{})
		return err == nil, err
	})
	// pr-3: killed in deploy, its release pending-install: its pods can
	// never be scheduled, so Helm waits.
	h.writeKubeConfig(c.Kubeconfig, chart, kubeValues+"\n      nodeSelector: {prenv.dev/test-nowhere: \"true\"}", "")
	if !h.killUpWhen(3, "Helm's release record of pr-3 is pending-install", func() (bool, error) {
		l, err := c.Client.CoreV1().Secrets("pr-3").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,status=pending-install"})
		return err == nil && len(l.Items) > 0, err
	}) {
		t.Fatal("the test is void: up --pr 3 was not running when killed")
	}
	h.writeKubeConfig(c.Kubeconfig, chart, kubeValues, "")
	// pr-4: killed once its app is ready.
	h.killUpWhen(4, "deployment pr-4-demo is ready", func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments("pr-4").Get(ctx, "pr-4-demo", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas > 0, err
	})

	// Another installation's environment, and a namespace named like ours
	// that prenv did not make.
	otherLabels, otherAnnotations := prenvNamespaceMeta("someone-else", env.Key{PR: 90}, time.Now().Add(-100*time.Hour))
	createNamespace(t, c, "pr-90", otherLabels, otherAnnotations)
	createNamespace(t, c, "pr-91", map[string]string{"team": "data"}, nil)

	// The store is lost.
	for _, f := range []string{"prenv.db", "prenv.db-wal", "prenv.db-shm"} {
		if err := removeIfExists(filepath.Join(h.home, f)); err != nil {
			t.Fatal(err)
		}
	}

	var plan map[string]kubeSweepItem
	t.Run("a dry run changes nothing", func(t *testing.T) {
		before := clusterInventory(t, c)
		var applied bool
		applied, plan = h.kubeSweep()
		if after := clusterInventory(t, c); !reflect.DeepEqual(before, after) {
			t.Fatalf("a dry run changed the cluster:\nbefore %q\nafter  %q", before, after)
		}
		if applied {
			t.Error("a sweep without --apply says it applied its plan")
		}
	})
	t.Run("the plan", func(t *testing.T) {
		if it := plan["kubernetes/namespace/pr-3"]; it.Verdict != "half-made" || !strings.Contains(it.Reason, "pending-install") {
			t.Errorf("pr-3, killed while its release was pending-install: %+v; want half-made saying pending-install", it)
		}
		if it := plan["kubernetes/namespace/pr-2"]; it.Verdict != "half-made" {
			t.Errorf("pr-2, killed in prepare: %+v; want half-made", it)
		}
		for _, id := range []string{"pr-1", "pr-4"} {
			if it := plan["kubernetes/namespace/"+id]; it.Verdict != "orphaned" && it.Verdict != "half-made" {
				t.Errorf("%s: %+v; want orphaned (or half-made)", id, it)
			}
		}
		if it := plan["kubernetes/namespace/pr-1"]; !strings.Contains(it.Reason, protection) {
			t.Errorf("pr-1's reason does not say it is protected: %+v", it)
		}
		for _, id := range []string{"pr-90", "pr-91"} {
			if it, shown := plan["kubernetes/namespace/"+id]; shown {
				t.Errorf("a foreign namespace is listed without --show-foreign: %+v", it)
			}
		}
		_, all := h.kubeSweep("--show-foreign")
		for _, id := range []string{"pr-90", "pr-91"} {
			if it := all["kubernetes/namespace/"+id]; it.Verdict != "foreign" {
				t.Errorf("%s with --show-foreign: %+v; want foreign", id, it)
			}
		}
	})

	t.Run("apply removes what the killed ups left and nothing else", func(t *testing.T) {
		applied, got := h.kubeSweep("--apply")
		if !applied {
			t.Error("sweep --apply does not say it applied its plan")
		}
		for _, id := range []string{"pr-2", "pr-3", "pr-4"} {
			if it := got["kubernetes/namespace/"+id]; it.Outcome != "deleted" {
				t.Errorf("%s: %+v; want deleted", id, it)
			}
			namespaceGone(t, c, id)
		}
		// One protected resource keeps its whole environment.
		for _, key := range []string{"kubernetes/namespace/pr-1", "localpg/clone/pr-1"} {
			if it := got[key]; !strings.HasPrefix(it.Outcome, "protected: ") {
				t.Errorf("%s: %+v; want protected", key, it)
			}
		}
		for _, id := range []string{"pr-1", "pr-90", "pr-91"} {
			namespaceUntouched(t, c, id)
		}
		if left := envDirs(t, filepath.Join(h.home, "clones")); !reflect.DeepEqual(left, []string{"pr-1"}) {
			t.Errorf("clones left: %q; want only the protected environment's", left)
		}
		secrets, err := c.Client.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			if s.Namespace != "pr-1" {
				t.Errorf("Helm release record %s/%s is left", s.Namespace, s.Name)
			}
		}
	})

	t.Run("disappears: a namespace deleted out of band", func(t *testing.T) {
		h.must("up", "--pr", "5", "--sha", "c1")
		deleteAndWait := func() {
			if err := c.Client.CoreV1().Namespaces().Delete(ctx, "pr-5", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			waitCluster(t, 60*time.Second, "namespace pr-5 deleted out of band is gone", func() (bool, error) {
				_, err := c.Client.CoreV1().Namespaces().Get(ctx, "pr-5", metav1.GetOptions{})
				return apierrors.IsNotFound(err), err
			})
		}
		deleteAndWait()
		_, got := h.kubeSweep("--apply")
		for key, it := range got {
			if strings.HasPrefix(it.Outcome, "failed") {
				t.Errorf("%s: %+v", key, it)
			}
		}
		if it := got["localpg/clone/pr-5"]; it.Verdict != "keep" {
			t.Errorf("the clone of open pr-5 whose namespace is gone: %+v; want keep", it)
		}
		upOut := h.must("up", "--pr", "5", "--sha", "c1")
		if st := h.status(5); st.State != "ready" {
			t.Fatalf("up after its namespace was deleted out of band: %+v", st)
		}
		// The app is back. Waited for rather than read once: in one run
		// of five, the Deployment read 0 ready replicas just after up said
		// ready (likely the controllers' caches still holding the deleted
		// ReplicaSet of the same name, so that its status, which Helm's
		// wait reads, said ready before it counted the new pod).
		waitCluster(t, 60*time.Second, "pr-5's deployment is ready again after up\n"+upOut, func() (bool, error) {
			d, err := c.Client.AppsV1().Deployments("pr-5").Get(ctx, "pr-5-demo", metav1.GetOptions{})
			return err == nil && d.Status.ReadyReplicas > 0, err
		})
		deleteAndWait()
		h.must("down", "--pr", "5")
		namespaceGone(t, c, "pr-5")
		if st := h.status(5); st.State != "deleted" {
			t.Errorf("status after down: %+v", st)
		}
	})
}

// Namespaces a team's old script made (preview-N labelled ephemeral=true)
// are listed apart, deleted only with --apply --legacy and only once older
// than sweep.legacy.older_than; ones the selection does not name, or with
// deletion protection, stay. --apply refuses the default owner id on a
// cluster, and a namespace of the default owner is another
// installation's once the owner is set.
func TestKubernetesSweep_LegacyNamespacesGoOnlyWithLegacyOnceOldEnough(t *testing.T) {
	h, c := kubeHarness(t, `sweep:
  legacy:
    namespace_pattern: "preview-[0-9]+"
    namespace_labels: {ephemeral: "true"}
    older_than: 1h
`)
	h.extra = append(h.extra, "PRENV_SWEEP_GRACE=0s")
	script := map[string]string{"ephemeral": "true"}
	createNamespace(t, c, "preview-123", script, nil)
	createNamespace(t, c, "preview-124", script, map[string]string{k8srt.AnnotationDeletionProtection: "true"})
	createNamespace(t, c, "preview-125", nil, nil)        // the script's name, not its label
	createNamespace(t, c, "staging", script, nil)         // the label, not the name
	createNamespace(t, c, "preview-126-old", script, nil) // the pattern matches in full only
	defaultLabels, defaultAnnotations := prenvNamespaceMeta("prenv", env.Key{PR: 7}, time.Now().Add(-100*time.Hour))
	createNamespace(t, c, "pr-7", defaultLabels, defaultAnnotations) // made with the default owner id
	unselected := []string{"preview-125", "staging", "preview-126-old"}

	t.Run("apply refuses the default owner id", func(t *testing.T) {
		_, got := h.kubeSweep()
		if it := got["kubernetes/namespace/pr-7"]; it.Verdict != "expired" && it.Verdict != "half-made" && it.Verdict != "orphaned" {
			t.Fatalf("the test is void: with the default owner, pr-7 is %+v, not something --apply would delete", it)
		}
		before := clusterInventory(t, c)
		for _, args := range [][]string{{"sweep", "--apply"}, {"sweep", "--apply", "--legacy"}} {
			out, errs, code := h.run(args...)
			if code != 2 || !strings.Contains(errs, "set owner in prenv.yaml") || !strings.Contains(errs, "nothing was changed") {
				t.Errorf("prenv %s with the default owner id: exit %d, want 2 saying to set owner\n%s%s", strings.Join(args, " "), code, out, errs)
			}
		}
		if after := clusterInventory(t, c); !reflect.DeepEqual(before, after) {
			t.Fatalf("a refused sweep changed the cluster:\nbefore %q\nafter  %q", before, after)
		}
	})
	h.extra = append(h.extra, "PRENV_OWNER="+kubeSweepOwner)

	t.Run("too young: listed apart and kept", func(t *testing.T) {
		out := h.must("sweep")
		header := "Legacy resources (selected by sweep.legacy; deleted only with --apply --legacy):"
		i := strings.Index(out, header)
		if i < 0 || strings.Contains(out[:i], "preview-123") || !strings.Contains(out[i:], "preview-123") {
			t.Errorf("sweep does not list preview-123 apart under %q:\n%s", header, out)
		}
		before := clusterInventory(t, c)
		_, got := h.kubeSweep("--apply", "--legacy")
		for _, id := range []string{"preview-123", "preview-124"} {
			if it := got["kubernetes/namespace/"+id]; !it.Legacy || it.Verdict != "keep" || !strings.Contains(it.Reason, "older_than") {
				t.Errorf("%s, younger than older_than: %+v; want kept, saying so", id, it)
			}
		}
		for _, id := range append(unselected, "pr-7") {
			if it, ok := got["kubernetes/namespace/"+id]; ok {
				t.Errorf("%s is listed: %+v", id, it)
			}
		}
		if after := clusterInventory(t, c); !reflect.DeepEqual(before, after) {
			t.Fatalf("sweep --apply --legacy changed the cluster with nothing old enough:\nbefore %q\nafter  %q", before, after)
		}
		if _, all := h.kubeSweep("--show-foreign"); all["kubernetes/namespace/pr-7"].Verdict != "foreign" {
			t.Errorf("pr-7 of the default owner, with --show-foreign: %+v; want foreign", all["kubernetes/namespace/pr-7"])
		}
	})

	const olderThan = 2 * time.Second
	h.extra = append(h.extra, "PRENV_SWEEP_LEGACY_OLDER_THAN="+olderThan.String())
	// The API server's creation times are whole seconds: wait until even
	// the youngest is older than older_than by them.
	waitCluster(t, 30*time.Second, "the legacy namespaces are older than "+olderThan.String(), func() (bool, error) {
		for _, id := range []string{"preview-123", "preview-124"} {
			ns, err := c.Client.CoreV1().Namespaces().Get(context.Background(), id, metav1.GetOptions{})
			if err != nil || time.Since(ns.CreationTimestamp.Time) <= olderThan+time.Second {
				return false, err
			}
		}
		return true, nil
	})

	t.Run("old enough: left without --legacy", func(t *testing.T) {
		before := clusterInventory(t, c)
		_, got := h.kubeSweep("--apply")
		if it := got["kubernetes/namespace/preview-123"]; it.Verdict != "legacy" || !strings.Contains(it.Outcome, "only with --legacy") {
			t.Errorf("preview-123 with --apply alone: %+v; want legacy, left", it)
		}
		if after := clusterInventory(t, c); !reflect.DeepEqual(before, after) {
			t.Fatalf("sweep --apply without --legacy changed the cluster:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("old enough: deleted with --apply --legacy", func(t *testing.T) {
		_, got := h.kubeSweep("--apply", "--legacy")
		if it := got["kubernetes/namespace/preview-123"]; it.Verdict != "legacy" || it.Outcome != "deleted" {
			t.Errorf("preview-123: %+v; want legacy, deleted", it)
		}
		namespaceGone(t, c, "preview-123")
		if it := got["kubernetes/namespace/preview-124"]; !strings.HasPrefix(it.Outcome, "protected: ") {
			t.Errorf("preview-124 with deletion protection: %+v; want protected", it)
		}
		for _, id := range append(unselected, "preview-124", "pr-7") {
			namespaceUntouched(t, c, id)
		}
	})
}

// envDirs lists the directories under path, without prenv's bookkeeping
// (.trash).
func envDirs(t *testing.T, path string) []string {
	var out []string
	for _, d := range dirs(t, path) {
		if !strings.HasPrefix(d, ".") {
			out = append(out, d)
		}
	}
	return out
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
