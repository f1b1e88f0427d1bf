package rdsemu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/rdsemu"
)

// clock is an emulator's clock that a test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 3, 14, 2, 7, 30, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func snapshots(t *testing.T, c *rds.Client, in *rds.DescribeDBClusterSnapshotsInput) []types.DBClusterSnapshot {
	t.Helper()
	out, err := c.DescribeDBClusterSnapshots(context.Background(), in)
	if err != nil {
		t.Fatalf("DescribeDBClusterSnapshots: %v", err)
	}
	return out.DBClusterSnapshots
}

func ids(ss []types.DBClusterSnapshot) string {
	var out []string
	for _, s := range ss {
		out = append(out, aws.ToString(s.DBClusterSnapshotIdentifier))
	}
	return strings.Join(out, " ")
}

func TestSnapshots_AutomatedOnesAreListedByClusterAndTypeAndBecomeAvailable(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, emu := client(t, rdsemu.Options{Sources: []string{"production", "other"}, SnapshotCreate: 10 * time.Minute, Now: clk.Now})
	if err := emu.TakeSnapshot(ctx, "production", "", true); err != nil {
		t.Fatal(err)
	}
	first := "rds:production-2025-03-14-02-07" // as RDS names it, from the clock
	if _, err := c.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{DBClusterIdentifier: aws.String("production"),
		DBClusterSnapshotIdentifier: aws.String("before-migration")}); err != nil {
		t.Fatal(err)
	}
	if err := emu.TakeSnapshot(ctx, "other", "", true); err != nil {
		t.Fatal(err)
	}
	auto := &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("production"), SnapshotType: aws.String("automated")}
	got := snapshots(t, c, auto)
	if len(got) != 1 {
		t.Fatalf("production's automated snapshots: %s", ids(got))
	}
	s := got[0]
	if aws.ToString(s.Status) != "creating" || aws.ToInt32(s.PercentProgress) != 0 || aws.ToString(s.SnapshotType) != "automated" ||
		!aws.ToTime(s.SnapshotCreateTime).Equal(clk.Now()) || aws.ToString(s.DBClusterIdentifier) != "production" ||
		aws.ToString(s.Engine) != "aurora-postgresql" || aws.ToString(s.EngineVersion) != "16.4" || aws.ToString(s.MasterUsername) != "postgres" ||
		aws.ToString(s.DBClusterSnapshotArn) != "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:rds:production-2025-03-14-02-07" ||
		aws.ToInt32(s.AllocatedStorage) < 1 {
		t.Fatalf("a new automated snapshot: %+v", s)
	}
	clk.add(5 * time.Minute)
	if s := snapshots(t, c, auto)[0]; aws.ToString(s.Status) != "creating" || aws.ToInt32(s.PercentProgress) != 50 {
		t.Fatalf("half way: %s %d%%", aws.ToString(s.Status), aws.ToInt32(s.PercentProgress))
	}
	clk.add(5 * time.Minute)
	if s := snapshots(t, c, auto)[0]; aws.ToString(s.Status) != "available" || aws.ToInt32(s.PercentProgress) != 100 {
		t.Fatalf("after SnapshotCreate: %s %d%%", aws.ToString(s.Status), aws.ToInt32(s.PercentProgress))
	}
	if got := ids(snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("production")})); got != "before-migration rds:production-2025-03-14-02-07" {
		t.Fatalf("production's snapshots of every type: %s", got)
	}
	if got := ids(snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{SnapshotType: aws.String("manual")})); got != "before-migration" {
		t.Fatalf("the manual snapshots: %s", got)
	}
	if got := ids(snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{Filters: []types.Filter{
		{Name: aws.String("db-cluster-id"), Values: []string{"arn:aws:rds:us-east-1:123456789012:cluster:other"}}}})); got != "rds:other-2025-03-14-02-07" {
		t.Fatalf("filtered by the cluster's ARN: %s", got)
	}
	if got := snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("nothing")}); len(got) != 0 {
		t.Fatalf("the snapshots of a cluster that does not exist: %s", ids(got))
	}
	// By name: an automated snapshot takes SnapshotType automated, as the
	// API reference says.
	named := &rds.DescribeDBClusterSnapshotsInput{DBClusterSnapshotIdentifier: aws.String(first)}
	var nf *types.DBClusterSnapshotNotFoundFault
	if _, err := c.DescribeDBClusterSnapshots(ctx, named); !errors.As(err, &nf) {
		t.Fatalf("an automated snapshot by name without SnapshotType = %v, want DBClusterSnapshotNotFoundFault", err)
	}
	named.SnapshotType = aws.String("automated")
	if got := ids(snapshots(t, c, named)); got != first {
		t.Fatalf("by name with SnapshotType automated: %s", got)
	}
	for name, in := range map[string]*rds.DescribeDBClusterSnapshotsInput{
		"a name that does not exist": {DBClusterSnapshotIdentifier: aws.String("nope")},
		"an ARN of another account":  {DBClusterSnapshotIdentifier: aws.String("arn:aws:rds:us-east-1:999999999999:cluster-snapshot:before-migration")},
	} {
		if _, err := c.DescribeDBClusterSnapshots(ctx, in); !errors.As(err, &nf) {
			t.Errorf("%s = %v, want DBClusterSnapshotNotFoundFault", name, err)
		}
	}
	for name, in := range map[string]*rds.DescribeDBClusterSnapshotsInput{
		"a cluster and a snapshot":   {DBClusterIdentifier: aws.String("production"), DBClusterSnapshotIdentifier: aws.String("before-migration")},
		"an unknown snapshot type":   {SnapshotType: aws.String("nightly")},
		"an unknown filter":          {Filters: []types.Filter{{Name: aws.String("status"), Values: []string{"available"}}}},
		"a page smaller than 20":     {MaxRecords: aws.Int32(5)},
		"a marker made up by caller": {Marker: aws.String("not a marker!")},
	} {
		if _, err := c.DescribeDBClusterSnapshots(ctx, in); code(err) != "InvalidParameterCombination" && code(err) != "InvalidParameterValue" {
			t.Errorf("%s = %v, want a refusal", name, err)
		}
	}
}

