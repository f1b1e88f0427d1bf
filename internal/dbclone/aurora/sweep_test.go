package aurora_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// legacy is how the seed's nightly script tags what it makes.
var legacy = &env.Legacy{Tags: map[string]string{"Ephemeral": "true"}, OlderThan: 48 * time.Hour}

// up makes environment k's cluster and writer as prenv's up does, with
// the labels of owner.
func up(t *testing.T, w *world, owner string, k env.Key) string {
	t.Helper()
	c := w.cloner(owner)
	req := dbclonetest.Request(k)
	req.Labels = env.Labels(owner, k, time.Now(), time.Hour)
	if _, err := c.Clone(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	return c.ClusterID(k)
}

// restore makes a cluster the way anyone else would, with tags.
func restore(t *testing.T, w *world, id string, tags map[string]string) {
	t.Helper()
	if _, err := w.api.RestoreDBClusterToPointInTime(context.Background(), &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String(id), SourceDBClusterIdentifier: aws.String("golden"), RestoreType: aws.String("copy-on-write"),
		UseLatestRestorableTime: aws.Bool(true), Tags: tagList(tags)}); err != nil {
		t.Fatal(err)
	}
}

func createInstance(t *testing.T, w *world, id, cluster string, tags map[string]string) {
	t.Helper()
	if _, err := w.api.CreateDBInstance(context.Background(), &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id),
		DBClusterIdentifier: aws.String(cluster), DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql"),
		Tags: tagList(tags)}); err != nil {
		t.Fatal(err)
	}
}

