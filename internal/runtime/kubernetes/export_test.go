package kubernetes

import (
	"testing"

	"github.com/prenv/prenv/internal/testenv/kube"
)

// NeedCluster is the package's test control plane, for the tests of
// package kubernetes_test (which may import what imports this package).
func NeedCluster(t *testing.T) *kube.Cluster { return need(t) }
