package aurora_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// world is an emulator and the real SDK pointed at it.
type world struct {
	emu      *rdsemu.Server
	api      *rds.Client
	home     string
	requests atomic.Int64
}

func newWorld(t *testing.T, opts rdsemu.Options) *world {
	w := &world{emu: rdsemu.New(opts), home: t.TempDir()}
	srv := httptest.NewServer(w.emu)
	t.Cleanup(srv.Close)
	w.api = rds.New(rds.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		Retryer:     aurora.Retryer(),
		HTTPClient:  &http.Client{Transport: counting{&w.requests, http.DefaultTransport}},
	})
	return w
}

type counting struct {
	n  *atomic.Int64
	rt http.RoundTripper
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	// The SDK closes a request's body as soon as the response arrives;
	// against a server on the same machine that races the transport's
	// write loop, which then closes the connection under the response
	// being read and the SDK retries: a request count would count the
	// race. A body read up front has nothing left to race.
	if r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return c.rt.RoundTrip(r)
}

func (w *world) cloner(owner string) *aurora.Cloner {
	return &aurora.Cloner{API: w.api, Home: w.home, Options: aurora.Options{
		Owner: owner, Source: "golden", SecurityGroups: []string{"sg-0123"}, SubnetGroup: "previews", DBName: "app",
		ReadyCheck: aurora.ReadyAPI, Poll: 5 * time.Millisecond, WaitTimeout: 10 * time.Second,
	}}
}

func TestCloner_Conformance(t *testing.T) {
	var w *world
	dbclonetest.Run(t, dbclonetest.Harness{
		New: func(t *testing.T, owner string) dbclone.Cloner {
			if owner == "suite" {
				w = newWorld(t, rdsemu.Options{})
			}
			return w.cloner(owner)
		},
		Golden: func(t *testing.T, c dbclone.Cloner) {
			w.emu.AddSource("golden", map[string]string{aurora.LabelGeneration: "3"})
		},
		Foreign: func(t *testing.T, c dbclone.Cloner, k env.Key) {
			id := c.(*aurora.Cloner).ClusterID(k)
			if _, err := w.api.RestoreDBClusterToPointInTime(context.Background(), &rds.RestoreDBClusterToPointInTimeInput{
				DBClusterIdentifier: aws.String(id), SourceDBClusterIdentifier: aws.String("golden"), RestoreType: aws.String("copy-on-write"),
				UseLatestRestorableTime: aws.Bool(true), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}}}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if out, err := w.api.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)}); err != nil || aws.ToString(out.DBClusters[0].Status) != "available" {
					t.Errorf("the foreign cluster %s was touched: %v", id, err)
				}
			})
		},
	})
}

func describe(t *testing.T, w *world, id string) (*types.DBCluster, []types.DBInstance) {
	t.Helper()
	ctx := context.Background()
	out, err := w.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	var nf *types.DBClusterNotFoundFault
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	is, err := w.api.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("db-cluster-id"), Values: []string{id}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &out.DBClusters[0], is.DBInstances
}

