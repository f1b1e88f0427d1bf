package main

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/rdsemu"
	kubert "github.com/prenv/prenv/internal/runtime/kubernetes"
	"github.com/prenv/prenv/internal/store/sqlite"
	"github.com/prenv/prenv/internal/testenv/kube"
)

// The sweep bench's world: environments 1..sweepEnvs of this owner, the
// first sweepLive on record and open, the next sweepExpired on record and
// past their expiry, the rest with no record (orphaned, or half-made where
// the provider can tell); sweepForeign resources of another installation.
const (
	sweepOwner   = "bench"
	sweepRepo    = "acme/shop"
	sweepEnvs    = 500 // aurora: a cluster and a writer each
	sweepLive    = 200
	sweepExpired = 100
	sweepForeign = 25 // aurora: clusters, each with a writer; kubernetes: twice as many namespaces
	// sweepLater is how long after the resources were made the sweep
	// runs: past sweep.grace, past the expired ones' ttl.
	sweepLater = 2 * time.Hour
)

type sweepRow struct {
	what      string
	resources int
	secs      float64
	requests  float64
	per       string
	verdicts  string
}

// sweepBench measures a sweep's plan (a dry run: list, judge, change
// nothing) over about a thousand resources on rdsemu through the real SDK
// and on the test control plane, the requests it makes, and what one
// request per resource would cost instead.
func sweepBench(ctx context.Context, root, work string) {
	rows, notes := auroraSweep(ctx, work)
	krows, knotes := kubeSweep(ctx, root, work)
	rows, notes = append(rows, krows...), append(notes, knotes...)
	fmt.Println("Sweep over ~1,000 resources: the plan is Lifecycle.Sweep's dry run (list, judge, change nothing; median of 3); of this owner's")
	fmt.Printf("environments %d are open, %d expired and the rest have no record; the sweep runs %s after they were made (sweep.grace 1h):\n",
		sweepLive, sweepExpired, sweepLater)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tresources\tseconds\tAPI requests\tper resource\tverdicts")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.0f\t%s\t%s\n", r.what, r.resources, r.secs, r.requests, r.per, r.verdicts)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Println("- " + n)
	}
	fmt.Println()
}

// sweepStore is a SQLite store with the records of environments 1..n of
// sweepRepo: the first sweepLive open until long after the sweep, the
// next sweepExpired open but past their expiry when the sweep runs.
func sweepStore(ctx context.Context, dir string, made time.Time) *sqlite.Store {
	st, err := sqlite.Open(ctx, filepath.Join(dir, "prenv.db"))
	check(err)
	for pr := 1; pr <= sweepLive+sweepExpired; pr++ {
		k := sweepKey(pr)
		_, err := st.Request(ctx, k, k.Name(), "c1", false)
		check(err)
		e, err := st.Get(ctx, k)
		check(err)
		e.State, e.Commit, e.ExpiresAt = env.StateReady, "c1", made.Add(sweepTTL(pr))
		check(st.Save(ctx, e))
	}
	return st
}

func sweepKey(pr int) env.Key {
	k, err := env.NewKey(sweepRepo, pr)
	check(err)
	return k
}

// sweepTTL is the ttl environment pr was made with: those meant to be
// expired when the sweep runs have one shorter than sweepLater.
func sweepTTL(pr int) time.Duration {
	if pr > sweepLive && pr <= sweepLive+sweepExpired {
		return time.Hour
	}
	return 72 * time.Hour
}

func verdictCounts(p lifecycle.Plan) string {
	c := p.Counts()
	var parts []string
	for _, v := range lifecycle.Verdicts {
		if c[v] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", v, c[v]))
		}
	}
	return strings.Join(parts, ", ")
}

// timedPlans runs the dry-run sweep three times and returns the median
// seconds, the requests of one run (reset by reset, read by sent), and
// the last plan.
func timedPlans(ctx context.Context, l *lifecycle.Lifecycle, reset func(), sent func() int64) (float64, float64, lifecycle.Plan) {
	var plan lifecycle.Plan
	var reqs int64
	secs := median(3, func() float64 {
		reset()
		t0 := time.Now()
		p, err := l.Sweep(ctx, lifecycle.SweepOptions{Grace: time.Hour, MaxDeletions: 10})
		d := time.Since(t0).Seconds()
		check(err)
		plan, reqs = p, sent()
		return d
	})
	return secs, float64(reqs), plan
}

