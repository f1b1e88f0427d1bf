package kubernetes_test

import (
	"context"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/prenv/prenv/internal/runtime/kubernetes"
)

// prenv's chart installed with Helm on the test control plane (kube-apiserver,
// etcd, the controller manager and scheduler, kwok for nodes: kwok runs no
// containers, so this checks what the API server accepts and what the
// controllers make of it): two replicas scheduled and available, the
// disruption budget allowing one eviction, the CronJobs, and a service
// account allowed what prenv does and refused what it does not.
func TestServeChart_InstallsOnTheControlPlaneWithLeastPrivilege(t *testing.T) {
	c := kubernetes.NeedCluster(t)
	ctx := context.Background()
	const ns = "prenv-system"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for name, keys := range map[string][]string{"prenv-store": {"url"}, "prenv-github": {"webhook-secret", "private-key.pem"}, "prenv-login": {"password"}} {
		data := map[string][]byte{}
		for _, k := range keys {
			data[k] = []byte("x")
		}
		if _, err := c.Client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	ch, err := loader.Load(serveChart)
	if err != nil {
		t.Fatal(err)
	}
	vals := serveValues(everything + "serviceMonitor: {enabled: false}\n") // the Prometheus Operator's CRD is not installed here
	r := &kubernetes.Releases{Kubeconfig: c.Kubeconfig, Timeout: 2 * time.Minute}
	if _, err := r.Deploy(ctx, ns, "prenv", ch, vals, "v1.2.3"); err != nil {
		t.Fatalf("helm install of deploy/helm/prenv: %v", err)
	}
	t.Cleanup(func() { r.Uninstall(ns, "prenv") })

	poll := func(what string, cond func() (bool, error)) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) { return cond() }); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll("two available replicas", func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "prenv", metav1.GetOptions{})
		return err == nil && d.Status.AvailableReplicas == 2, err
	})
	poll("a budget that allows one eviction", func() (bool, error) {
		p, err := c.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "prenv", metav1.GetOptions{})
		return err == nil && p.Status.CurrentHealthy == 2 && p.Status.DisruptionsAllowed == 1, err
	})
	for _, name := range []string{"prenv-sweep", "prenv-golden"} {
		if _, err := c.Client.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("CronJob %s: %v", name, err)
		}
	}
	if sa, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "prenv", metav1.GetOptions{}); err != nil || sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Errorf("the service account for IAM roles: %v %v", sa, err)
	}

	can := func(user, verb, group, resource, namespace string) bool {
		t.Helper()
		sar, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: namespace}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	const serve, golden = "system:serviceaccount:prenv-system:prenv", "system:serviceaccount:prenv-system:prenv-golden"
	for _, a := range []struct {
		user, verb, group, resource, ns string
		want                            bool
	}{
		{serve, "create", "", "namespaces", "", true},                // an environment's namespace
		{serve, "patch", "", "namespaces", "", true},                 // its recorded state
		{serve, "list", "", "secrets", "", true},                     // Helm's records, one list for sweeps
		{serve, "create", "apps", "deployments", "pr-12", true},      // what the team's chart makes
		{serve, "create", "batch", "jobs", "pr-12", true},            // its migration hook
		{serve, "create", "coordination.k8s.io", "leases", ns, true}, // the leader's and the runs' leases
		{serve, "create", "coordination.k8s.io", "leases", "pr-12", false},
		{serve, "delete", "", "nodes", "", false},
		{serve, "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", false},
		{serve, "create", "", "pods/exec", "pr-12", false},
		{serve, "update", "apps", "daemonsets", "kube-system", false},
		{golden, "create", "", "namespaces", "", false}, // the golden build touches no cluster
		{golden, "list", "", "secrets", "", false},
	} {
		if got := can(a.user, a.verb, a.group, a.resource, a.ns); got != a.want {
			t.Errorf("%s may %s %s/%s in %q: %v, want %v", a.user, a.verb, a.group, a.resource, a.ns, got, a.want)
		}
	}
}
