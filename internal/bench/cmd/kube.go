package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	kubert "github.com/prenv/prenv/internal/runtime/kubernetes"
	"github.com/prenv/prenv/internal/testenv/kube"
)

// counter counts the API requests made through a REST config.
type counter struct{ n atomic.Int64 }

func (c *counter) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 200, 400
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) { c.n.Add(1); return rt.RoundTrip(r) })
	})
	return cfg
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

const benchValues = `
image: {tag: "{{ .Commit }}"}
database: {secretName: {{ .SecretName }}}
ingress: {host: "{{ .Name }}.preview.example.com"}
`

// kubeBench measures the kubernetes runtime on the test control plane: from
// a ready database to a ready release (namespace, quota, limits, policy,
// secret, migration hook Job, Deployment ready), for one environment and for
// twenty at once, and the API requests each costs.
func kubeBench(ctx context.Context, root, work string) {
	bin, err := kube.Binaries(ctx, root)
	check(err)
	dir := filepath.Join(work, "cluster")
	c, err := kube.Start(ctx, dir, bin)
	check(err)
	defer kube.Stop(dir)
	var count counter
	client, err := kubernetes.NewForConfig(count.wrap(c.Config))
	check(err)
	opts := kubert.DefaultOptions("bench")
	rt := &kubert.Runtime{
		Namespaces: &kubert.Namespaces{Client: client, Options: opts},
		Releases:   &kubert.Releases{Kubeconfig: c.Kubeconfig, Client: client, Timeout: 2 * time.Minute, Wrap: count.wrap},
		Chart:      filepath.Join(root, "examples", "demo", "chart"), Values: benchValues,
	}
	up := func(pr int) float64 {
		k := env.Key{PR: pr}
		spec := runtime.Spec{Key: k, Name: k.Name(), Commit: "c1", Labels: env.Labels("bench", k, time.Now(), time.Hour),
			Database: dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}}
		t0 := time.Now()
		check(rt.Check(ctx, k))
		check(rt.Prepare(ctx, spec))
		if _, err := rt.Deploy(ctx, spec); err != nil {
			fmt.Fprintln(os.Stderr, "bench: deploy:", err)
			os.Exit(1)
		}
		return time.Since(t0).Seconds()
	}
	up(1) // warm: discovery caches, the first namespace
	count.n.Store(0)
	var one []float64
	for pr := 2; pr <= 4; pr++ {
		one = append(one, up(pr))
	}
	perOne := float64(count.n.Load()) / 3
	count.n.Store(0)
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var each []float64
	for pr := 101; pr <= 120; pr++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := up(pr)
			mu.Lock()
			each = append(each, d)
			mu.Unlock()
		}()
	}
	wg.Wait()
	all := time.Since(t0).Seconds()
	per20 := float64(count.n.Load()) / 20
	sort.Float64s(each)
	fmt.Println("Kubernetes runtime on the test control plane (kube-apiserver v1.37 built here, kwok nodes): from a ready database to a ready release")
	fmt.Println("(namespace, quota, limit range, network policy, secret, Helm install with its migration hook Job, Deployment ready):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tseconds\tAPI requests per environment")
	fmt.Fprintf(tw, "one environment (median of 3)\t%.2f\t%.0f\n", med(one), perOne)
	fmt.Fprintf(tw, "20 environments at once, all ready\t%.2f\t%.0f\n", all, per20)
	fmt.Fprintf(tw, "20 at once, slowest single up\t%.2f\t\n", each[len(each)-1])
	tw.Flush()
	fmt.Println()
}