func TestSnapshots_PagesNeitherRepeatNorSkip(t *testing.T) {
	ctx := context.Background()
	c, emu := client(t, rdsemu.Options{Sources: []string{"production"}})
	for i := range 45 {
		if err := emu.TakeSnapshot(ctx, "production", fmt.Sprintf("rds:production-2025-01-%02d-03-00", i+1), true); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	in := &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("production"), SnapshotType: aws.String("automated"), MaxRecords: aws.Int32(20)}
	pages := 0
	for p := rds.NewDescribeDBClusterSnapshotsPaginator(c, in); p.HasMorePages(); pages++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.DBClusterSnapshots {
			seen[aws.ToString(s.DBClusterSnapshotIdentifier)]++
		}
	}
	if pages != 3 || len(seen) != 45 {
		t.Fatalf("%d pages, %d snapshots; want 3 pages of the 45", pages, len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	if emu.Stats().ByAction["DescribeDBClusterSnapshots"] != 3 {
		t.Errorf("stats: %v", emu.Stats().ByAction)
	}
}

func TestRestoreDBClusterFromSnapshot_MakesANewClusterOfTheSnapshot(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, emu := client(t, rdsemu.Options{Sources: []string{"production"}, ClusterCreate: 4 * time.Minute, Now: clk.Now})
	snap := "rds:production-2025-03-14-02-07"
	if err := emu.TakeSnapshot(ctx, "production", "", true); err != nil {
		t.Fatal(err)
	}
	desc := snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{DBClusterSnapshotIdentifier: aws.String(snap), SnapshotType: aws.String("automated")})
	out, err := c.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{
		DBClusterIdentifier: aws.String("prenv-golden-1"), SnapshotIdentifier: desc[0].DBClusterSnapshotArn, Engine: aws.String("aurora-postgresql"),
		VpcSecurityGroupIds: []string{"sg-1"}, DBSubnetGroupName: aws.String("previews"), DBClusterParameterGroupName: aws.String("prenv-pg16"),
		DeletionProtection: aws.Bool(true), Tags: []types.Tag{{Key: aws.String("prenv.dev/golden-build"), Value: aws.String("1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := out.DBCluster
	if aws.ToString(cl.Status) != "creating" || aws.ToString(cl.MasterUsername) != "postgres" || aws.ToString(cl.EngineVersion) != "16.4" ||
		len(cl.VpcSecurityGroups) != 1 || aws.ToString(cl.VpcSecurityGroups[0].VpcSecurityGroupId) != "sg-1" || aws.ToString(cl.DBSubnetGroup) != "previews" ||
		aws.ToString(cl.DBClusterParameterGroup) != "prenv-pg16" || !aws.ToBool(cl.DeletionProtection) || len(cl.TagList) != 1 ||
		cl.CloneGroupId != nil || len(cl.DBClusterMembers) != 0 || cl.Endpoint != nil {
		t.Fatalf("restored from the snapshot's ARN: %+v", cl)
	}
	clk.add(4 * time.Minute)
	d, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("prenv-golden-1")})
	if err != nil || aws.ToString(d.DBClusters[0].Status) != "available" || aws.ToString(d.DBClusters[0].Endpoint) == "" {
		t.Fatalf("after ClusterCreate: %+v %v", d, err)
	}
	// By name, with a newer engine version and RDS's defaults for what is
	// left out.
	out, err = c.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{
		DBClusterIdentifier: aws.String("prenv-golden-2"), SnapshotIdentifier: aws.String(snap), Engine: aws.String("aurora-postgresql"), EngineVersion: aws.String("16.6")})
	if err != nil || aws.ToString(out.DBCluster.EngineVersion) != "16.6" || aws.ToString(out.DBCluster.VpcSecurityGroups[0].VpcSecurityGroupId) != "sg-default0" ||
		aws.ToString(out.DBCluster.DBClusterParameterGroup) != "default.aurora-postgresql16" || aws.ToBool(out.DBCluster.DeletionProtection) {
		t.Fatalf("restored by name: %+v %v", out, err)
	}
	// A cluster restored from a snapshot is a clone source like any other:
	// its first clone makes a clone group.
	clk.add(4 * time.Minute)
	clone, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("prenv-pr-1"),
		SourceDBClusterIdentifier: aws.String("prenv-golden-2"), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)})
	if err != nil || aws.ToString(clone.DBCluster.CloneGroupId) == "" {
		t.Fatalf("a clone of the restored cluster: %+v %v", clone, err)
	}
	if n := emu.Stats().ByAction["RestoreDBClusterFromSnapshot"]; n != 2 {
		t.Errorf("stats count %d RestoreDBClusterFromSnapshot, want 2", n)
	}
}

