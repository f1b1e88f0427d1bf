package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

var _ runtime.LogStreamer = (*Runtime)(nil)

// Logs implements runtime.LogStreamer: the output of every container of
// every pod in k's namespace (the app, its migration hooks), oldest pod
// first, each line prefixed with pod/container. With follow it keeps
// streaming until ctx ends.
func (r *Runtime) Logs(ctx context.Context, k env.Key, w io.Writer, opts runtime.LogOptions) error {
	ns, err := r.Namespaces.Name(k)
	if err != nil {
		return err
	}
	if err := r.Namespaces.Check(ctx, k); err != nil {
		return err
	}
	pods, err := r.Namespaces.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return describe(err, "list", "pods")
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("%s has no pods: %w", ns, runtime.ErrNotFound)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.Before(&pods.Items[j].CreationTimestamp)
	})
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first error // the first failed write: the reader went away
	stream := func(pod, container string) {
		defer wg.Done()
		o := &corev1.PodLogOptions{Container: container, Follow: opts.Follow}
		if opts.Lines > 0 {
			n := int64(opts.Lines)
			o.TailLines = &n
		}
		rc, err := r.Namespaces.Client.CoreV1().Pods(ns).GetLogs(pod, o).Stream(ctx)
		if err != nil {
			if ctx.Err() == nil {
				mu.Lock()
				fmt.Fprintf(w, "%s/%s | (no log: %v)\n", pod, container, err)
				mu.Unlock()
			}
			return
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			mu.Lock()
			_, err := fmt.Fprintf(w, "%s/%s | %s\n", pod, container, sc.Text())
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}
	for _, p := range pods.Items {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			wg.Add(1)
			if opts.Follow {
				go stream(p.Name, c.Name)
			} else {
				stream(p.Name, c.Name) // in order: one pod's lines together
			}
		}
	}
	wg.Wait()
	return first
}
