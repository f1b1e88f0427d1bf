package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/rdsemu/pgbackend"
	"github.com/prenv/prenv/internal/testenv"
)

// The Aurora acceptance tests of the sweeper (issue 10), in the pattern of
// terraform-provider-aws's: leaks are made the way they happen (prenv up
// killed at each step, the store lost, resources gone out of band, clusters
// of other tools), prenv sweep runs as a user runs it, and what is left is
// read from RDS's own API through the SDK, never from prenv's view.

// auroraSweep is a harness whose environments are a database alone: an
// Aurora clone from rdsemu, a real PostgreSQL clone behind it.
type auroraSweep struct {
	*harness
	api   *rds.Client
	back  *sweptBackend
	clock *emuClock
}

// auroraSweepYAML is a team's prenv.yaml: its own owner id, no app.
const auroraSweepYAML = `version: 1
repository: acme/shop
owner: acme-previews
database:
  provider: aurora
  aurora:
    source_cluster: golden
    require_security_groups: false
`

func newAuroraSweep(t *testing.T, opts rdsemu.Options, yaml string) *auroraSweep {
	t.Helper()
	h := newHarness(t)
	back := testenv.Home(t)
	testenv.Golden(t, back, testenv.DemoSQL(20))
	first, last := testenv.PortRange(t, 6)
	pg, err := pgbackend.New(back, fmt.Sprintf("%d-%d", first, last), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	a := &auroraSweep{harness: h, back: &sweptBackend{Backend: pg, held: map[string]chan struct{}{}, inside: map[string]bool{}, bare: map[string]bool{}},
		clock: &emuClock{}}
	opts.Sources, opts.Backend, opts.Now = []string{"golden"}, a.back, a.clock.now
	// The golden cluster has been there for a long time.
	a.clock.set(-365 * 24 * time.Hour)
	emu := rdsemu.New(opts)
	a.clock.set(0)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	// Runs after srv.Close is asked for: a restore a failed test still
	// holds must end for the server to close.
	t.Cleanup(a.back.releaseAll)
	a.api = rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example", "")})
	h.extra = append(h.extra,
		"PRENV_DATABASE_AURORA_ENDPOINT="+srv.URL, "PRENV_DATABASE_AURORA_REGION=us-east-1",
		"PRENV_DATABASE_AURORA_SSLMODE=disable", "PRENV_DATABASE_AURORA_READY_CHECK=sql",
		"PRENV_SWEEP_GRACE=0s",
		// The emulator does not check signatures; the SDK needs something to sign with.
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	h.dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

// sweptBackend gives the emulator's clusters their databases as these
// tests need. A restore RDS has accepted completes even when the client
// that asked for it dies meanwhile, as on RDS (the emulator makes the
// database inside the request, on the request's context); a test can hold
// a restore inside RDS to kill prenv while it waits there; and the
// clusters a test makes by hand, as another tool would, get no database:
// nothing connects to them.
type sweptBackend struct {
	rdsemu.Backend
	mu     sync.Mutex
	held   map[string]chan struct{}
	inside map[string]bool // a restore reached the database
	busy   int             // databases being made
	bare   map[string]bool
}

func (b *sweptBackend) Create(ctx context.Context, id string) (string, int, string, string, error) {
	b.mu.Lock()
	if b.bare[id] {
		b.mu.Unlock()
		return "127.0.0.1", 5432, "postgres", "made-by-hand", nil
	}
	hold := b.held[id]
	b.inside[id] = true
	b.busy++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.busy--
		b.mu.Unlock()
	}()
	if hold != nil {
		<-hold
	}
	return b.Backend.Create(context.WithoutCancel(ctx), id)
}

func (b *sweptBackend) Delete(ctx context.Context, id string) error {
	b.mu.Lock()
	bare := b.bare[id]
	b.mu.Unlock()
	if bare {
		return nil
	}
	return b.Backend.Delete(context.WithoutCancel(ctx), id)
}

// hold makes the restore of cluster id wait inside RDS until released.
func (b *sweptBackend) hold(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held[id] = make(chan struct{})
}

func (b *sweptBackend) release(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch := b.held[id]; ch != nil {
		close(ch)
		delete(b.held, id)
	}
}

func (b *sweptBackend) releaseAll() {
	b.mu.Lock()
	ids := make([]string, 0, len(b.held))
	for id := range b.held {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.release(id)
	}
}

func (b *sweptBackend) reached(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inside[id]
}

func (b *sweptBackend) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy == 0
}

// emuClock is the emulator's clock: now, or now moved by a test (clusters
// a script made days ago).
type emuClock struct{ offset atomic.Int64 }

func (c *emuClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *emuClock) set(d time.Duration) { c.offset.Store(int64(d)) }

// within polls cond until it holds, failing after d with what was awaited.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tagList(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []types.Tag
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
}