func tagList(m map[string]string) []types.Tag {
	var out []types.Tag
	for k, v := range m {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out
}

// ourTags are the tags prenv writes on environment repo:pr of owner.
func ourTags(owner, key string) map[string]string {
	now := time.Now().UTC()
	return map[string]string{env.LabelOwner: owner, env.LabelKey: key, env.LabelCreatedAt: now.Format(time.RFC3339),
		env.LabelExpiresAt: now.Add(time.Hour).Format(time.RFC3339), env.LabelEphemeral: "true"}
}

func addTags(t *testing.T, w *world, kind, id string, tags map[string]string) {
	t.Helper()
	arn := fmt.Sprintf("arn:aws:rds:us-east-1:123456789012:%s:%s", map[string]string{aurora.KindCluster: "cluster", aurora.KindInstance: "db"}[kind], id)
	if _, err := w.api.AddTagsToResource(context.Background(), &rds.AddTagsToResourceInput{ResourceName: aws.String(arn), Tags: tagList(tags)}); err != nil {
		t.Fatal(err)
	}
}

// find is the listed resource kind/id, or fails the test.
func find(t *testing.T, rs []env.Resource, kind, id string) env.Resource {
	t.Helper()
	for _, r := range rs {
		if r.Kind == kind && r.ID == id {
			return r
		}
	}
	t.Fatalf("%s %s is not listed", kind, id)
	return env.Resource{}
}

func resources(t *testing.T, c *aurora.Cloner, q env.Query) []env.Resource {
	t.Helper()
	rs, err := c.Resources(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// clusterTags reads a cluster's tags through the RDS API, or nil if it is
// gone.
func clusterTags(t *testing.T, w *world, id string) map[string]string {
	t.Helper()
	cl, _ := describe(t, w, id)
	if cl == nil {
		return nil
	}
	m := map[string]string{}
	for _, tg := range cl.TagList {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

func instanceTags(t *testing.T, w *world, id string) map[string]string {
	t.Helper()
	out, err := w.api.DescribeDBInstances(context.Background(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	var nf *types.DBInstanceNotFoundFault
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tg := range out.DBInstances[0].TagList {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// gone says whether RDS itself no longer shows cluster or instance id.
func gone(t *testing.T, w *world, kind, id string) bool {
	t.Helper()
	if kind == aurora.KindCluster {
		return clusterTags(t, w, id) == nil
	}
	return instanceTags(t, w, id) == nil
}

func deletions(w *world) int {
	st := w.emu.Stats().ByAction
	return st["DeleteDBCluster"] + st["DeleteDBInstance"] + st["ModifyDBCluster"]
}

func TestResources_TellsOursForeignAndLegacyApartWithKeysAndTimes(t *testing.T) {
	w := newWorld(t, rdsemu.Options{})
	w.emu.AddSource("golden", map[string]string{"Ephemeral": "true"}) // the seed's script tagged even the golden cluster
	start := time.Now().Add(-time.Second)
	k := env.Key{Repo: "acme/shop", PR: 1}
	ours := up(t, w, "team-a", k)
	theirs := up(t, w, "team-b", env.Key{Repo: "acme/shop", PR: 2}) // another installation: tagged Ephemeral=true too
	restore(t, w, "billing", map[string]string{"team": "billing"})
	createInstance(t, w, "billing-1", "billing", map[string]string{"team": "billing"})
	restore(t, w, "ci-pr-77", map[string]string{"Ephemeral": "true", "Environment": "PR-77"})
	createInstance(t, w, "ci-pr-77-1", "ci-pr-77", map[string]string{"Ephemeral": "true"})

	rs := resources(t, w.cloner("team-a"), env.Query{Owner: "team-a", Legacy: legacy, Now: time.Now()})
	if len(rs) != 9 {
		t.Fatalf("%d resources listed, want 5 clusters and 4 instances: %+v", len(rs), rs)
	}
	for _, kind := range []string{aurora.KindCluster, aurora.KindInstance} {
		id := ours
		if kind == aurora.KindInstance {
			id += "-writer"
		}
		r := find(t, rs, kind, id)
		exp, err := time.Parse(time.RFC3339, r.Labels[env.LabelExpiresAt])
		if r.Provider != "aurora" || r.Owner() != "team-a" || r.Key != k || r.Legacy || r.Problem != "" || r.HalfMade != "" || r.Protected != "" ||
			r.CreatedAt.Before(start) || r.CreatedAt.After(time.Now()) || err != nil || exp.Sub(r.CreatedAt) < 59*time.Minute ||
			r.Labels[env.LabelKey] != "acme/shop#1" {
			t.Errorf("our %s: %+v", kind, r)
		}
	}
	for _, id := range []string{theirs, "billing", "golden"} {
		if r := find(t, rs, aurora.KindCluster, id); r.Owner() == "team-a" || r.Legacy || r.Key != (env.Key{}) || r.Problem != "" || r.HalfMade != "" {
			t.Errorf("cluster %s must be foreign, neither ours nor legacy: %+v", id, r)
		}
	}
	for _, id := range []string{theirs + "-writer", "billing-1"} {
		if r := find(t, rs, aurora.KindInstance, id); r.Owner() == "team-a" || r.Legacy || r.HalfMade != "" {
			t.Errorf("instance %s must be foreign: %+v", id, r)
		}
	}
	if r := find(t, rs, aurora.KindCluster, theirs); r.Owner() != "team-b" {
		t.Errorf("another installation's cluster shows owner %q", r.Owner())
	}
	for _, r := range []env.Resource{find(t, rs, aurora.KindCluster, "ci-pr-77"), find(t, rs, aurora.KindInstance, "ci-pr-77-1")} {
		if !r.Legacy || r.Owner() != "" || r.CreatedAt.IsZero() || r.Problem != "" || r.HalfMade != "" {
			t.Errorf("the seed script's %s %s must be legacy with its creation time: %+v", r.Kind, r.ID, r)
		}
	}

	// Without sweep.legacy, nothing is legacy.
	for _, r := range resources(t, w.cloner("team-a"), env.Query{Owner: "team-a", Now: time.Now()}) {
		if r.Legacy {
			t.Errorf("%s %s is legacy without sweep.legacy", r.Kind, r.ID)
		}
	}
}

func TestResources_AClusterWithNoWriterAndAWriterWithoutItsClusterAreHalfMade(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	whole := up(t, w, "prenv", env.Key{PR: 3})
	restore(t, w, "prenv-pr-4", ourTags("prenv", ":4")) // an up killed between the cluster and its writer
	orphan := up(t, w, "prenv", env.Key{PR: 5})
	if !w.emu.LoseCluster(orphan) {
		t.Fatal("setup: no cluster to lose")
	}
	restore(t, w, "reports", nil) // someone else's empty cluster is theirs to leave empty

	rs := resources(t, w.cloner("prenv"), env.Query{Owner: "prenv", Now: time.Now()})
	if r := find(t, rs, aurora.KindCluster, "prenv-pr-4"); r.HalfMade != "a cluster with no writer: its up was interrupted before the writer was created" || r.Key != (env.Key{PR: 4}) {
		t.Errorf("a cluster of ours with no writer: %+v", r)
	}
	if r := find(t, rs, aurora.KindInstance, orphan+"-writer"); r.HalfMade != "a writer whose cluster "+orphan+" is gone" || r.Key != (env.Key{PR: 5}) {
		t.Errorf("a writer whose cluster is gone: %+v", r)
	}
	for _, r := range []env.Resource{find(t, rs, aurora.KindCluster, whole), find(t, rs, aurora.KindInstance, whole+"-writer"), find(t, rs, aurora.KindCluster, "reports")} {
		if r.HalfMade != "" {
			t.Errorf("%s %s is not half-made: %q", r.Kind, r.ID, r.HalfMade)
		}
	}
}

func TestResources_UnreadableKeyOrTimesAreAProblemAndNeverGuessed(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	cases := []struct {
		id   string
		edit func(m map[string]string)
		want string
	}{
		{"no-key", func(m map[string]string) { delete(m, env.LabelKey) }, "no prenv.dev/env tag"},
		{"bad-key", func(m map[string]string) { m[env.LabelKey] = "acme/shop:twelve" }, `prenv.dev/env tag "acme/shop:twelve" is not an environment key`},
		{"bad-created", func(m map[string]string) { m[env.LabelCreatedAt] = "yesterday" }, `prenv.dev/created-at tag "yesterday" is not an RFC 3339 time`},
		{"no-expiry", func(m map[string]string) { delete(m, env.LabelExpiresAt) }, "no prenv.dev/expires-at tag"},
	}
	for _, tc := range cases {
		m := ourTags("prenv", "acme/shop:12")
		tc.edit(m)
		restore(t, w, tc.id, m)
	}
	restore(t, w, "foreign-odd", map[string]string{env.LabelOwner: "other", env.LabelKey: "garbage"})
	rs := resources(t, w.cloner("prenv"), env.Query{Owner: "prenv", Now: time.Now()})
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			r := find(t, rs, aurora.KindCluster, tc.id)
			if !strings.Contains(r.Problem, tc.want) || !strings.Contains(r.Problem, "keeps it") {
				t.Fatalf("Problem = %q; want it to say %q and that it is kept", r.Problem, tc.want)
			}
		})
	}
	if r := find(t, rs, aurora.KindCluster, "foreign-odd"); r.Problem != "" {
		t.Errorf("a foreign cluster's tags are not ours to judge: %q", r.Problem)
	}
}

func TestResources_ListsFiveHundredResourcesInPagesNotRequestsPerResource(t *testing.T) {
	const n = 250
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, ClusterQuota: n + 1, InstanceQuota: n})
	for i := range n {
		id := fmt.Sprintf("prenv-pr-%d", i+1)
		restore(t, w, id, ourTags("prenv", fmt.Sprintf(":%d", i+1)))
		createInstance(t, w, id+"-writer", id, ourTags("prenv", fmt.Sprintf(":%d", i+1)))
	}
	before := w.emu.Stats()
	rs := resources(t, w.cloner("prenv"), env.Query{Owner: "prenv", Now: time.Now()})
	after := w.emu.Stats()
	if len(rs) != 2*n+1 {
		t.Fatalf("%d resources listed, want %d", len(rs), 2*n+1)
	}
	// RDS returns at most 100 records a page: 251 clusters are 3 pages, 250
	// instances 3 pages.
	clusters := after.ByAction["DescribeDBClusters"] - before.ByAction["DescribeDBClusters"]
	instances := after.ByAction["DescribeDBInstances"] - before.ByAction["DescribeDBInstances"]
	if clusters != 3 || instances != 3 || after.Requests-before.Requests != 6 {
		t.Fatalf("%d DescribeDBClusters, %d DescribeDBInstances, %d requests in all: want 3 pages of each and nothing else",
			clusters, instances, after.Requests-before.Requests)
	}
	for _, r := range rs {
		if r.ID != "golden" && (r.Key.PR == 0 || r.Problem != "" || r.HalfMade != "") {
			t.Fatalf("%s %s: %+v", r.Kind, r.ID, r)
		}
	}
}

func TestRemove_OursGoesClusterAndWriterAsRDSSeesIt(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, InstanceDelete: 30 * time.Millisecond, ClusterDelete: 30 * time.Millisecond})
	c := w.cloner("prenv")
	id := up(t, w, "prenv", env.Key{Repo: "acme/shop", PR: 6})
	if _, err := os.Stat(filepath.Join(w.home, "aurora", id+".password")); err != nil {
		t.Fatalf("setup: no stored password: %v", err)
	}
	q := env.Query{Owner: "prenv", Now: time.Now()}
	rs := resources(t, c, q)
	if err := c.Remove(context.Background(), q, find(t, rs, aurora.KindCluster, id)); err != nil {
		t.Fatal(err)
	}
	if !gone(t, w, aurora.KindCluster, id) || !gone(t, w, aurora.KindInstance, id+"-writer") {
		t.Fatal("RDS still shows the cluster or its writer")
	}
	if _, err := os.Stat(filepath.Join(w.home, "aurora", id+".password")); !os.IsNotExist(err) {
		t.Fatalf("the cluster's stored password is left: %v", err)
	}
	// The writer was planned too; it went with its cluster.
	if err := c.Remove(context.Background(), q, find(t, rs, aurora.KindInstance, id+"-writer")); err != nil {
		t.Fatalf("removing a writer already gone: %v", err)
	}
	if g := find(t, resources(t, c, q), aurora.KindCluster, "golden"); g.ID != "golden" {
		t.Fatal("the golden cluster went too")
	}
}

func TestRemove_WhatWasDeletedOutOfBandIsSuccess(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	id := up(t, w, "prenv", env.Key{PR: 7})
	q := env.Query{Owner: "prenv", Now: time.Now()}
	rs := resources(t, c, q)
	ctx := context.Background()
	if _, err := w.api.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id + "-writer"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	before := deletions(w)
	for _, r := range rs {
		if r.Owner() == "prenv" {
			if err := c.Remove(ctx, q, r); err != nil {
				t.Errorf("remove %s %s deleted out of band: %v", r.Kind, r.ID, err)
			}
		}
	}
	if deletions(w) != before {
		t.Error("prenv asked RDS to delete what was already gone")
	}
}

func TestRemove_AWriterWhoseClusterIsGoneGoesToo(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	id := up(t, w, "prenv", env.Key{PR: 8})
	w.emu.LoseCluster(id)
	q := env.Query{Owner: "prenv", Now: time.Now()}
	r := find(t, resources(t, c, q), aurora.KindInstance, id+"-writer")
	if err := c.Remove(context.Background(), q, r); err != nil {
		t.Fatal(err)
	}
	if !gone(t, w, aurora.KindInstance, id+"-writer") {
		t.Fatal("RDS still shows the writer")
	}
}

func TestRemove_ALegacyClusterGoesWithItsInstances(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	restore(t, w, "ci-pr-90", map[string]string{"Ephemeral": "true"})
	createInstance(t, w, "ci-pr-90-1", "ci-pr-90", map[string]string{"Ephemeral": "true"})
	createInstance(t, w, "ci-pr-90-2", "ci-pr-90", map[string]string{"Ephemeral": "true", "role": "reader"})
	q := env.Query{Owner: "prenv", Legacy: legacy, Now: time.Now()}
	if err := c.Remove(context.Background(), q, find(t, resources(t, c, q), aurora.KindCluster, "ci-pr-90")); err != nil {
		t.Fatal(err)
	}
	for kind, id := range map[string]string{aurora.KindCluster: "ci-pr-90", aurora.KindInstance: "ci-pr-90-1", "reader": "ci-pr-90-2"} {
		if kind == "reader" {
			kind = aurora.KindInstance
		}
		if !gone(t, w, kind, id) {
			t.Errorf("RDS still shows %s %s", kind, id)
		}
	}
}

func TestRemove_RefusesWhatIsNotProvablyOursAndLeavesItUntouched(t *testing.T) {
	type setup struct {
		w  *world
		q  env.Query
		r  env.Resource
		id string // the cluster that must stay whole
	}
	cases := []struct {
		name string
		make func(t *testing.T, w *world) setup
		want []string
		not  bool // the error wraps env.ErrNotOurs
	}{
		{"a cluster without an owner tag", func(t *testing.T, w *world) setup {
			restore(t, w, "billing", map[string]string{"team": "billing"})
			createInstance(t, w, "billing-1", "billing", nil)
			return setup{q: env.Query{Owner: "prenv"}, r: env.Resource{Provider: "aurora", Kind: aurora.KindCluster, ID: "billing"}, id: "billing"}
		}, []string{"cluster billing no longer carries prenv's owner tag prenv.dev/owner=prenv"}, true},
		{"another installation's cluster", func(t *testing.T, w *world) setup {
			id := up(t, w, "team-b", env.Key{PR: 10})
			return setup{q: env.Query{Owner: "prenv"}, r: env.Resource{Provider: "aurora", Kind: aurora.KindCluster, ID: id}, id: id}
		}, []string{"prenv.dev/owner=team-b, not prenv", "another installation's"}, true},
		{"another installation's writer", func(t *testing.T, w *world) setup {
			id := up(t, w, "team-b", env.Key{PR: 11})
			return setup{q: env.Query{Owner: "prenv"}, r: env.Resource{Provider: "aurora", Kind: aurora.KindInstance, ID: id + "-writer"}, id: id}
		}, []string{"instance prenv-pr-11-writer carries the owner tag prenv.dev/owner=team-b"}, true},
		{"ours when planned, another's now", func(t *testing.T, w *world) setup {
			id := up(t, w, "prenv", env.Key{PR: 12})
			q := env.Query{Owner: "prenv"}
			r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, id)
			addTags(t, w, aurora.KindCluster, id, map[string]string{env.LabelOwner: "team-b"})
			return setup{q: q, r: r, id: id}
		}, []string{"another installation's"}, true},
		{"ours with deletion protection", func(t *testing.T, w *world) setup {
			id := up(t, w, "prenv", env.Key{PR: 13})
			if _, err := w.api.ModifyDBCluster(context.Background(), &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id), DeletionProtection: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			q := env.Query{Owner: "prenv"}
			r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, id)
			if !strings.Contains(r.Protected, "--no-deletion-protection") {
				t.Errorf("the plan does not say the cluster is protected and what to run: %q", r.Protected)
			}
			return setup{q: q, r: r, id: id}
		}, []string{"deletion protection on", "aws rds modify-db-cluster --db-cluster-identifier prenv-pr-13 --no-deletion-protection"}, false},
		{"the writer of a cluster with deletion protection", func(t *testing.T, w *world) setup {
			id := up(t, w, "prenv", env.Key{PR: 14})
			if _, err := w.api.ModifyDBCluster(context.Background(), &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id), DeletionProtection: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			q := env.Query{Owner: "prenv"}
			r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindInstance, id+"-writer")
			if !strings.Contains(r.Protected, "its cluster "+id+" has deletion protection on") {
				t.Errorf("the plan does not say the writer's cluster is protected: %q", r.Protected)
			}
			return setup{q: q, r: r, id: id}
		}, []string{"in cluster prenv-pr-14, which has deletion protection on"}, false},
		{"ours with an instance that is not", func(t *testing.T, w *world) setup {
			id := up(t, w, "prenv", env.Key{PR: 15})
			createInstance(t, w, "analytics-reader", id, map[string]string{"team": "analytics"})
			q := env.Query{Owner: "prenv"}
			return setup{q: q, r: find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, id), id: id}
		}, []string{"cluster prenv-pr-15 is left with its instances", "instance analytics-reader no longer carries prenv's owner tag"}, true},
		{"legacy when planned, no longer tagged so", func(t *testing.T, w *world) setup {
			restore(t, w, "ci-pr-80", map[string]string{"Ephemeral": "true"})
			createInstance(t, w, "ci-pr-80-1", "ci-pr-80", map[string]string{"Ephemeral": "true"})
			q := env.Query{Owner: "prenv", Legacy: legacy}
			r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, "ci-pr-80")
			addTags(t, w, aurora.KindCluster, "ci-pr-80", map[string]string{"Ephemeral": "false"})
			return setup{q: q, r: r, id: "ci-pr-80"}
		}, []string{"cluster ci-pr-80 no longer matches sweep.legacy: it does not carry Ephemeral=true"}, true},
		{"legacy when planned, an owner's now", func(t *testing.T, w *world) setup {
			restore(t, w, "ci-pr-81", map[string]string{"Ephemeral": "true"})
			q := env.Query{Owner: "prenv", Legacy: legacy}
			r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, "ci-pr-81")
			addTags(t, w, aurora.KindCluster, "ci-pr-81", map[string]string{env.LabelOwner: "prenv"})
			return setup{q: q, r: r, id: "ci-pr-81"}
		}, []string{"now carries the owner tag prenv.dev/owner=prenv: it is no longer legacy"}, true},
		{"legacy with a member the script did not tag", func(t *testing.T, w *world) setup {
			restore(t, w, "ci-pr-82", map[string]string{"Ephemeral": "true"})
			createInstance(t, w, "ci-pr-82-1", "ci-pr-82", map[string]string{"team": "qa"})
			q := env.Query{Owner: "prenv", Legacy: legacy}
			return setup{q: q, r: find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, "ci-pr-82"), id: "ci-pr-82"}
		}, []string{"instance ci-pr-82-1 no longer matches sweep.legacy"}, true},
		{"the golden source, even tagged like legacy", func(t *testing.T, w *world) setup {
			w.emu.AddSource("golden", map[string]string{"Ephemeral": "true"})
			q := env.Query{Owner: "prenv", Legacy: legacy}
			if r := find(t, resources(t, w.cloner("prenv"), q), aurora.KindCluster, "golden"); r.Legacy {
				t.Error("the golden source is planned as legacy")
			}
			return setup{q: q, r: env.Resource{Provider: "aurora", Kind: aurora.KindCluster, ID: "golden", Legacy: true}, id: "golden"}
		}, []string{"cluster golden is the golden source"}, true},
		{"anything, without an owner id", func(t *testing.T, w *world) setup {
			restore(t, w, "untagged", nil)
			return setup{q: env.Query{}, r: env.Resource{Provider: "aurora", Kind: aurora.KindCluster, ID: "untagged"}, id: "untagged"}
		}, []string{"no owner id to prove it is ours"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
			s := tc.make(t, w)
			_, before := describe(t, w, s.id)
			tagsBefore := clusterTags(t, w, s.id)
			calls := deletions(w)
			err := w.cloner("prenv").Remove(context.Background(), s.q, s.r)
			if err == nil {
				t.Fatal("Remove = nil: it was not refused")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Remove = %v\nwant it to say %q", err, want)
				}
			}
			if errors.Is(err, env.ErrNotOurs) != tc.not {
				t.Errorf("errors.Is(err, env.ErrNotOurs) = %v, want %v", !tc.not, tc.not)
			}
			cl, after := describe(t, w, s.id)
			if cl == nil || aws.ToString(cl.Status) != "available" || len(after) != len(before) || deletions(w) != calls {
				t.Fatalf("cluster %s was touched: %v, %d of %d instances left, %d delete or modify calls", s.id, cl != nil, len(after), len(before), deletions(w)-calls)
			}
			if got := clusterTags(t, w, s.id); len(got) != len(tagsBefore) {
				t.Fatalf("its tags changed: %v, were %v", got, tagsBefore)
			}
		})
	}
}

