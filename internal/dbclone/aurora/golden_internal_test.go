package aurora

import (
	"context"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// goldenWorld is an emulator with a source to restore from and a golden
// builder of owner "team" talking to it.
func goldenWorld(t *testing.T, opts rdsemu.Options) (*GoldenBuilder, *rds.Client) {
	t.Helper()
	opts.Sources = []string{"production-db"}
	srv := httptest.NewServer(rdsemu.New(opts))
	t.Cleanup(srv.Close)
	api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""), Retryer: Retryer()})
	c := &Cloner{API: api, Options: Options{Owner: "team", Golden: true, DBName: "app", ReadyCheck: ReadyAPI,
		Poll: 5 * time.Millisecond, WaitTimeout: 10 * time.Second}}
	return &GoldenBuilder{Cloner: c, Snapshots: api, Production: "production-db", Keep: 2}, api
}

// make restores cluster id with tags (and a writer when writer).
func makeCluster(t *testing.T, api *rds.Client, id string, tags map[string]string, writer bool) {
	t.Helper()
	var ts []types.Tag
	for k, v := range tags {
		ts = append(ts, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	ctx := context.Background()
	if _, err := api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(id),
		SourceDBClusterIdentifier: aws.String("production-db"), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true), Tags: ts}); err != nil {
		t.Fatal(err)
	}
	if writer {
		if _, err := api.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id + "-writer"), DBClusterIdentifier: aws.String(id),
			DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String(Engine), Tags: ts}); err != nil {
			t.Fatal(err)
		}
	}
}

func goldenTags(n int, promoted bool, deadline time.Time) map[string]string {
	m := map[string]string{env.LabelOwner: "team", LabelGoldenBuild: strconv.Itoa(n), LabelGeneration: strconv.Itoa(n),
		env.LabelCreatedAt: time.Now().UTC().Format(time.RFC3339), env.LabelExpiresAt: deadline.UTC().Format(time.RFC3339)}
	if promoted {
		m[LabelGolden] = strconv.Itoa(n)
	}
	return m
}

func clusterIDs(t *testing.T, api *rds.Client) []string {
	t.Helper()
	out, err := api.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range out.DBClusters {
		if aws.ToString(c.Status) != "deleting" {
			ids = append(ids, aws.ToString(c.DBClusterIdentifier))
		}
	}
	sort.Strings(ids)
	return ids
}

// What a killed build left is deleted once its deadline has passed; a
// build within its time, a promoted generation and a cluster that merely
// carries copied golden tags under another name are left alone.
func TestGoldenBuilder_DiscardsOnlyTimedOutUnpromotedBuilds(t *testing.T) {
	b, api := goldenWorld(t, rdsemu.Options{})
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	makeCluster(t, api, "prenv-golden-1", goldenTags(1, true, past), true)    // promoted long ago
	makeCluster(t, api, "prenv-golden-2", goldenTags(2, false, future), true) // being built
	makeCluster(t, api, "prenv-golden-3", goldenTags(3, false, past), true)   // its builder was killed
	makeCluster(t, api, "analytics-copy", goldenTags(4, false, past), false)  // tags copied onto another cluster
	gens, err := b.Cloner.GoldenGenerations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 3 {
		t.Fatalf("generations %+v: want the three named as generations", gens)
	}
	b.discardInterrupted(context.Background(), gens)
	if got := clusterIDs(t, api); len(got) != 4 || got[0] != "analytics-copy" || got[1] != "prenv-golden-1" || got[2] != "prenv-golden-2" || got[3] != "production-db" {
		t.Fatalf("clusters left %v: want only prenv-golden-3 deleted", got)
	}
}

// golden.keep retires the oldest promoted generations, but not one an
// environment's clone is being created from right now, and the deletion
// of a failed build refuses a cluster promoted meanwhile.
func TestGoldenBuilder_RetiresOldGenerationsButNotOneBeingClonedFrom(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b, api := goldenWorld(t, rdsemu.Options{ClusterCreate: time.Hour, Now: clock})
	future := time.Now().Add(time.Hour)
	for n := 1; n <= 4; n++ {
		makeCluster(t, api, b.Cloner.GoldenID(n), goldenTags(n, true, future), true)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour) // the generations are available
	mu.Unlock()
	// An environment's clone of generation 1 is still creating.
	makeCluster(t, api, "prenv-pr-7", map[string]string{env.LabelOwner: "team", LabelGeneration: "1"}, false)
	b.retire(context.Background(), 4)
	got := clusterIDs(t, api)
	want := []string{"prenv-golden-1", "prenv-golden-3", "prenv-golden-4", "prenv-pr-7", "production-db"}
	if len(got) != len(want) {
		t.Fatalf("clusters left %v, want %v: generation 2 retired, 1 kept while cloned from", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("clusters left %v, want %v", got, want)
		}
	}
	if err := b.deleteGeneration(context.Background(), "prenv-golden-4", false); err == nil {
		t.Fatal("a promoted generation was deleted as a failed build")
	}
	if got := clusterIDs(t, api); len(got) != len(want) {
		t.Fatalf("the refused deletion changed the clusters: %v", got)
	}
}
