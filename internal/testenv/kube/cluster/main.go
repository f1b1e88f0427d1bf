// Command cluster is 'make cluster' and 'make cluster-down': it starts the
// test control plane in the background (reusing a running one) and prints
// the path of its kubeconfig as its last line, or stops it.
//
//	go run ./internal/testenv/kube/cluster up|down
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prenv/prenv/internal/testenv/kube"
)

func main() {
	dir := os.Getenv("PRENV_CLUSTER_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "prenv-cluster")
	}
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down (PRENV_CLUSTER_DIR, default "+dir+")")
		os.Exit(2)
	}
	if os.Args[1] == "down" {
		kube.Stop(dir)
		fmt.Println("stopped the control plane in", dir)
		return
	}
	root, _ := os.Getwd()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := kube.Binaries(ctx, root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	t0 := time.Now()
	c, err := kube.Start(ctx, dir, bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "control plane ready in %.1fs (logs in %s); use it with: export KUBECONFIG=%s\n", time.Since(t0).Seconds(), dir, c.Kubeconfig)
	fmt.Println(c.Kubeconfig)
}