// auroraSweep fills rdsemu with the clusters and writers of sweepEnvs
// environments and of another owner, as Clone tags them, and measures the
// plan, one Describe per resource, and an apply that deletes orphans.
func auroraSweep(ctx context.Context, work string) ([]sweepRow, []string) {
	emu := rdsemu.New(rdsemu.Options{Sources: []string{"golden"}, ClusterQuota: 4000, InstanceQuota: 4000})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	var sent atomic.Int64
	api := rdsClient(srv.URL, &sent)
	home, err := os.MkdirTemp(work, "sweep-aurora-")
	check(err)
	c := &aurora.Cloner{API: api, Home: home, Options: aurora.Options{Owner: sweepOwner, Source: "golden", DBName: "app",
		ReadyCheck: aurora.ReadyAPI, Poll: 10 * time.Millisecond, WaitTimeout: time.Minute}}

	made := time.Now()
	fmt.Fprintf(os.Stderr, "bench: sweep: making %d clusters and %d writers in rdsemu...\n", sweepEnvs+sweepForeign, sweepEnvs+sweepForeign)
	tagsOf := func(owner string, pr int) []types.Tag {
		k := sweepKey(pr)
		labels := env.Labels(owner, k, made, sweepTTL(pr))
		labels[env.LabelKey] = k.Repo + ":" + strconv.Itoa(k.PR) // as aurora.Cloner writes it: '#' is not allowed in a tag
		labels["Environment"] = "PR-" + strconv.Itoa(pr)
		var ts []types.Tag
		for key, v := range labels {
			ts = append(ts, types.Tag{Key: aws.String(key), Value: aws.String(v)})
		}
		return ts
	}
	owners := map[int]string{}
	for pr := 1; pr <= sweepEnvs; pr++ {
		owners[pr] = sweepOwner
	}
	for pr := 1001; pr <= 1000+sweepForeign; pr++ {
		owners[pr] = "another-team"
	}
	// Every cluster first, then every writer: each writer is younger than
	// every cluster, as in a run, so an apply takes the clusters first.
	parallel(owners, func(pr int, owner string) error {
		_, err := api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
			DBClusterIdentifier: aws.String(c.ClusterID(sweepKey(pr))), SourceDBClusterIdentifier: aws.String("golden"),
			RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true), Tags: tagsOf(owner, pr)})
		return err
	})
	parallel(owners, func(pr int, owner string) error {
		id := c.ClusterID(sweepKey(pr))
		_, err := api.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id + "-writer"),
			DBClusterIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String(aurora.Engine),
			Tags: tagsOf(owner, pr)})
		return err
	})
	st := sweepStore(ctx, home, made)
	defer st.Close()
	l := &lifecycle.Lifecycle{Store: st, Cloner: c, LockDir: filepath.Join(home, "locks"), Owner: sweepOwner, TTL: 72 * time.Hour,
		Now: func() time.Time { return time.Now().Add(sweepLater) }}
	check(os.MkdirAll(l.LockDir, 0o755))
	before := emu.Stats().ByAction
	secs, reqs, plan := timedPlans(ctx, l, func() { sent.Store(0) }, sent.Load)
	resources := len(plan.Items)
	rows := []sweepRow{{"aurora plan (rdsemu, real SDK)", resources, secs, reqs,
		fmt.Sprintf("%.3f", reqs/float64(resources)), verdictCounts(plan)}}
	notes := []string{fmt.Sprintf("aurora: %d environments of a cluster and a writer each, %d clusters and writers of another owner, and the golden source cluster (no owner tag: foreign);"+
		" made through the SDK, tagged as aurora.Cloner tags; a SQLite store; requests counted at the SDK's HTTP client; the plan's requests: %s",
		sweepEnvs, 2*sweepForeign, actionsSince(emu, before, 3))}

	// The naive way: one Describe by identifier per resource the plan
	// listed (a loop over known environments or names; the list that
	// would name them is not counted).
	sent.Store(0)
	t0 := time.Now()
	for _, it := range plan.Items {
		var err error
		switch it.Kind {
		case aurora.KindCluster:
			_, err = api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(it.ID)})
		case aurora.KindInstance:
			_, err = api.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(it.ID)})
		}
		check(err)
	}
	rows = append(rows, sweepRow{"aurora naive: a Describe by identifier per resource (measured)",
		len(plan.Items), time.Since(t0).Seconds(), float64(sent.Load()), fmt.Sprintf("%.3f", float64(sent.Load())/float64(len(plan.Items))), ""})

	// Apply: the 100 oldest orphans (clusters, each with its writer) with
	// zero RDS delays; the deletions' own requests are those beyond one
	// plan's.
	const deletions = 100
	sent.Store(0)
	before = emu.Stats().ByAction
	t0 = time.Now()
	applied, err := l.Sweep(ctx, lifecycle.SweepOptions{Apply: true, Only: []lifecycle.Verdict{lifecycle.VerdictOrphaned}, Grace: time.Hour, MaxDeletions: deletions})
	d := time.Since(t0).Seconds()
	check(err)
	deleted := 0
	for _, it := range applied.Items {
		if it.Outcome == "deleted" {
			deleted++
		}
	}
	if deleted != deletions {
		check(fmt.Errorf("sweep: the apply deleted %d, not %d", deleted, deletions))
	}
	all := float64(sent.Load())
	rows = append(rows, sweepRow{fmt.Sprintf("aurora apply: %d orphaned clusters deleted, each with its writer", deletions),
		deleted, d, all, fmt.Sprintf("%.1f per deletion", (all-reqs)/float64(deleted)), fmt.Sprintf("deleted %d", deleted)})
	notes = append(notes,
		"aurora naive: DescribeDBClusters or DescribeDBInstances with the identifier of each resource the plan listed, one after another, as a loop over known names would (the list that names them not counted; no verdicts)",
		fmt.Sprintf("aurora apply: Sweep with Apply, only orphaned, max_deletions %d (the oldest first: clusters), one after another, rdsemu's delays zero, aurora poll 10 ms;"+
			" its requests include one plan's (%.0f), per deletion excludes them: %s", deletions, reqs, actionsSince(emu, before, 1)))
	return rows, notes
}

