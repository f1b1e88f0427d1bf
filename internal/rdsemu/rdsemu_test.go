package rdsemu_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	smithy "github.com/aws/smithy-go"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/testenv"
)

// client is the real SDK pointed at an emulator; attempts 1 shows each
// fault as it is.
func client(t *testing.T, opts rdsemu.Options) (*rds.Client, *rdsemu.Server) {
	t.Helper()
	emu := rdsemu.New(opts)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return rds.New(rds.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}), emu
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestEmulator_CopyOnWriteCloneWithItsWriterThroughTheSDK(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 300 * time.Millisecond, InstanceCreate: 300 * time.Millisecond})
	out, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String("prenv-pr-1"), SourceDBClusterIdentifier: aws.String("golden"),
		RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true),
		VpcSecurityGroupIds: []string{"sg-1", "sg-2"}, DBSubnetGroupName: aws.String("previews"), DBClusterParameterGroupName: aws.String("pg"),
		Tags: []types.Tag{{Key: aws.String("prenv.dev/owner"), Value: aws.String("prenv")}, {Key: aws.String("Environment"), Value: aws.String("PR-1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := out.DBCluster
	if aws.ToString(cl.Status) != "creating" || len(cl.TagList) != 2 || aws.ToString(cl.TagList[1].Value) != "PR-1" ||
		len(cl.VpcSecurityGroups) != 2 || aws.ToString(cl.DBSubnetGroup) != "previews" || !strings.HasPrefix(aws.ToString(cl.DBClusterArn), "arn:aws:rds:us-east-1:") {
		t.Fatalf("restored cluster %+v", cl)
	}
	src, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("golden")})
	if err != nil || aws.ToString(cl.CloneGroupId) == "" || aws.ToString(cl.CloneGroupId) != aws.ToString(src.DBClusters[0].CloneGroupId) {
		t.Fatalf("a copy-on-write clone shares its source's clone group: %v %v", cl.CloneGroupId, err)
	}
	// Without RestoreType the API makes a full copy: no clone group.
	full, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{
		DBClusterIdentifier: aws.String("full"), SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true)})
	if err != nil || full.DBCluster.CloneGroupId != nil {
		t.Fatalf("full copy: %+v %v", full, err)
	}
	inst, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("prenv-pr-1-writer"), DBClusterIdentifier: aws.String("prenv-pr-1"),
		DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql")})
	if err != nil || aws.ToString(inst.DBInstance.DBInstanceStatus) != "creating" {
		t.Fatalf("create instance: %+v %v", inst, err)
	}
	// A cluster with a live instance cannot be deleted.
	_, err = c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("prenv-pr-1"), SkipFinalSnapshot: aws.Bool(true)})
	var state *types.InvalidDBClusterStateFault
	if !errors.As(err, &state) {
		t.Fatalf("delete a cluster with an instance = %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	d, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{Filters: []types.Filter{{Name: aws.String("db-cluster-id"), Values: []string{"prenv-pr-1"}}}})
	if err != nil || len(d.DBClusters) != 1 || aws.ToString(d.DBClusters[0].Status) != "available" || aws.ToString(d.DBClusters[0].Endpoint) == "" ||
		len(d.DBClusters[0].DBClusterMembers) != 1 || !aws.ToBool(d.DBClusters[0].DBClusterMembers[0].IsClusterWriter) {
		t.Fatalf("describe after the delay: %+v %v", d, err)
	}
	di, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{Filters: []types.Filter{{Name: aws.String("db-cluster-id"), Values: []string{"prenv-pr-1"}}}})
	if err != nil || len(di.DBInstances) != 1 || aws.ToString(di.DBInstances[0].DBInstanceStatus) != "available" || di.DBInstances[0].Endpoint == nil {
		t.Fatalf("describe instances: %+v %v", di, err)
	}
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("prenv-pr-1-writer"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("prenv-pr-1-writer")})
	var nf *types.DBInstanceNotFoundFault
	if !errors.As(err, &nf) {
		t.Fatalf("describe a deleted instance = %v", err)
	}
	if _, err := c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("prenv-pr-1"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("prenv-pr-1")})
	var cnf *types.DBClusterNotFoundFault
	if !errors.As(err, &cnf) {
		t.Fatalf("describe a deleted cluster = %v", err)
	}
}