func TestClone_IsCopyOnWriteWithAWriterTagsNetworkAndItsOwnPassword(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 50 * time.Millisecond, InstanceCreate: 100 * time.Millisecond})
	c := w.cloner("prenv")
	ctx := context.Background()
	k := env.Key{Repo: "acme/shop", PR: 12}
	req := dbclonetest.Request(k)
	req.Labels = env.Labels("prenv", k, time.Now(), time.Hour)
	db, err := c.Clone(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := c.ClusterID(k)
	if !strings.HasPrefix(id, "prenv-pr-12-acme-shop-") {
		t.Fatalf("cluster id %s", id)
	}
	cl, insts := describe(t, w, id)
	src, _ := describe(t, w, "golden")
	tags := map[string]string{}
	for _, tg := range cl.TagList {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if aws.ToString(cl.CloneGroupId) == "" || aws.ToString(cl.CloneGroupId) != aws.ToString(src.CloneGroupId) {
		t.Fatalf("not a copy-on-write clone of golden: clone group %v vs %v", cl.CloneGroupId, src.CloneGroupId)
	}
	if tags[env.LabelOwner] != "prenv" || tags["Environment"] != "PR-12" || tags[env.LabelEphemeral] != "true" || tags[env.LabelRepo] != "acme/shop" ||
		tags[env.LabelPR] != "12" || tags[env.LabelKey] != "acme/shop:12" || tags[env.LabelExpiresAt] == "" || tags[env.LabelCreatedAt] == "" {
		t.Fatalf("cluster tags %v", tags)
	}
	if len(cl.VpcSecurityGroups) != 1 || aws.ToString(cl.VpcSecurityGroups[0].VpcSecurityGroupId) != "sg-0123" || aws.ToString(cl.DBSubnetGroup) != "previews" {
		t.Fatalf("network: %+v %v", cl.VpcSecurityGroups, cl.DBSubnetGroup)
	}
	if len(insts) != 1 || aws.ToString(insts[0].DBInstanceIdentifier) != id+"-writer" || aws.ToString(insts[0].DBInstanceClass) != "db.t4g.medium" ||
		aws.ToString(insts[0].DBInstanceStatus) != "available" || len(insts[0].TagList) != len(cl.TagList)-2 {
		t.Fatalf("writer: %+v", insts)
	}
	if fp := tags[aurora.LabelPassword]; len(fp) != 16 || strings.Contains(db.Password, fp) {
		t.Fatalf("the cluster's password fingerprint tag is %q: want 16 hex digits that are not part of the password", fp)
	}
	if db.Password == "" || !strings.Contains(db.URL, ":"+db.Password+"@"+aws.ToString(cl.Endpoint)+":5432/app") || db.Key != k || db.Provider != "aurora" {
		t.Fatalf("database %+v", db)
	}
	if !strings.Contains(db.Ready, "rds status available") {
		t.Fatalf("Ready = %q: want the check named", db.Ready)
	}
}

func TestClone_ACrashBetweenClusterAndInstanceIsFinishedByTheNextUp(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	ctx := context.Background()
	k := env.Key{PR: 21}
	// What the crashed run made: the cluster, with our tags, and nothing else.
	if _, err := w.api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String("prenv-pr-21"), SourceDBClusterIdentifier: aws.String("golden"), RestoreType: aws.String("copy-on-write"),
		UseLatestRestorableTime: aws.Bool(true), Tags: []types.Tag{{Key: aws.String(env.LabelOwner), Value: aws.String("prenv")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Clone(ctx, dbclonetest.Request(k)); err != nil {
		t.Fatal(err)
	}
	_, insts := describe(t, w, "prenv-pr-21")
	if len(insts) != 1 || w.emu.Stats().ByAction["RestoreDBClusterToPointInTime"] != 1 {
		t.Fatalf("after the next up: %d instances, %d restores", len(insts), w.emu.Stats().ByAction["RestoreDBClusterToPointInTime"])
	}
}

func TestClone_ACancelledUpIsAdoptedByTheNext(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, InstanceCreate: 300 * time.Millisecond})
	c := w.cloner("prenv")
	k := env.Key{PR: 22}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Clone(ctx, dbclonetest.Request(k)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a cancelled clone = %v", err)
	}
	db, err := c.Clone(context.Background(), dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	st := w.emu.Stats().ByAction
	if st["RestoreDBClusterToPointInTime"] != 1 || st["CreateDBInstance"] != 1 || db.Password == "" {
		t.Fatalf("the second up did not adopt: %v", st)
	}
}

func TestDelete_WhileTheWriterIsStillBeingCreated(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, InstanceCreate: 300 * time.Millisecond, InstanceDelete: 50 * time.Millisecond, ClusterDelete: 50 * time.Millisecond})
	c := w.cloner("prenv")
	k := env.Key{PR: 23}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Clone(ctx, dbclonetest.Request(k)) // interrupted while the writer is creating
	if _, insts := describe(t, w, "prenv-pr-23"); len(insts) != 1 || aws.ToString(insts[0].DBInstanceStatus) != "creating" {
		t.Fatalf("setup: %+v", insts)
	}
	if err := c.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	if cl, _ := describe(t, w, "prenv-pr-23"); cl != nil {
		t.Fatalf("cluster after delete: %v", aws.ToString(cl.Status))
	}
}

