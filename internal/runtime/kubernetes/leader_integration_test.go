package kubernetes_test

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/leader"
	"github.com/prenv/prenv/internal/runtime/kubernetes"
)

// client-go's leader election on a Lease of the test control plane: one of
// two replicas leads; when it stops, the other leads within the lease's
// time; never two at once.
func TestLeader_OneReplicaLeadsOnALeaseAndTheOtherTakesOver(t *testing.T) {
	c := kubernetes.NeedCluster(t)
	ctx := context.Background()
	const ns = "prenv-leader-test"
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var mu sync.Mutex
	leading, most := map[string]bool{}, 0
	changes := make(chan string, 8)
	lead := func(name string) func(context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			leading[name] = true
			most = max(most, len(leading))
			mu.Unlock()
			changes <- name
			<-ctx.Done()
			mu.Lock()
			delete(leading, name)
			mu.Unlock()
		}
	}
	cancels := map[string]context.CancelFunc{}
	done := map[string]chan struct{}{}
	for _, name := range []string{"replica-a", "replica-b"} {
		rc, cancel := context.WithCancel(ctx)
		cancels[name], done[name] = cancel, make(chan struct{})
		t.Cleanup(cancel)
		el := leader.Lease{Client: c.Client, Namespace: ns, Identity: name,
			LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
		go func(name string) { el.Run(rc, lead(name)); close(done[name]) }(name)
	}
	next := func() string {
		t.Helper()
		select {
		case name := <-changes:
			return name
		case <-time.After(15 * time.Second):
			t.Fatal("no replica leads")
			return ""
		}
	}
	first := next()
	lease, err := c.Client.CoordinationV1().Leases(ns).Get(ctx, "prenv-leader", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != first {
		t.Fatalf("the Lease names %v, the leader is %s (%v)", lease.Spec.HolderIdentity, first, err)
	}
	t0 := time.Now()
	cancels[first]()
	<-done[first]
	second := next()
	if second == first {
		t.Fatalf("%s leads again after it stopped", first)
	}
	if took := time.Since(t0); took > 4*time.Second {
		t.Errorf("the other replica took %v to lead, more than the lease's 3s", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Fatalf("%d replicas led at once", most)
	}
}
