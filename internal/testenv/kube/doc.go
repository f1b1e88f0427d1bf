// Package kube starts a real Kubernetes control plane for prenv's tests and
// for 'make cluster': etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler built from the Kubernetes Go module (scripts/kube-binaries.sh,
// cached), with kwok standing in for kubelets: pods on its node are scheduled
// and become Ready, Job pods complete, and pods labelled
// prenv.dev/test-fail=true fail. Quota, admission, garbage collection and
// namespace deletion are the real thing. Processes run detached with pid
// files in the cluster's directory, so a started cluster can be reused.
package kube