func TestClone_UnderHeavyThrottlingCompletesWithBoundedRetries(t *testing.T) {
	// RDS admits 2 requests a second here; a clone needs about 10.
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}, RateLimit: 2})
	c := w.cloner("prenv")
	db, err := c.Clone(context.Background(), dbclonetest.Request(env.Key{PR: 24}))
	if err != nil {
		t.Fatalf("clone under throttling: %v", err)
	}
	st := w.emu.Stats()
	if db.URL == "" || st.Throttled == 0 || st.Requests > 30 {
		t.Fatalf("%d requests, %d throttled: want some throttled and no storm", st.Requests, st.Throttled)
	}
	t.Logf("%d requests, %d throttled", st.Requests, st.Throttled)
}

func TestClone_TheQuotaReachedIsAClearErrorAndLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts rdsemu.Options
	}{
		{"clusters", rdsemu.Options{Sources: []string{"golden"}, ClusterQuota: 1}},
		{"instances", rdsemu.Options{Sources: []string{"golden"}, InstanceQuota: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.opts)
			c := w.cloner("prenv")
			ctx := context.Background()
			if tc.name == "instances" {
				// Another environment holds the only instance.
				if _, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 30})); err != nil {
					t.Fatal(err)
				}
			}
			_, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 31}))
			if !errors.Is(err, dbclone.ErrCapacity) || !strings.Contains(err.Error(), "quota") || !strings.Contains(err.Error(), "prenv ls") {
				t.Fatalf("over the %s quota: %v", tc.name, err)
			}
			if cl, _ := describe(t, w, "prenv-pr-31"); cl != nil {
				t.Fatalf("cluster %s left behind (%s)", aws.ToString(cl.DBClusterIdentifier), aws.ToString(cl.Status))
			}
		})
	}
}

func TestClone_ASameNamedClusterWithoutOurTagsIsRefusedAndUntouched(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	ctx := context.Background()
	if _, err := w.api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String("prenv-pr-40"), SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	before := w.emu.Stats().ByAction
	_, err := c.Clone(ctx, dbclonetest.Request(env.Key{PR: 40}))
	if !errors.Is(err, dbclone.ErrNotOurs) || !strings.Contains(err.Error(), "prenv-pr-40") {
		t.Fatalf("Clone = %v", err)
	}
	if err := c.Delete(ctx, env.Key{PR: 40}); !errors.Is(err, dbclone.ErrNotOurs) {
		t.Fatalf("Delete = %v", err)
	}
	after := w.emu.Stats().ByAction
	for _, a := range []string{"ModifyDBCluster", "DeleteDBCluster", "DeleteDBInstance", "CreateDBInstance"} {
		if after[a] != before[a] {
			t.Fatalf("%s was called on a cluster that is not ours", a)
		}
	}
}

func TestDelete_RefusesDeletionProtection(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	ctx := context.Background()
	k := env.Key{PR: 41}
	if _, err := c.Clone(ctx, dbclonetest.Request(k)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("prenv-pr-41"), DeletionProtection: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, k); err == nil || !strings.Contains(err.Error(), "deletion protection") {
		t.Fatalf("Delete = %v", err)
	}
	if _, insts := describe(t, w, "prenv-pr-41"); len(insts) != 1 {
		t.Fatal("the writer of a protected cluster was deleted")
	}
}