func TestRemove_TheWaitIsBoundedAndSaysWhatToDo(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, InstanceDelete: 5 * time.Second})
	c := w.cloner("prenv")
	c.Options.WaitTimeout = 100 * time.Millisecond
	id := up(t, w, "prenv", env.Key{PR: 16})
	q := env.Query{Owner: "prenv"}
	start := time.Now()
	err := c.Remove(context.Background(), q, find(t, resources(t, c, q), aurora.KindInstance, id+"-writer"))
	if err == nil || !strings.Contains(err.Error(), "instance "+id+"-writer is not gone after 100ms (database.aurora.wait_timeout): sweep again to keep waiting") {
		t.Fatalf("Remove = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("the wait took %v", time.Since(start))
	}
}

func TestRenew_MovesTheExpiryOfClusterAndWriterAndNothingElse(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	k := env.Key{Repo: "acme/shop", PR: 20}
	id := up(t, w, "prenv", k)
	cluster, writer := clusterTags(t, w, id), instanceTags(t, w, id+"-writer")
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.FixedZone("CEST", 2*3600))
	if err := c.Renew(context.Background(), k, at); err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]map[string]string{"cluster": {cluster, clusterTags(t, w, id)}, "writer": {writer, instanceTags(t, w, id+"-writer")}} {
		was, now := pair[0], pair[1]
		if now[env.LabelExpiresAt] != "2031-05-06T05:08:09Z" {
			t.Errorf("the %s expires at %q", name, now[env.LabelExpiresAt])
		}
		if len(now) != len(was) {
			t.Errorf("the %s's tags were %v, now %v", name, was, now)
		}
		for key, v := range was {
			if key != env.LabelExpiresAt && now[key] != v {
				t.Errorf("the %s's %s changed from %q to %q", name, key, v, now[key])
			}
		}
	}
	// The resources are the record: what Resources reads is the new expiry.
	r := find(t, resources(t, c, env.Query{Owner: "prenv"}), aurora.KindCluster, id)
	if r.Labels[env.LabelExpiresAt] != "2031-05-06T05:08:09Z" {
		t.Errorf("listed expiry %q", r.Labels[env.LabelExpiresAt])
	}

	before := w.emu.Stats().ByAction["AddTagsToResource"]
	if err := c.Renew(context.Background(), env.Key{PR: 404}, at); err != nil {
		t.Errorf("renewing an environment with nothing made: %v", err)
	}
	if w.emu.Stats().ByAction["AddTagsToResource"] != before {
		t.Error("tagged something for an environment with nothing made")
	}
}