func TestRestoreDBClusterFromSnapshot_RefusesWhatRDSRefuses(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	c, emu := client(t, rdsemu.Options{Sources: []string{"production", "taken"}, SnapshotCreate: time.Hour, ClusterQuota: 3, Now: clk.Now})
	ready, creating := "rds:production-2025-03-14-02-07", "rds:production-2025-03-14-03-07"
	if err := emu.TakeSnapshot(ctx, "production", ready, true); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Hour)
	if err := emu.TakeSnapshot(ctx, "production", "", true); err != nil {
		t.Fatal(err)
	}
	restore := func(mod func(*rds.RestoreDBClusterFromSnapshotInput)) error {
		in := &rds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String("golden"), SnapshotIdentifier: aws.String(ready), Engine: aws.String("aurora-postgresql")}
		mod(in)
		_, err := c.RestoreDBClusterFromSnapshot(ctx, in)
		return err
	}
	for _, tc := range []struct {
		name, code string
		mod        func(*rds.RestoreDBClusterFromSnapshotInput)
	}{
		{"a snapshot that does not exist", "DBClusterSnapshotNotFoundFault", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.SnapshotIdentifier = aws.String("rds:nope") }},
		{"the ARN of another region's", "DBClusterSnapshotNotFoundFault", func(in *rds.RestoreDBClusterFromSnapshotInput) {
			in.SnapshotIdentifier = aws.String("arn:aws:rds:eu-west-1:123456789012:cluster-snapshot:" + ready)
		}},
		{"a snapshot still creating", "InvalidDBClusterSnapshotStateFault", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.SnapshotIdentifier = aws.String(creating) }},
		{"a cluster that exists", "DBClusterAlreadyExistsFault", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.DBClusterIdentifier = aws.String("taken") }},
		{"no engine", "MissingParameter", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.Engine = aws.String("") }},
		{"another engine", "InvalidParameterCombination", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.Engine = aws.String("aurora-mysql") }},
		{"an older engine version", "InvalidParameterCombination", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.EngineVersion = aws.String("15.8") }},
		{"an identifier that is not one", "InvalidParameterValue", func(in *rds.RestoreDBClusterFromSnapshotInput) { in.DBClusterIdentifier = aws.String("golden--1") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := restore(tc.mod); code(err) != tc.code {
				t.Fatalf("= %v, want %s", err, tc.code)
			}
		})
	}
	if err := restore(func(*rds.RestoreDBClusterFromSnapshotInput) {}); err != nil {
		t.Fatal(err)
	}
	var quota *types.DBClusterQuotaExceededFault
	if err := restore(func(in *rds.RestoreDBClusterFromSnapshotInput) { in.DBClusterIdentifier = aws.String("golden-2") }); !errors.As(err, &quota) {
		t.Fatalf("over the quota = %v", err)
	}
	if got := strings.Join(clusterIDs(t, c), " "); got != "golden production taken" {
		t.Fatalf("the refusals made clusters: %s", got)
	}
	// What the SDK checks before sending, the emulator checks too.
	srv := httptest.NewServer(emu)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(url.Values{"Action": {"RestoreDBClusterFromSnapshot"}, "Version": {rdsemu.APIVersion},
		"DBClusterIdentifier": {"x"}, "SnapshotIdentifier": {ready}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a restore without Engine: %s", resp.Status)
	}
}