func TestEmulator_FaultsComeBackInAWSShapes(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"golden"}, ClusterQuota: 2})
	restore := func(id string) error {
		_, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(id),
			SourceDBClusterIdentifier: aws.String("golden"), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)})
		return err
	}
	if err := restore("a"); err != nil {
		t.Fatal(err)
	}
	var exists *types.DBClusterAlreadyExistsFault
	if err := restore("a"); !errors.As(err, &exists) {
		t.Fatalf("twice = %v", err)
	}
	var quota *types.DBClusterQuotaExceededFault
	if err := restore("b"); !errors.As(err, &quota) {
		t.Fatalf("over the quota = %v", err)
	}
	for _, bad := range []string{"1abc", "a--b", "a-", strings.Repeat("a", 64)} {
		if err := restore(bad); code(err) != "InvalidParameterValue" {
			t.Fatalf("identifier %q = %v", bad, err)
		}
	}
	_, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("x"),
		SourceDBClusterIdentifier: aws.String("nope"), UseLatestRestorableTime: aws.Bool(true)})
	var nf *types.DBClusterNotFoundFault
	if !errors.As(err, &nf) {
		t.Fatalf("from a missing source = %v", err)
	}
	_, err = c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("w"), DBClusterIdentifier: aws.String("a"),
		DBInstanceClass: aws.String("t4g.medium"), Engine: aws.String("aurora-postgresql")})
	if code(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "t4g.medium") {
		t.Fatalf("a bad instance class = %v", err)
	}
}

func TestEmulator_ThrottlesAtTheConfiguredRateAndRefusesUnsignedRequests(t *testing.T) {
	ctx := context.Background()
	c, emu := client(t, rdsemu.Options{Sources: []string{"golden"}, RateLimit: 5})
	throttled := 0
	for i := 0; i < 20; i++ {
		_, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{})
		if code(err) == "ThrottlingException" {
			throttled++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if throttled < 10 || emu.Stats().Throttled != throttled || emu.Stats().ByAction["DescribeDBClusters"] != 20 {
		t.Fatalf("throttled %d of 20 at 5/s; stats %+v", throttled, emu.Stats())
	}
	srv := httptest.NewServer(rdsemu.New(rdsemu.Options{}))
	defer srv.Close()
	resp, err := http.PostForm(srv.URL, url.Values{"Action": {"DescribeDBClusters"}, "Version": {rdsemu.APIVersion}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an unsigned request: %s", resp.Status)
	}
}

func TestEmulator_TagsOfClustersAndInstances(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"golden"}})
	out, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("a"),
		SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true), Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("shop")}}})
	if err != nil {
		t.Fatal(err)
	}
	arn := out.DBCluster.DBClusterArn
	if _, err := c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: arn,
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("data")}, {Key: aws.String("Ephemeral"), Value: aws.String("true")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: arn})
	if err != nil || len(tags.TagList) != 2 || aws.ToString(tags.TagList[0].Value) != "data" || aws.ToString(tags.TagList[1].Key) != "Ephemeral" {
		t.Fatalf("tags %+v %v", tags, err)
	}
	_, err = c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{{Key: aws.String("key"), Value: aws.String("acme/shop#12")}}})
	if code(err) != "InvalidParameterValue" {
		t.Fatalf("a tag value with '#': %v", err)
	}
	if _, err := c.ListTagsForResource(ctx, &rds.ListTagsForResourceInput{ResourceName: aws.String("arn:aws:rds:us-east-1:123456789012:cluster:nope")}); code(err) != "DBClusterNotFoundFault" {
		t.Fatalf("tags of nothing: %v", err)
	}
}