func TestRenew_RefusesWhatIsNotOursAndLeavesItUntouched(t *testing.T) {
	cases := []struct {
		name string
		tags func(k env.Key) map[string]string
		want string
	}{
		{"no owner tag", func(env.Key) map[string]string { return map[string]string{"team": "data"} }, "does not carry prenv's owner tag prenv.dev/owner=prenv"},
		{"another installation's", func(env.Key) map[string]string { return ourTags("team-b", ":30") }, "does not carry prenv's owner tag"},
		{"ours, another environment's", func(env.Key) map[string]string { return ourTags("prenv", "acme/other:30") }, `prenv.dev/env tag is "acme/other:30", not environment #30's ":30"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
			c := w.cloner("prenv")
			k := env.Key{PR: 30}
			id := c.ClusterID(k)
			restore(t, w, id, tc.tags(k))
			was := clusterTags(t, w, id)
			err := c.Renew(context.Background(), k, time.Now().Add(72*time.Hour))
			if !errors.Is(err, dbclone.ErrNotOurs) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Renew = %v; want ErrNotOurs saying %q", err, tc.want)
			}
			if now := clusterTags(t, w, id); fmt.Sprint(now) != fmt.Sprint(was) || w.emu.Stats().ByAction["AddTagsToResource"] != 0 {
				t.Fatalf("tags were %v, now %v", was, now)
			}
		})
	}
	t.Run("a writer not ours under our cluster", func(t *testing.T) {
		w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
		c := w.cloner("prenv")
		k := env.Key{PR: 31}
		id := c.ClusterID(k)
		restore(t, w, id, ourTags("prenv", ":31"))
		createInstance(t, w, id+"-writer", id, map[string]string{"team": "data"})
		if err := c.Renew(context.Background(), k, time.Now()); !errors.Is(err, dbclone.ErrNotOurs) || !strings.Contains(err.Error(), "instance "+id+"-writer") {
			t.Fatalf("Renew = %v", err)
		}
		if n := w.emu.Stats().ByAction["AddTagsToResource"]; n != 0 {
			t.Fatalf("%d resources tagged: the cluster must not be renewed without its writer", n)
		}
	})
}

// An up on another machine renews what it adopts: a cluster renewed
// between the plan and its removal is in use, and is left.
func TestRemove_WhatWasRenewedSinceThePlanIsLeft(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	k := env.Key{Repo: "acme/shop", PR: 21}
	id := up(t, w, "prenv", k)
	planned := find(t, resources(t, c, env.Query{Owner: "prenv"}), aurora.KindCluster, id)
	if err := c.Renew(context.Background(), k, time.Now().Add(72*time.Hour)); err != nil {
		t.Fatal(err)
	}
	err := c.Remove(context.Background(), env.Query{Owner: "prenv"}, planned)
	if !errors.Is(err, env.ErrNotOurs) || !strings.Contains(err.Error(), "renewed since the plan") {
		t.Fatalf("Remove of a renewed cluster = %v; want it refused as renewed since the plan", err)
	}
	if gone(t, w, "cluster", id) || gone(t, w, "instance", id+"-writer") {
		t.Fatal("the renewed cluster or its writer was deleted")
	}
}