func tagString(ts []types.Tag) string {
	var s []string
	for _, t := range ts {
		s = append(s, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

// rdsInventory is every cluster and instance as RDS describes them, one
// line each: kind, identifier, status, deletion protection, creation time,
// members or cluster, and tags.
func rdsInventory(t *testing.T, api *rds.Client) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	cp := rds.NewDescribeDBClustersPaginator(api, &rds.DescribeDBClustersInput{})
	for cp.HasMorePages() {
		page, err := cp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.DBClusters {
			var members []string
			for _, m := range c.DBClusterMembers {
				members = append(members, aws.ToString(m.DBInstanceIdentifier))
			}
			out = append(out, fmt.Sprintf("cluster/%s %s protected=%v created=%s members=%v tags=%s", aws.ToString(c.DBClusterIdentifier),
				aws.ToString(c.Status), aws.ToBool(c.DeletionProtection), aws.ToTime(c.ClusterCreateTime).Format(time.RFC3339Nano), members, tagString(c.TagList)))
		}
	}
	ip := rds.NewDescribeDBInstancesPaginator(api, &rds.DescribeDBInstancesInput{})
	for ip.HasMorePages() {
		page, err := ip.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range page.DBInstances {
			out = append(out, fmt.Sprintf("instance/%s %s protected=%v created=%s cluster=%s tags=%s", aws.ToString(i.DBInstanceIdentifier),
				aws.ToString(i.DBInstanceStatus), aws.ToBool(i.DeletionProtection), aws.ToTime(i.InstanceCreateTime).Format(time.RFC3339Nano),
				aws.ToString(i.DBClusterIdentifier), tagString(i.TagList)))
		}
	}
	sort.Strings(out)
	return out
}

// rdsStatus maps "cluster/ID" and "instance/ID" to their status in RDS.
func rdsStatus(t *testing.T, api *rds.Client) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range rdsInventory(t, api) {
		f := strings.Fields(line)
		m[f[0]] = f[1]
	}
	return m
}

// lineOf is the inventory line of "cluster/ID" or "instance/ID", "" if
// RDS does not show it.
func lineOf(inv []string, what string) string {
	for _, l := range inv {
		if strings.HasPrefix(l, what+" ") {
			return l
		}
	}
	return ""
}

// settled waits until RDS is done with what it was asked: no database
// being made, every cluster and instance available.
func (a *auroraSweep) settled(t *testing.T) {
	t.Helper()
	var last map[string]string
	within(t, 60*time.Second, "every cluster and instance available", func() bool {
		if !a.back.idle() {
			return false
		}
		last = rdsStatus(t, a.api)
		for _, st := range last {
			if st != "available" {
				return false
			}
		}
		return true
	})
}

// makeByHand makes cluster id, and instance in it unless "", through the
// SDK with tags, as another tool or a team's old script does.
func (a *auroraSweep) makeByHand(t *testing.T, id, instance string, tags map[string]string, protect bool) {
	t.Helper()
	a.back.mu.Lock()
	a.back.bare[id] = true
	a.back.mu.Unlock()
	ctx := context.Background()
	if _, err := a.api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String(id), SourceDBClusterIdentifier: aws.String("golden"), RestoreType: aws.String("copy-on-write"),
		UseLatestRestorableTime: aws.Bool(true), Tags: tagList(tags), DeletionProtection: aws.Bool(protect)}); err != nil {
		t.Fatal(err)
	}
	if instance == "" {
		return
	}
	if _, err := a.api.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(instance), DBClusterIdentifier: aws.String(id),
		DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql"), Tags: tagList(tags)}); err != nil {
		t.Fatal(err)
	}
}