// actionsSince is what emu was asked since before, per run of runs.
func actionsSince(emu *rdsemu.Server, before map[string]int, runs int) string {
	var calls []string
	for action, n := range emu.Stats().ByAction {
		if d := n - before[action]; d > 0 {
			calls = append(calls, fmt.Sprintf("%s %d", action, d/runs))
		}
	}
	sort.Strings(calls)
	return strings.Join(calls, ", ")
}

// parallel runs f for every pr of owners with a few workers, and fails
// the bench on the first error.
func parallel(owners map[int]string, f func(pr int, owner string) error) {
	prs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pr := range prs {
				if err := f(pr, owners[pr]); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for pr := range owners {
		prs <- pr
	}
	close(prs)
	wg.Wait()
	check(first)
}

// kubeSweep makes 1,000 environments' namespaces (and the Helm release
// records of half of them) on the test control plane, directly through
// client-go, and measures the plan with the kubernetes runtime, and one
// GET per namespace.
func kubeSweep(ctx context.Context, root, work string) ([]sweepRow, []string) {
	const envs, deployed = 1000, 500
	bin, err := kube.Binaries(ctx, root)
	check(err)
	dir := filepath.Join(work, "sweep-cluster")
	cl, err := kube.Start(ctx, dir, bin)
	check(err)
	defer kube.Stop(dir)

	fast := rest.CopyConfig(cl.Config)
	fast.QPS = -1 // making the world: no client-side limit
	maker, err := kubernetes.NewForConfig(fast)
	check(err)
	opts := kubert.DefaultOptions(sweepOwner)
	made := time.Now()
	fmt.Fprintf(os.Stderr, "bench: sweep: making %d namespaces and %d Helm release records on the control plane...\n", envs+2*sweepForeign, deployed)
	owners := map[int]string{}
	for pr := 1; pr <= envs; pr++ {
		owners[pr] = sweepOwner
	}
	for pr := 1001; pr <= 1000+2*sweepForeign; pr++ {
		owners[pr] = "another-team"
	}
	t0 := time.Now()
	parallel(owners, func(pr int, owner string) error {
		k := sweepKey(pr)
		// What Namespaces.meta writes.
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "pr-" + strconv.Itoa(pr),
			Labels: map[string]string{kubert.LabelOwner: owner, kubert.LabelEnv: k.Name(), kubert.LabelPR: strconv.Itoa(pr),
				kubert.LabelEphemeral: "true"},
			Annotations: map[string]string{kubert.AnnotationKey: k.String(), kubert.AnnotationRepo: k.Repo,
				kubert.AnnotationCreatedAt: made.UTC().Format(time.RFC3339), kubert.AnnotationExpiresAt: made.Add(sweepTTL(pr)).UTC().Format(time.RFC3339)},
		}}
		if _, err := maker.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
		if owner != sweepOwner || pr > deployed {
			return nil
		}
		// What Helm's secret driver keeps of revision 1, deployed; the
		// inventory reads only the labels.
		name := k.NameMax(53)
		rel := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + name + ".v1", Namespace: ns.Name,
			Labels: map[string]string{"owner": "helm", "name": name, "status": "deployed", "version": "1"}},
			Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(strings.Repeat("H4sI", 1024))}}
		_, err := maker.CoreV1().Secrets(ns.Name).Create(ctx, rel, metav1.CreateOptions{})
		return err
	})
	fmt.Fprintf(os.Stderr, "bench: sweep: made in %.1f s\n", time.Since(t0).Seconds())
	resources := envs + 2*sweepForeign

	// The plan's client as prenv's CLI builds it (client-go's default
	// limit), its requests counted.
	var sent, secrets atomic.Int64
	counted := func(qps float32, burst int) *rest.Config {
		cfg := rest.CopyConfig(cl.Config)
		cfg.QPS, cfg.Burst = qps, burst
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTrip(func(r *http.Request) (*http.Response, error) {
				sent.Add(1)
				if strings.HasSuffix(r.URL.Path, "/secrets") {
					secrets.Add(1)
				}
				return rt.RoundTrip(r)
			})
		})
		return cfg
	}
	client, err := kubernetes.NewForConfig(counted(rest.DefaultQPS, rest.DefaultBurst))
	check(err)
	home, err := os.MkdirTemp(work, "sweep-kube-")
	check(err)
	st := sweepStore(ctx, home, made)
	defer st.Close()
	l := &lifecycle.Lifecycle{Store: st, Cloner: &memory.Cloner{World: memory.NewWorld(), Owner: sweepOwner},
		Runtime: &kubert.Runtime{
			Namespaces: &kubert.Namespaces{Client: client, Options: opts},
			Releases:   &kubert.Releases{Kubeconfig: cl.Kubeconfig, Client: client, Timeout: 2 * time.Minute},
		},
		LockDir: filepath.Join(home, "locks"), Owner: sweepOwner, TTL: 72 * time.Hour,
		Now: func() time.Time { return time.Now().Add(sweepLater) }}
	check(os.MkdirAll(l.LockDir, 0o755))
	secs, reqs, plan := timedPlans(ctx, l, func() { sent.Store(0); secrets.Store(0) }, sent.Load)
	rows := []sweepRow{{"kubernetes plan (control plane, kwok)", resources, secs, reqs,
		fmt.Sprintf("%.3f", reqs/float64(resources)), verdictCounts(plan)}}
	notes := []string{fmt.Sprintf("kubernetes: %d namespaces of this owner with the labels and annotations the runtime writes, %d of another owner, and Helm release records (Secrets as Helm's driver labels them) for the first %d environments;"+
		" made through client-go; the plan's client as prenv's CLI builds it (client-go's default limit, %.0f requests/s, burst %d), its requests counted at the REST config's transport:"+
		" %.0f lists of namespaces, %d of Helm's records (metadata only), in pages of 500",
		envs, 2*sweepForeign, deployed, rest.DefaultQPS, rest.DefaultBurst, reqs-float64(secrets.Load()), secrets.Load())}

	// The naive way: a GET per namespace, timed on a sample of 100 with no
	// client-side limit (the server's and client's own cost) and scaled.
	naive, err := kubernetes.NewForConfig(counted(-1, 0))
	check(err)
	const sample = 100
	sent.Store(0)
	t0 = time.Now()
	for pr := 1; pr <= sample; pr++ {
		_, err := naive.CoreV1().Namespaces().Get(ctx, "pr-"+strconv.Itoa(pr), metav1.GetOptions{})
		check(err)
	}
	per := time.Since(t0).Seconds() / sample
	rows = append(rows, sweepRow{"kubernetes naive: a GET per namespace (sampled)",
		resources, per * float64(resources), float64(sent.Load()) / sample * float64(resources), fmt.Sprintf("%.3f", float64(sent.Load())/sample), ""})
	rows = append(rows, sweepRow{"kubernetes naive, at client-go's default limit (computed)",
		resources, float64(resources-rest.DefaultBurst) / float64(rest.DefaultQPS), float64(resources), "1.000", ""})
	notes = append(notes,
		fmt.Sprintf("kubernetes naive: %d GETs of a namespace by name, one after another, with no client-side limit (what the server and client cost), scaled to %d; Helm's records not read", sample, resources),
		fmt.Sprintf("kubernetes naive at client-go's default limit: %d GETs through a client built as prenv's CLI builds it, past the burst of %d at %.0f requests/s", resources, rest.DefaultBurst, rest.DefaultQPS))
	return rows, notes
}