func clusterIDs(t *testing.T, c *rds.Client) []string {
	t.Helper()
	out, err := c.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cl := range out.DBClusters {
		ids = append(ids, aws.ToString(cl.DBClusterIdentifier))
	}
	return ids
}

func TestSnapshots_ManualOnesStayAfterTheirClusterAndAutomatedOnesGoWithIt(t *testing.T) {
	ctx := context.Background()
	c, emu := client(t, rdsemu.Options{Sources: []string{"production"}})
	if _, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("staging"),
		SourceDBClusterIdentifier: aws.String("production"), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	auto := "rds:staging-nightly"
	if err := emu.TakeSnapshot(ctx, "staging", auto, true); err != nil {
		t.Fatal(err)
	}
	create := func(cluster, id string) error {
		_, err := c.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{DBClusterIdentifier: aws.String(cluster), DBClusterSnapshotIdentifier: aws.String(id),
			Tags: []types.Tag{{Key: aws.String("why"), Value: aws.String("test")}}})
		return err
	}
	if err := create("staging", "kept"); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ cluster, id, code string }{
		"a name taken":                  {"staging", "kept", "DBClusterSnapshotAlreadyExistsFault"},
		"a cluster that does not exist": {"nope", "x", "DBClusterNotFoundFault"},
		"a name that is not one":        {"staging", "rds:mine", "InvalidParameterValue"},
	} {
		if err := create(tc.cluster, tc.id); code(err) != tc.code {
			t.Errorf("a snapshot of %s: %v, want %s", name, err, tc.code)
		}
	}
	del := func(id string) error {
		_, err := c.DeleteDBClusterSnapshot(ctx, &rds.DeleteDBClusterSnapshotInput{DBClusterSnapshotIdentifier: aws.String(id)})
		return err
	}
	if err := del(auto); code(err) != "InvalidDBClusterSnapshotStateFault" {
		t.Errorf("delete an automated snapshot = %v, want InvalidDBClusterSnapshotStateFault", err)
	}
	if err := del("nope"); code(err) != "DBClusterSnapshotNotFoundFault" {
		t.Errorf("delete a snapshot that does not exist = %v", err)
	}
	arn := "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:kept"
	tags, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String(arn)})
	if err != nil || len(tags.TagList) != 1 || aws.ToString(tags.TagList[0].Value) != "test" {
		t.Fatalf("the tags of a snapshot: %+v %v", tags, err)
	}
	// The final snapshot is made; the automated one goes with the cluster.
	if _, err := c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("staging"), SkipFinalSnapshot: aws.Bool(true),
		FinalDBSnapshotIdentifier: aws.String("final")}); code(err) != "InvalidParameterCombination" {
		t.Fatalf("a final snapshot and SkipFinalSnapshot = %v", err)
	}
	if _, err := c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("staging"), FinalDBSnapshotIdentifier: aws.String("final")}); err != nil {
		t.Fatal(err)
	}
	if got := ids(snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("staging")})); got != "final kept" {
		t.Fatalf("the snapshots of the deleted cluster: %s, want its manual ones", got)
	}
	if err := del("kept"); err != nil {
		t.Fatal(err)
	}
	if got := ids(snapshots(t, c, &rds.DescribeDBClusterSnapshotsInput{})); got != "final" {
		t.Fatalf("after DeleteDBClusterSnapshot: %s", got)
	}
	if _, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String(arn)}); code(err) != "DBClusterSnapshotNotFoundFault" {
		t.Fatalf("the tags of a deleted snapshot: %v", err)
	}
	st := emu.Stats().ByAction
	if st["CreateDBClusterSnapshot"] != 4 || st["DeleteDBClusterSnapshot"] != 3 {
		t.Errorf("stats: %v", st)
	}
}