// upKilledWhen starts prenv up for pr and kills it (SIGKILL) as soon as
// cond holds; an up that ends first fails the test, which would be void.
func (a *auroraSweep) upKilledWhen(t *testing.T, pr int, what string, cond func() bool) {
	t.Helper()
	cmd := a.command("up", "--pr", strconv.Itoa(pr), "--sha", "c0ffee1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case err := <-exited:
			t.Fatalf("up --pr %d ended (%v) before %s: the kill would test nothing\n%s", pr, err, what, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			t.Fatalf("up --pr %d: not within 60s: %s\n%s", pr, what, out.String())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// auroraPlan is prenv sweep -o json as these tests read it.
type auroraPlan struct {
	Applied bool `json:"applied"`
	Items   []struct {
		Provider, Kind, ID, Verdict, Reason, Outcome, Environment string
		Age                                                       int64 `json:"age_seconds"`
		Legacy                                                    bool
	} `json:"items"`
	Notes []string `json:"notes"`
}

// sweepJSON runs prenv sweep -o json with args; exit code 0 is wanted.
func (a *auroraSweep) sweepJSON(t *testing.T, args ...string) auroraPlan {
	t.Helper()
	out, errs, code := a.run(append([]string{"sweep", "-o", "json"}, args...)...)
	var p auroraPlan
	if err := json.Unmarshal([]byte(out), &p); err != nil || code != 0 {
		t.Fatalf("prenv sweep -o json %s: exit %d, %v\n%s%s", strings.Join(args, " "), code, err, out, errs)
	}
	return p
}

// item is "verdict: reason [-> outcome]" of provider/kind/id, "" if the
// plan does not list it.
func (p auroraPlan) item(key string) string {
	for _, it := range p.Items {
		if it.Provider+"/"+it.Kind+"/"+it.ID == key {
			s := it.Verdict + ": " + it.Reason
			if it.Outcome != "" {
				s += " -> " + it.Outcome
			}
			return s
		}
	}
	return ""
}

func (p auroraPlan) String() string {
	var b strings.Builder
	for _, it := range p.Items {
		fmt.Fprintf(&b, "\n  %s/%s/%s age %ds legacy=%v: %s: %s -> %s", it.Provider, it.Kind, it.ID, it.Age, it.Legacy, it.Verdict, it.Reason, it.Outcome)
	}
	for _, n := range p.Notes {
		b.WriteString("\n  note: " + n)
	}
	return b.String()
}

// mustRun runs prenv and fails t unless it exits 0 (the harness's must
// fails the test that made the harness, not a subtest).
func (a *auroraSweep) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := a.run(args...)
	if code != 0 {
		t.Fatalf("prenv %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func (a *auroraSweep) statusOf(t *testing.T, pr int) status {
	t.Helper()
	var s status
	out := a.mustRun(t, "status", "--pr", strconv.Itoa(pr), "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return s
}

func (a *auroraSweep) withEnv(env []string, fn func()) {
	saved := a.extra
	a.extra = append(append([]string{}, saved...), env...)
	defer func() { a.extra = saved }()
	fn()
}

// The leaks of killed ups, with their records and with the store lost,
// on Aurora: an up killed while RDS restores its cluster, ups killed while
// their writer is being created, one that finished (and whose cluster
// someone then protected). With the records kept, nothing is swept until
// its environment expires, and then it goes through down. With the store
// lost, a dry run changes nothing RDS shows, --apply refuses the owner id
// every installation shares, deletes within max_deletions the oldest
// first, and in the end leaves, as RDS's own API shows, only the protected
// cluster of ours (reported) and the clusters of others, as they were.
func TestAuroraSweep_WhatKilledUpsAndALostStoreLeftIsGoneFromRDS(t *testing.T) {
	t.Parallel()
	a := newAuroraSweep(t, rdsemu.Options{ClusterCreate: 2 * time.Second, InstanceCreate: 2 * time.Second}, auroraSweepYAML)
	writerCreating := func(pr int) func() bool {
		return func() bool { return rdsStatus(t, a.api)[fmt.Sprintf("instance/prenv-pr-%d-writer", pr)] == "creating" }
	}

	// pr-4: killed while its writer is created, its record kept, with a
	// short ttl.
	a.withEnv([]string{"PRENV_TTL=15s"}, func() { a.upKilledWhen(t, 4, "the writer of pr-4 is creating", writerCreating(4)) })
	plan := a.sweepJSON(t)
	for _, key := range []string{"aurora/cluster/prenv-pr-4", "aurora/instance/prenv-pr-4-writer"} {
		if got := plan.item(key); !strings.HasPrefix(got, "keep: its environment is open") {
			t.Fatalf("%s before its expiry: %q; want kept, its environment open%s", key, got, plan)
		}
	}

	// pr-1: killed while RDS restores its cluster (the request in flight).
	a.back.hold("prenv-pr-1")
	a.upKilledWhen(t, 1, "the cluster of pr-1 is creating, no writer yet", func() bool {
		st := rdsStatus(t, a.api)
		return a.back.reached("prenv-pr-1") && st["cluster/prenv-pr-1"] == "creating" && st["instance/prenv-pr-1-writer"] == ""
	})
	a.back.release("prenv-pr-1")
	// pr-2: killed while its writer is created.
	a.upKilledWhen(t, 2, "the writer of pr-2 is creating", writerCreating(2))
	// Others': a cluster without prenv's tags, and another installation's,
	// named like ours, expired long ago by its tags.
	a.makeByHand(t, "billing-replica", "billing-replica-1", map[string]string{"team": "billing"}, false)
	old := time.Now().Add(-100 * time.Hour).UTC().Format(time.RFC3339)
	a.makeByHand(t, "prenv-pr-9", "prenv-pr-9-writer", map[string]string{"prenv.dev/owner": "other-team", "prenv.dev/env": ":9",
		"prenv.dev/created-at": old, "prenv.dev/expires-at": old, "Ephemeral": "true"}, false)
	// pr-3: ready; then someone turns deletion protection on.
	a.must("up", "--pr", "3", "--sha", "c0ffee1")
	if _, err := a.api.ModifyDBCluster(context.Background(), &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("prenv-pr-3"),
		DeletionProtection: aws.Bool(true), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	a.settled(t)

	t.Run("an expired environment killed with its record goes through down", func(t *testing.T) {
		within(t, 30*time.Second, "the plan says pr-4 expired", func() bool {
			return strings.HasPrefix(a.sweepJSON(t).item("aurora/cluster/prenv-pr-4"), "expired: ")
		})
		applied := a.sweepJSON(t, "--apply")
		for _, key := range []string{"aurora/cluster/prenv-pr-4", "aurora/instance/prenv-pr-4-writer"} {
			if got := applied.item(key); !strings.HasPrefix(got, "expired: ") || !strings.HasSuffix(got, "-> deleted") {
				t.Errorf("%s: %q; want expired and deleted%s", key, got, applied)
			}
		}
		// The others have records: open environments, kept.
		for _, pr := range []int{1, 2, 3} {
			if got := applied.item(fmt.Sprintf("aurora/cluster/prenv-pr-%d", pr)); !strings.HasPrefix(got, "keep: its environment is open") {
				t.Errorf("pr-%d while its record is kept: %q; want kept%s", pr, got, applied)
			}
		}
		s := rdsStatus(t, a.api)
		if s["cluster/prenv-pr-4"] != "" || s["instance/prenv-pr-4-writer"] != "" {
			t.Fatalf("RDS still shows pr-4 after sweep --apply: %v", s)
		}
		if st := a.statusOf(t, 4); st.State != "deleted" {
			t.Errorf("status of pr-4 after the sweep: %+v", st)
		}
	})

	// The store is lost.
	for _, f := range []string{"prenv.db", "prenv.db-wal", "prenv.db-shm"} {
		os.Remove(filepath.Join(a.home, f))
	}
	before := rdsInventory(t, a.api)

	t.Run("apply refuses the owner id every installation shares", func(t *testing.T) {
		var out, errs string
		var code int
		a.withEnv([]string{"PRENV_OWNER=prenv"}, func() { out, errs, code = a.run("sweep", "--apply") })
		if code != 2 || !strings.Contains(errs, "set owner in prenv.yaml") {
			t.Errorf("sweep --apply with the default owner id: exit %d, want 2 saying to set owner\n%s%s", code, out, errs)
		}
		if after := rdsInventory(t, a.api); !reflect.DeepEqual(before, after) {
			t.Fatalf("a refused sweep changed RDS:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("a dry run lists every leak and changes nothing", func(t *testing.T) {
		plan := a.sweepJSON(t)
		if after := rdsInventory(t, a.api); !reflect.DeepEqual(before, after) {
			t.Fatalf("a dry run changed RDS:\nbefore %q\nafter  %q", before, after)
		}
		for key, want := range map[string]string{
			"aurora/cluster/prenv-pr-1":         "half-made: a cluster with no writer",
			"aurora/cluster/prenv-pr-2":         "orphaned: no live environment",
			"aurora/instance/prenv-pr-2-writer": "orphaned: no live environment",
			"aurora/cluster/prenv-pr-3":         "orphaned: no live environment",
		} {
			if got := plan.item(key); !strings.HasPrefix(got, want) {
				t.Errorf("%s: %q; want %q...%s", key, got, want, plan)
			}
		}
		if got := plan.item("aurora/cluster/prenv-pr-3"); !strings.Contains(got, "deletion protection is on: prenv never turns it off") || !strings.Contains(got, "reported, never forced") {
			t.Errorf("the protected cluster: %q; want its protection said", got)
		}
		for _, key := range []string{"aurora/cluster/billing-replica", "aurora/cluster/prenv-pr-9", "aurora/instance/prenv-pr-9-writer"} {
			if got := plan.item(key); got != "" {
				t.Errorf("%s is listed without --show-foreign: %q", key, got)
			}
		}
		foreign := a.sweepJSON(t, "--show-foreign")
		for key, want := range map[string]string{
			"aurora/cluster/billing-replica":    "foreign: carries no owner id",
			"aurora/instance/billing-replica-1": "foreign: carries no owner id",
			"aurora/cluster/prenv-pr-9":         `foreign: owner id "other-team" is not this installation's`,
			"aurora/instance/prenv-pr-9-writer": `foreign: owner id "other-team" is not this installation's`,
		} {
			if got := foreign.item(key); !strings.HasPrefix(got, want) {
				t.Errorf("%s with --show-foreign: %q; want %q...", key, got, want)
			}
		}
	})

	t.Run("apply deletes within max_deletions, the oldest first", func(t *testing.T) {
		var p auroraPlan
		a.withEnv([]string{"PRENV_SWEEP_MAX_DELETIONS=3"}, func() { p = a.sweepJSON(t, "--apply") })
		var deleted, deferred []int64
		for _, it := range p.Items {
			switch {
			case it.Outcome == "deleted":
				deleted = append(deleted, it.Age)
			case strings.HasPrefix(it.Outcome, "deferred: sweep.max_deletions (3) reached"):
				deferred = append(deferred, it.Age)
			case strings.HasPrefix(it.Outcome, "failed"):
				t.Errorf("%s/%s: %s", it.Kind, it.ID, it.Outcome)
			}
		}
		sort.Slice(deleted, func(i, j int) bool { return deleted[i] < deleted[j] })
		sort.Slice(deferred, func(i, j int) bool { return deferred[i] > deferred[j] })
		if len(deleted) != 3 || len(deferred) == 0 || deferred[0] > deleted[0] {
			t.Fatalf("max_deletions 3: deleted ages %v, deferred ages %v; want 3 deleted, each as old as any deferred%s", deleted, deferred, p)
		}
		if !strings.HasSuffix(p.item("aurora/cluster/prenv-pr-1"), "-> deleted") || !strings.Contains(p.item("aurora/cluster/prenv-pr-2"), "-> deferred") {
			t.Fatalf("the oldest leak (pr-1) deleted, a younger one (pr-2) deferred: want so%s", p)
		}
		if !strings.Contains(strings.Join(p.Notes, "\n"), "deferred by sweep.max_deletions (3)") {
			t.Errorf("no note of the deferred deletions: %q", p.Notes)
		}
		s := rdsStatus(t, a.api)
		if s["cluster/prenv-pr-1"] != "" || s["cluster/prenv-pr-2"] != "available" || s["instance/prenv-pr-2-writer"] != "available" {
			t.Fatalf("RDS after a sweep within max_deletions: %v; want pr-1 gone and pr-2 there", s)
		}
	})

	t.Run("apply again removes the rest, reports the protected cluster and leaves the others'", func(t *testing.T) {
		p := a.sweepJSON(t, "--apply")
		for _, key := range []string{"aurora/cluster/prenv-pr-2", "aurora/instance/prenv-pr-2-writer"} {
			if got := p.item(key); !strings.HasSuffix(got, "-> deleted") {
				t.Errorf("%s: %q; want deleted%s", key, got, p)
			}
		}
		for _, key := range []string{"aurora/cluster/prenv-pr-3", "aurora/instance/prenv-pr-3-writer"} {
			if got := p.item(key); !strings.Contains(got, "-> protected: ") || !strings.Contains(got, "deletion protection") {
				t.Errorf("%s: %q; want reported as protected%s", key, got, p)
			}
		}
		after := rdsInventory(t, a.api)
		var left []string
		for _, l := range after {
			left = append(left, strings.Fields(l)[0])
		}
		want := []string{"cluster/billing-replica", "cluster/golden", "cluster/prenv-pr-3", "cluster/prenv-pr-9",
			"instance/billing-replica-1", "instance/prenv-pr-3-writer", "instance/prenv-pr-9-writer"}
		if !reflect.DeepEqual(left, want) {
			t.Fatalf("RDS after the sweeps: %q; want %q", left, want)
		}
		for _, what := range want {
			if lineOf(after, what) != lineOf(before, what) {
				t.Errorf("%s changed:\nbefore %s\nafter  %s", what, lineOf(before, what), lineOf(after, what))
			}
		}
	})
}

// legacyYAML selects the clusters a team's old script made, as its
// nightly job did: tagged Ephemeral=true, older than 48 hours.
const legacyYAML = `sweep:
  legacy:
    tags:
      Ephemeral: "true"
    older_than: 48h
`

// deleteByHand deletes what ids name ("instance/ID", "cluster/ID", in
// that order) through the SDK, as someone in the console does, and waits
// until RDS no longer shows them.
func (a *auroraSweep) deleteByHand(t *testing.T, ids ...string) {
	t.Helper()
	ctx := context.Background()
	for _, what := range ids {
		kind, id, _ := strings.Cut(what, "/")
		var err error
		if kind == "instance" {
			_, err = a.api.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)})
		} else {
			_, err = a.api.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)})
		}
		if err != nil {
			t.Fatal(err)
		}
		within(t, 30*time.Second, what+" gone from RDS", func() bool { return rdsStatus(t, a.api)[what] == "" })
	}
}

// The seed's sweeper, for teams moving from scripts: clusters tagged the
// way a team's script tags them (Ephemeral=true, none of prenv's tags) are
// listed apart from prenv's own (which carry Ephemeral=true too), deleted
// only with --apply --legacy and only when older than older_than; the rest
// is untouched. Then "disappears": an environment's writer, and then its
// whole cluster, deleted out of band; sweep, up and down all succeed.
func TestAuroraSweep_LegacyClustersAndResourcesGoneOutOfBand(t *testing.T) {
	t.Parallel()
	a := newAuroraSweep(t, rdsemu.Options{}, auroraSweepYAML+legacyYAML)
	a.must("up", "--pr", "1", "--sha", "c0ffee1")
	script := func(pr int) map[string]string {
		return map[string]string{"Ephemeral": "true", "Environment": fmt.Sprintf("PR-%d", pr), "CreatedBy": "preview-env.sh"}
	}
	// The script made pr-41's three days ago, pr-42's just now.
	a.clock.set(-72 * time.Hour)
	a.makeByHand(t, "shop-pr-41", "shop-pr-41-instance-1", script(41), false)
	a.clock.set(0)
	a.makeByHand(t, "shop-pr-42", "shop-pr-42-instance-1", script(42), false)
	// Neither prenv's nor the script's.
	a.makeByHand(t, "analytics", "analytics-1", map[string]string{"team": "data"}, false)
	a.settled(t)
	before := rdsInventory(t, a.api)

	t.Run("a dry run lists the legacy clusters apart and changes nothing", func(t *testing.T) {
		p := a.sweepJSON(t)
		text := a.mustRun(t, "sweep")
		if after := rdsInventory(t, a.api); !reflect.DeepEqual(before, after) {
			t.Fatalf("a dry run changed RDS:\nbefore %q\nafter  %q", before, after)
		}
		for key, want := range map[string]string{
			"aurora/cluster/shop-pr-41":             "legacy: selected by sweep.legacy and older than 48h0m0s",
			"aurora/instance/shop-pr-41-instance-1": "legacy: selected by sweep.legacy and older than 48h0m0s",
			"aurora/cluster/shop-pr-42":             "keep: selected by sweep.legacy, but not older than its older_than",
			"aurora/instance/shop-pr-42-instance-1": "keep: selected by sweep.legacy, but not older than its older_than",
			"aurora/cluster/prenv-pr-1":             "keep: its environment is open",
			"aurora/instance/prenv-pr-1-writer":     "keep: its environment is open",
		} {
			if got := p.item(key); !strings.HasPrefix(got, want) {
				t.Errorf("%s: %q; want %q...%s", key, got, want, p)
			}
		}
		for _, it := range p.Items {
			if legacy := strings.HasPrefix(it.ID, "shop-"); it.Legacy != legacy {
				t.Errorf("%s/%s: legacy %v, want %v", it.Kind, it.ID, it.Legacy, legacy)
			}
			if it.ID == "analytics" || it.ID == "analytics-1" {
				t.Errorf("%s is listed without --show-foreign: %s: %s", it.ID, it.Verdict, it.Reason)
			}
		}
		own, legacy, ok := strings.Cut(text, "Legacy resources (selected by sweep.legacy; deleted only with --apply --legacy):")
		if !ok || !strings.Contains(own, "prenv-pr-1") || strings.Contains(own, "shop-pr-4") ||
			!strings.Contains(legacy, "shop-pr-41") || !strings.Contains(legacy, "shop-pr-42") || strings.Contains(legacy, "prenv-pr-1") {
			t.Errorf("prenv sweep does not list the legacy clusters apart:\n%s", text)
		}
		if got := a.sweepJSON(t, "--show-foreign").item("aurora/cluster/analytics"); !strings.HasPrefix(got, "foreign: carries no owner id") {
			t.Errorf("analytics with --show-foreign: %q", got)
		}
	})

	t.Run("apply without --legacy leaves them", func(t *testing.T) {
		p := a.sweepJSON(t, "--apply")
		if got := p.item("aurora/cluster/shop-pr-41"); !strings.HasSuffix(got, "-> left: legacy resources are deleted only with --legacy") {
			t.Errorf("shop-pr-41: %q%s", got, p)
		}
		if after := rdsInventory(t, a.api); !reflect.DeepEqual(before, after) {
			t.Fatalf("sweep --apply without --legacy changed RDS:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("apply --legacy deletes the old ones and nothing else", func(t *testing.T) {
		p := a.sweepJSON(t, "--apply", "--legacy")
		for _, key := range []string{"aurora/cluster/shop-pr-41", "aurora/instance/shop-pr-41-instance-1"} {
			if got := p.item(key); !strings.HasPrefix(got, "legacy: ") || !strings.HasSuffix(got, "-> deleted") {
				t.Errorf("%s: %q; want legacy and deleted%s", key, got, p)
			}
		}
		after := rdsInventory(t, a.api)
		var left []string
		for _, l := range after {
			left = append(left, strings.Fields(l)[0])
		}
		want := []string{"cluster/analytics", "cluster/golden", "cluster/prenv-pr-1", "cluster/shop-pr-42",
			"instance/analytics-1", "instance/prenv-pr-1-writer", "instance/shop-pr-42-instance-1"}
		if !reflect.DeepEqual(left, want) {
			t.Fatalf("RDS after sweep --apply --legacy: %q; want %q", left, want)
		}
		for _, what := range want {
			if lineOf(after, what) != lineOf(before, what) {
				t.Errorf("%s changed:\nbefore %s\nafter  %s", what, lineOf(before, what), lineOf(after, what))
			}
		}
	})

	t.Run("disappears: sweep, up and down succeed when RDS lost what prenv made", func(t *testing.T) {
		noFailure := func(p auroraPlan) {
			t.Helper()
			for _, it := range p.Items {
				if strings.HasPrefix(it.Outcome, "failed") {
					t.Errorf("%s/%s: %s", it.Kind, it.ID, it.Outcome)
				}
			}
		}
		created := func() string {
			return strings.Fields(lineOf(rdsInventory(t, a.api), "cluster/prenv-pr-1"))[3]
		}
		first := created()
		// The writer alone goes.
		a.deleteByHand(t, "instance/prenv-pr-1-writer")
		p := a.sweepJSON(t, "--apply")
		noFailure(p)
		if got := p.item("aurora/cluster/prenv-pr-1"); !strings.HasPrefix(got, "keep: its environment is open") {
			t.Errorf("the cluster of an open environment without its writer: %q%s", got, p)
		}
		a.mustRun(t, "up", "--pr", "1", "--sha", "c0ffee1")
		if st := rdsStatus(t, a.api); st["cluster/prenv-pr-1"] != "available" || st["instance/prenv-pr-1-writer"] != "available" || created() != first {
			t.Fatalf("up after the writer went: %v, the cluster %s (was %s); want the same cluster with a new writer", st, created(), first)
		}
		// The whole database goes.
		a.deleteByHand(t, "instance/prenv-pr-1-writer", "cluster/prenv-pr-1")
		noFailure(a.sweepJSON(t, "--apply"))
		a.mustRun(t, "up", "--pr", "1", "--sha", "c0ffee1")
		if st := a.statusOf(t, 1); st.State != "ready" || !strings.HasPrefix(st.Database.Ready, "select 1") {
			t.Fatalf("up after the cluster went: %+v", st)
		}
		if st := rdsStatus(t, a.api); st["cluster/prenv-pr-1"] != "available" || st["instance/prenv-pr-1-writer"] != "available" {
			t.Fatalf("up after the cluster went: %v", st)
		}
		a.mustRun(t, "down", "--pr", "1")
		a.mustRun(t, "down", "--pr", "1")
		if st := rdsStatus(t, a.api); st["cluster/prenv-pr-1"] != "" || st["instance/prenv-pr-1-writer"] != "" {
			t.Fatalf("RDS after down: %v", st)
		}
		noFailure(a.sweepJSON(t, "--apply"))
	})
}
