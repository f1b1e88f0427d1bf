package aurora_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// fillUntil runs rounds of Fill until cond holds of the report.
func fillUntil(t *testing.T, c *aurora.Cloner, what string, cond func(aurora.FillReport) bool) aurora.FillReport {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rep, err := c.Fill(context.Background())
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
		if cond(rep) {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s; last round: %+v", what, rep)
		}
	}
}

func poolRequest(pr int) dbclone.Request {
	k := env.Key{Repo: "acme/shop", PR: pr}
	return dbclone.Request{Key: k, Name: k.Name(), Labels: env.Labels("team", k, time.Now(), time.Hour), ExpiresAt: time.Now().Add(time.Hour)}
}

// With RDS's delays (scaled down), a claim from the warm pool returns a
// database that is available at once, with a handful of requests and no
// clone made, while an environment that finds the pool empty waits on a
// fresh clone; the pool refills after the claim; the claimed member is
// the environment's from then on (get, renew, down); a golden promotion
// replaces the unclaimed members; a quota that stops the refill is
// reported and never stops a claim.
func TestPool_AClaimIsReadyAtOnceAndThePoolRefills(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 400 * time.Millisecond, InstanceCreate: 600 * time.Millisecond,
		Modify: 100 * time.Millisecond, ClusterDelete: 100 * time.Millisecond, InstanceDelete: 100 * time.Millisecond, ClusterQuota: 6})
	ctx := context.Background()
	c := w.cloner("team")
	c.Options.Pool = aurora.PoolOptions{Size: 2, MaxAge: time.Hour}
	claims := 0
	c.Claimed = func() { claims++ }

	rep := fillUntil(t, c, "two members ready", func(r aurora.FillReport) bool { return r.Ready == 2 })
	if rep.Generation != 1 || rep.Filling != 0 {
		t.Fatalf("a full pool: %+v", rep)
	}

	// A claim: ready at once, no clone made.
	before := w.requests.Load()
	restores := w.emu.Stats().ByAction["RestoreDBClusterToPointInTime"]
	t0 := time.Now()
	db, err := c.Clone(ctx, poolRequest(1))
	took := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	sent := w.requests.Load() - before
	if !strings.HasPrefix(db.Name, "prenv-pool-") || !db.Created || db.Password == "" || !strings.Contains(db.URL, db.Password) {
		t.Fatalf("the claimed database: %+v", db)
	}
	if sent > 10 {
		t.Errorf("a claim took %d RDS requests, want at most 10", sent)
	}
	if after := w.emu.Stats().ByAction["RestoreDBClusterToPointInTime"]; after != restores {
		t.Errorf("a claim cloned: restores %d → %d", restores, after)
	}
	if claims != 1 {
		t.Errorf("the pool keeper was told of %d claims, want 1", claims)
	}
	t.Logf("claim: %d requests, %v", sent, took)
	if cl, is := describe(t, w, db.Name); aws.ToString(cl.Status) != "available" || len(is) != 1 || aws.ToString(is[0].DBInstanceStatus) != "available" {
		t.Errorf("the claimed cluster, as up returned: %s, writer %v", aws.ToString(cl.Status), is)
	}
	tags := clusterTags(t, w, db.Name)
	if tags[aurora.LabelPool] != aurora.PoolClaimed || tags[env.LabelKey] != "acme/shop:1" || tags["Environment"] != "PR-1" || tags[env.LabelPR] != "1" {
		t.Errorf("the claimed cluster's tags: %v", tags)
	}

	// The environment's from then on.
	got, err := c.Get(ctx, env.Key{Repo: "acme/shop", PR: 1})
	if err != nil || got.Name != db.Name || got.Password != db.Password {
		t.Fatalf("get pr-1: %+v %v", got, err)
	}
	again, err := c.Clone(ctx, poolRequest(1))
	if err != nil || again.Name != db.Name || again.Created {
		t.Fatalf("up again adopts the claimed member: %+v %v", again, err)
	}

	// The pool refills.
	fillUntil(t, c, "the pool refilled to two", func(r aurora.FillReport) bool { return r.Ready == 2 })

	// A claim of pr-9 cut after its first tag (the writer's): the next up
	// of pr-9 finishes it on that member, not on another.
	ms, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var half string
	for _, m := range ms {
		if m.Pool == aurora.PoolReady && !m.Claimed {
			half = m.Cluster
		}
	}
	_, is := describe(t, w, half)
	if _, err := w.api.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: is[0].DBInstanceArn,
		Tags: []types.Tag{{Key: aws.String(env.LabelKey), Value: aws.String("acme/shop:9")}}}); err != nil {
		t.Fatal(err)
	}
	if db9, err := c.Clone(ctx, poolRequest(9)); err != nil || db9.Name != half {
		t.Fatalf("pr-9's up after a cut claim of %s: %+v %v", half, db9, err)
	}

	// Another machine (a home of its own), with the pool turned off,
	// finds it too.
	other := w.cloner("team")
	other.Home = t.TempDir()
	if got, err := other.Get(ctx, env.Key{Repo: "acme/shop", PR: 1}); err != nil || got.Name != db.Name {
		t.Fatalf("get pr-1 from a machine with no home: %+v %v", got, err)
	}

	// A golden promotion: the unclaimed members are replaced; the claimed
	// one stays its environment's.
	golden, _ := describe(t, w, "golden")
	if _, err := w.api.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: golden.DBClusterArn,
		Tags: []types.Tag{{Key: aws.String(aurora.LabelGeneration), Value: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	fillUntil(t, c, "two members of generation 2 ready, none of 1 left unclaimed", func(r aurora.FillReport) bool {
		if r.Generation != 2 || r.Ready != 2 {
			return false
		}
		ms, err := c.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !m.Claimed && m.Generation != 2 {
				return false
			}
		}
		return true
	})

	// The quota (six clusters, the source among them) stops the refill
	// after two more claims: reported, and the claims go on.
	var last aurora.FillReport
	for pr := 2; pr <= 3; pr++ {
		db, err := c.Clone(ctx, poolRequest(pr))
		if err != nil || !strings.HasPrefix(db.Name, "prenv-pool-") {
			t.Fatalf("claim for pr-%d: %+v %v", pr, db, err)
		}
		if last, err = c.Fill(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(strings.Join(last.Problems, " "), "quota") || last.Filling != 1 {
		t.Errorf("a refill beyond the quota: %+v", last)
	}
	// Retried: once an environment is down, a round starts the member
	// the quota held back.
	if err := c.Delete(ctx, env.Key{Repo: "acme/shop", PR: 2}); err != nil {
		t.Fatal(err)
	}
	fillUntil(t, c, "the member the quota held back started", func(r aurora.FillReport) bool { return len(r.Created) == 1 && len(r.Problems) == 0 })
	// Down deletes the claimed member.
	if err := c.Delete(ctx, env.Key{Repo: "acme/shop", PR: 1}); err != nil {
		t.Fatal(err)
	}
	if cl, _ := describe(t, w, db.Name); cl != nil {
		t.Errorf("pr-1's member left after down: %s", aws.ToString(cl.Status))
	}
}