func TestDeleteDBCluster_OfACloneSourceLeavesItsClones(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"production"}})
	for _, id := range []string{"golden-1", "pr-1"} {
		src := map[string]string{"golden-1": "production", "pr-1": "golden-1"}[id]
		if _, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(id),
			SourceDBClusterIdentifier: aws.String(src), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("golden-1"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatalf("delete the source of a clone: %v", err)
	}
	d, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("pr-1")})
	if err != nil || aws.ToString(d.DBClusters[0].Status) != "available" {
		t.Fatalf("the clone after its source went: %+v %v", d, err)
	}
	if got := strings.Join(clusterIDs(t, c), " "); got != "pr-1 production" {
		t.Fatalf("clusters: %s", got)
	}
}

func TestHooks_NeedWhatTheyWork(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	_, emu := client(t, rdsemu.Options{Sources: []string{"production"}, ClusterCreate: time.Minute, Now: clk.Now})
	if err := emu.CreateSource(ctx, "prod", nil); !errors.Is(err, rdsemu.ErrNoBackend) {
		t.Errorf("CreateSource without a backend = %v", err)
	}
	if err := emu.TakeSnapshot(ctx, "nope", "", true); err == nil || !strings.Contains(err.Error(), "DBClusterNotFoundFault") {
		t.Errorf("a snapshot of nothing = %v", err)
	}
	if err := emu.TakeSnapshot(ctx, "production", "", true); err != nil {
		t.Fatal(err)
	}
	if err := emu.TakeSnapshot(ctx, "production", "", true); err == nil || !strings.Contains(err.Error(), "DBClusterSnapshotAlreadyExistsFault") {
		t.Errorf("the same automated snapshot twice in a minute = %v", err)
	}
}