func TestCheck_BadInputIsAClearErrorBeforeAnyChange(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	ctx := context.Background()
	cases := []struct {
		name string
		edit func(c *aurora.Cloner)
		want string
		is   error
	}{
		{"no source cluster", func(c *aurora.Cloner) { c.Options.Source = "" }, "database.aurora.source_cluster is required", aurora.ErrInvalid},
		{"a source cluster that does not exist", func(c *aurora.Cloner) { c.Options.Source = "nightly" }, "source cluster nightly does not exist", dbclone.ErrNoSource},
		{"security groups required but empty", func(c *aurora.Cloner) {
			c.Options.SecurityGroups, c.Options.RequireSecurityGroups = nil, true
		}, "default security group", aurora.ErrInvalid},
		{"an instance class that is not one", func(c *aurora.Cloner) { c.Options.InstanceClass = "t4g.medium" }, "db.t4g.medium", aurora.ErrInvalid},
		{"credentials that cannot be found", func(c *aurora.Cloner) {
			c.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{}, errors.New("failed to refresh cached credentials, no EC2 IMDS role found")
			})
		}, "web identity (AWS_WEB_IDENTITY_TOKEN_FILE", aurora.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := w.cloner("prenv")
			tc.edit(c)
			before := w.emu.Stats().ByAction
			err := c.Check(ctx, env.Key{PR: 50})
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v; want %q", err, tc.want)
			}
			after := w.emu.Stats().ByAction
			if after["RestoreDBClusterToPointInTime"] != before["RestoreDBClusterToPointInTime"] || after["CreateDBInstance"] != before["CreateDBInstance"] {
				t.Fatal("Check created something")
			}
		})
	}
}

func TestClusterID_FollowsRDSIdentifierRulesWhateverTheRepository(t *testing.T) {
	c := &aurora.Cloner{}
	seen := map[string]bool{}
	for _, k := range []env.Key{{PR: 1}, {PR: 999999999}, {Repo: "Acme/Shop", PR: 2}, {Repo: "a/" + strings.Repeat("very-long-name-", 10), PR: 3},
		{Repo: "a/" + strings.Repeat("very-long-name-", 10) + "x", PR: 3}, {Repo: "9lives/--weird__repo--", PR: 4}} {
		id := c.ClusterID(k)
		if !aurora.ValidIdentifier(id) || !aurora.ValidIdentifier(id+"-writer") || seen[id] {
			t.Fatalf("%v: cluster %q (writer %q) breaks RDS's rules or repeats", k, id, id+"-writer")
		}
		seen[id] = true
	}
	if err := (aurora.Options{Source: "golden", Prefix: "Bad_"}).Validate(); err == nil || !strings.Contains(err.Error(), "database.aurora.prefix") {
		t.Fatalf("a bad prefix: %v", err)
	}
}

func TestClone_WithManagedCredentialsRDSKeepsThePassword(t *testing.T) {
	w := newWorld(t, rdsemu.Options{Sources: []string{"golden"}})
	c := w.cloner("prenv")
	c.Options.Credentials = aurora.CredentialsManaged
	k := env.Key{PR: 60}
	db, err := c.Clone(context.Background(), dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := describe(t, w, c.ClusterID(k))
	if cl.MasterUserSecret == nil || db.SecretRef != aws.ToString(cl.MasterUserSecret.SecretArn) || !strings.HasPrefix(db.SecretRef, "arn:aws:secretsmanager:") ||
		db.Password != "" || strings.Contains(db.URL, ":@") {
		t.Fatalf("database %+v, cluster secret %+v", db, cl.MasterUserSecret)
	}
	// Adopting it again does not ask RDS to manage it twice.
	before := w.emu.Stats().ByAction["ModifyDBCluster"]
	if _, err := c.Clone(context.Background(), dbclonetest.Request(k)); err != nil || w.emu.Stats().ByAction["ModifyDBCluster"] != before {
		t.Fatalf("second clone: %v, %d modifications", err, w.emu.Stats().ByAction["ModifyDBCluster"]-before)
	}
}