func TestCommand_ListensWhereToldWithTheSourceClusters(t *testing.T) {
	bin := testenv.Build(t, "./cmd/rdsemu")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--addr", addr, "--source-cluster", "golden", "--source-cluster", "golden-eu", "--instance-create", "1s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	c := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	var out *rds.DescribeDBClustersOutput
	for i := 0; i < 100; i++ {
		if out, err = c.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || len(out.DBClusters) != 2 || aws.ToString(out.DBClusters[1].DBClusterIdentifier) != "golden-eu" || aws.ToString(out.DBClusters[0].Status) != "available" {
		t.Fatalf("describe: %+v %v", out, err)
	}
}

func TestEmulator_PagesNeitherRepeatNorSkipWhenClustersGoBetweenThem(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"golden"}, ClusterQuota: 100})
	want := map[string]bool{"golden": true}
	for i := range 44 {
		id := fmt.Sprintf("c%02d", i)
		if _, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(id),
			SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	seen := map[string]int{}
	in := &rds.DescribeDBClustersInput{MaxRecords: aws.Int32(20)}
	for pages := 0; ; pages++ {
		out, err := c.DescribeDBClusters(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.DBClusters) > 20 {
			t.Fatalf("a page of %d with MaxRecords 20", len(out.DBClusters))
		}
		for _, cl := range out.DBClusters {
			seen[aws.ToString(cl.DBClusterIdentifier)]++
		}
		if pages == 0 {
			// A sweep deletes while it lists: one already seen goes.
			if _, err := c.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("c00"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
		}
		if out.Marker == nil {
			break
		}
		in.Marker = out.Marker
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("cluster %s listed %d times", id, seen[id])
		}
	}
	if _, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{MaxRecords: aws.Int32(5)}); code(err) != "InvalidParameterValue" {
		t.Errorf("MaxRecords 5 = %v, want InvalidParameterValue (20 to 100)", err)
	}
	if _, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{Marker: aws.String("not a marker!")}); code(err) != "InvalidParameterValue" {
		t.Errorf("a made-up marker = %v", err)
	}
}

func TestEmulator_TagsAddedAreWhatDescribeReturnsAndGoneResourcesHaveNone(t *testing.T) {
	ctx := context.Background()
	c, _ := client(t, rdsemu.Options{Sources: []string{"golden"}})
	out, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("a"),
		SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true), Tags: []types.Tag{{Key: aws.String("expires"), Value: aws.String("1")}}})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("a-writer"), DBClusterIdentifier: aws.String("a"),
		DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql"), Tags: []types.Tag{{Key: aws.String("expires"), Value: aws.String("1")}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, arn := range []*string{out.DBCluster.DBClusterArn, inst.DBInstance.DBInstanceArn} {
		if _, err := c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: arn, Tags: []types.Tag{{Key: aws.String("expires"), Value: aws.String("2")}}}); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("a")})
	if err != nil || len(cl.DBClusters[0].TagList) != 1 || aws.ToString(cl.DBClusters[0].TagList[0].Value) != "2" {
		t.Fatalf("cluster tags after AddTagsToResource: %+v %v", cl, err)
	}
	is, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("a-writer")})
	if err != nil || len(is.DBInstances[0].TagList) != 1 || aws.ToString(is.DBInstances[0].TagList[0].Value) != "2" {
		t.Fatalf("instance tags after AddTagsToResource: %+v %v", is, err)
	}
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("a-writer"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: inst.DBInstance.DBInstanceArn, Tags: []types.Tag{{Key: aws.String("x"), Value: aws.String("y")}}})
	var nf *types.DBInstanceNotFoundFault
	if !errors.As(err, &nf) {
		t.Fatalf("tagging a deleted instance = %v, want DBInstanceNotFound", err)
	}
}

func TestEmulator_LoseClusterLeavesItsInstancesPointingAtNothing(t *testing.T) {
	ctx := context.Background()
	c, emu := client(t, rdsemu.Options{Sources: []string{"golden"}})
	if _, err := c.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String("a"),
		SourceDBClusterIdentifier: aws.String("golden"), UseLatestRestorableTime: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("a-writer"), DBClusterIdentifier: aws.String("a"),
		DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	if !emu.LoseCluster("a") || emu.LoseCluster("a") {
		t.Fatal("LoseCluster reports the wrong existence")
	}
	var cnf *types.DBClusterNotFoundFault
	if _, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("a")}); !errors.As(err, &cnf) {
		t.Fatalf("describe the lost cluster = %v", err)
	}
	is, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("a-writer")})
	if err != nil || aws.ToString(is.DBInstances[0].DBClusterIdentifier) != "a" {
		t.Fatalf("the instance of a lost cluster: %+v %v", is, err)
	}
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("a-writer"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatalf("delete the instance of a lost cluster: %v", err)
	}
}
