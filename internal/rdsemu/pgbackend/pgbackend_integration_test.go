package pgbackend_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/rdsemu/pgbackend"
	"github.com/prenv/prenv/internal/testenv"
)

// world is the emulator backed by real PostgreSQL servers, whose golden
// data is a table of 500 people, and the real SDK pointed at it.
type world struct {
	api  *rds.Client
	emu  *rdsemu.Server
	back *pgbackend.Backend
}

func newWorld(t *testing.T) *world {
	t.Helper()
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	first, last := testenv.PortRange(t, 8)
	b, err := pgbackend.New(home, fmt.Sprintf("%d-%d", first, last), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close the backend: %v", err)
		}
	})
	emu := rdsemu.New(rdsemu.Options{Sources: []string{"golden"}, Backend: b})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	return &world{api: api, emu: emu, back: b}
}

// clone makes cluster id a copy-on-write clone of source, as prenv does.
func (w *world) clone(t *testing.T, id, source string) *types.DBCluster {
	t.Helper()
	out, err := w.api.RestoreDBClusterToPointInTime(context.Background(), &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(id),
		SourceDBClusterIdentifier: aws.String(source), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)})
	if err != nil {
		t.Fatalf("clone %s as %s: %v", source, id, err)
	}
	return out.DBCluster
}

// connect signs in to the application's database of cluster id as its
// master user, the way prenv's cloner does: a password of its own set with
// ModifyDBCluster, the endpoint and user from DescribeDBClusters.
func (w *world) connect(t *testing.T, id string) *pgx.Conn {
	t.Helper()
	pw := "pw-of-" + id
	if _, err := w.api.ModifyDBCluster(context.Background(), &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String(id),
		MasterUserPassword: aws.String(pw), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatalf("set the master password of %s: %v", id, err)
	}
	return w.connectWith(t, id, pw)
}

func (w *world) endpoint(t *testing.T, id, password string) rdsemu.Endpoint {
	t.Helper()
	d, err := w.api.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	cl := d.DBClusters[0]
	if aws.ToString(cl.Status) != "available" {
		t.Fatalf("cluster %s is %s", id, aws.ToString(cl.Status))
	}
	return rdsemu.Endpoint{Host: aws.ToString(cl.Endpoint), Port: int(aws.ToInt32(cl.Port)), User: aws.ToString(cl.MasterUsername), Password: password}
}

func (w *world) connectWith(t *testing.T, id, password string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.endpoint(t, id, password).URL("app"))
	if err != nil {
		t.Fatalf("connect to %s: %v", id, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql ...string) {
	t.Helper()
	for _, q := range sql {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func count(t *testing.T, conn *pgx.Conn, q string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestBackend_ACloneStartsWithItsSourcesDataAsItIsThenAndGoesItsOwnWay(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := w.emu.CreateSource(ctx, "production", nil); err != nil {
		t.Fatal(err)
	}
	pconn := w.connect(t, "production")
	// Production changes between two nightly builds.
	exec(t, pconn, "ALTER TABLE people ADD COLUMN plan text NOT NULL DEFAULT 'free'", "UPDATE people SET plan = 'pro' WHERE id <= 10",
		"INSERT INTO people (name, email) VALUES ('Ada', 'ada@example.test')")
	cl := w.clone(t, "staging", "production")
	src, err := w.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("production")})
	if err != nil || aws.ToString(cl.CloneGroupId) == "" || aws.ToString(cl.CloneGroupId) != aws.ToString(src.DBClusters[0].CloneGroupId) {
		t.Fatalf("the clone's group %v, its source's %+v %v", cl.CloneGroupId, src, err)
	}
	if aws.ToString(cl.MasterUsername) != aws.ToString(src.DBClusters[0].MasterUsername) {
		t.Fatalf("the clone's master user %q, its source's %q", aws.ToString(cl.MasterUsername), aws.ToString(src.DBClusters[0].MasterUsername))
	}
	sconn := w.connect(t, "staging")
	if n := count(t, sconn, "SELECT count(*) FROM people WHERE plan = 'pro'"); n != 10 {
		t.Fatalf("the clone has %d pro people, production had 10 when it was cloned", n)
	}
	if n := count(t, sconn, "SELECT count(*) FROM people WHERE name = 'Ada'"); n != 1 {
		t.Fatalf("the clone has %d rows production wrote before the clone", n)
	}
	// From now on each goes its own way.
	exec(t, pconn, "INSERT INTO people (name, email) VALUES ('Grace', 'grace@example.test')")
	exec(t, sconn, "DELETE FROM people WHERE id = 1")
	if n := count(t, sconn, "SELECT count(*) FROM people WHERE name = 'Grace'"); n != 0 {
		t.Fatal("the clone sees a row production wrote after the clone")
	}
	if n := count(t, pconn, "SELECT count(*) FROM people WHERE id = 1"); n != 1 {
		t.Fatal("production lost a row the clone deleted")
	}
	// The clone's new password is its own: production's still works.
	w.connectWith(t, "production", "pw-of-production")
}

func TestBackend_ARestoreHasTheSnapshotsDataAndPasswordNotLaterOnes(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := w.emu.CreateSource(ctx, "production", nil); err != nil {
		t.Fatal(err)
	}
	pconn := w.connect(t, "production") // its password: pw-of-production
	exec(t, pconn, "INSERT INTO people (name, email) VALUES ('before the snapshot', 'b@example.test')")
	if err := w.emu.TakeSnapshot(ctx, "production", "rds:production-2025-03-12-02-00", true); err != nil {
		t.Fatal(err)
	}
	exec(t, pconn, "INSERT INTO people (name, email) VALUES ('after the snapshot', 'a@example.test')")
	if _, err := w.api.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("production"),
		MasterUserPassword: aws.String("rotated-after-the-snapshot"), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	// The next night's snapshot: the newest by SnapshotCreateTime.
	if err := w.emu.TakeSnapshot(ctx, "production", "rds:production-2025-03-13-02-00", true); err != nil {
		t.Fatal(err)
	}
	out, err := w.api.DescribeDBClusterSnapshots(ctx, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("production"), SnapshotType: aws.String("automated")})
	if err != nil || len(out.DBClusterSnapshots) != 2 {
		t.Fatalf("production's automated snapshots: %+v %v", out, err)
	}
	ss := out.DBClusterSnapshots
	sort.Slice(ss, func(i, j int) bool {
		return aws.ToTime(ss[i].SnapshotCreateTime).Before(aws.ToTime(ss[j].SnapshotCreateTime))
	})
	newest := ss[len(ss)-1]
	if aws.ToString(newest.DBClusterSnapshotIdentifier) != "rds:production-2025-03-13-02-00" || aws.ToString(newest.Status) != "available" {
		t.Fatalf("the newest snapshot: %+v", newest)
	}
	// The first night's snapshot is restored.
	first := ss[0]
	r, err := w.api.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String("golden-1"),
		SnapshotIdentifier: first.DBClusterSnapshotIdentifier, Engine: first.Engine, EngineVersion: first.EngineVersion})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(r.DBCluster.MasterUsername) != aws.ToString(first.MasterUsername) || aws.ToString(first.MasterUsername) != "app" {
		t.Fatalf("the restored cluster's master user %q, the snapshot's %q", aws.ToString(r.DBCluster.MasterUsername), aws.ToString(first.MasterUsername))
	}
	// The password production had when the snapshot was taken.
	if _, err := pgx.Connect(ctx, w.endpoint(t, "golden-1", "rotated-after-the-snapshot").URL("app")); err == nil {
		t.Fatal("the restored cluster takes the password production got after the snapshot")
	}
	rconn := w.connectWith(t, "golden-1", "pw-of-production")
	if n := count(t, rconn, "SELECT count(*) FROM people WHERE name = 'before the snapshot'"); n != 1 {
		t.Fatalf("the restore has %d of the rows written before the snapshot", n)
	}
	if n := count(t, rconn, "SELECT count(*) FROM people WHERE name = 'after the snapshot'"); n != 0 {
		t.Fatal("the restore has a row written after the snapshot")
	}
	// A snapshot deleted leaves what was restored from it.
	if _, err := w.api.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{DBClusterIdentifier: aws.String("golden-1"),
		DBClusterSnapshotIdentifier: aws.String("manual-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String("golden-2"),
		SnapshotIdentifier: aws.String("manual-1"), Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.DeleteDBClusterSnapshot(ctx, &rds.DeleteDBClusterSnapshotInput{DBClusterSnapshotIdentifier: aws.String("manual-1")}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, w.connect(t, "golden-2"), "SELECT count(*) FROM people WHERE name = 'before the snapshot'"); n != 1 {
		t.Fatalf("the restore of a deleted snapshot has %d of its rows", n)
	}
}

func TestBackend_TheNightlyFlowClonesWhatWasMaskedInPlaceAndOutlivesItsSource(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := w.emu.CreateSource(ctx, "production", nil); err != nil {
		t.Fatal(err)
	}
	// The build: a clone of production with a writer, masked in place,
	// promoted by tag.
	gold := w.clone(t, "prenv-golden-1", "production")
	if _, err := w.api.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("prenv-golden-1-writer"),
		DBClusterIdentifier: aws.String("prenv-golden-1"), DBInstanceClass: aws.String("db.t4g.medium"), Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	gconn := w.connect(t, "prenv-golden-1")
	exec(t, gconn, "UPDATE people SET email = 'masked-' || id || '@example.invalid', name = 'Someone'")
	if _, err := w.api.AddTagsToResource(ctx, &rds.AddTagsToResourceInput{ResourceName: gold.DBClusterArn,
		Tags: []types.Tag{{Key: aws.String("prenv.dev/golden"), Value: aws.String("1")}}}); err != nil {
		t.Fatal(err)
	}
	gconn.Close(ctx)
	// A pull request's clone of the promoted generation.
	w.clone(t, "prenv-pr-7", "prenv-golden-1")
	pr := w.connect(t, "prenv-pr-7")
	if n := count(t, pr, "SELECT count(*) FROM people WHERE email LIKE 'masked-%' AND name = 'Someone'"); n != 500 {
		t.Fatalf("the pull request's clone has %d masked people of 500", n)
	}
	if n := count(t, w.connect(t, "production"), "SELECT count(*) FROM people WHERE email LIKE 'masked-%'"); n != 0 {
		t.Fatalf("masking the golden clone masked %d people of production", n)
	}
	// The old generation goes; the clone made from it stays.
	old := w.endpoint(t, "prenv-golden-1", "pw-of-prenv-golden-1")
	if _, err := w.api.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("prenv-golden-1-writer"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String("prenv-golden-1"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatalf("delete the source of a clone: %v", err)
	}
	var nf *types.DBClusterNotFoundFault
	if _, err := w.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("prenv-golden-1")}); !errors.As(err, &nf) {
		t.Fatalf("describe the deleted generation = %v", err)
	}
	if conn, err := pgx.Connect(ctx, old.URL("app")); err == nil {
		conn.Close(ctx)
		t.Fatal("the deleted generation's database still answers")
	}
	if n := count(t, pr, "SELECT count(*) FROM people WHERE email LIKE 'masked-%'"); n != 500 {
		t.Fatalf("the clone's open session sees %d masked people after its source went", n)
	}
	if n := count(t, w.connect(t, "prenv-pr-7"), "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("a new session of the clone sees %d people after its source went", n)
	}
}

func TestBackend_ClustersWithoutADatabaseOfTheirOwnGiveTheGoldenData(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.clone(t, "pr-1", "golden")
	conn := w.connect(t, "pr-1")
	if n := count(t, conn, "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("a clone of a source without a database has %d people, the golden data 500", n)
	}
	exec(t, conn, "DELETE FROM people")
	snap := "rds:golden-nightly"
	if err := w.emu.TakeSnapshot(ctx, "golden", snap, true); err != nil {
		t.Fatal(err)
	}
	if _, err := w.api.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String("restored"),
		SnapshotIdentifier: aws.String(snap), Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, w.connect(t, "restored"), "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("a restore of a snapshot without data has %d people, the golden data 500", n)
	}
	// Close removes every database and snapshot.
	root := w.back.Root()
	endpoint := w.endpoint(t, "restored", "pw-of-restored")
	if err := w.back.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("the backend's directory %s after Close: %v", root, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(cctx, endpoint.URL("app")); err == nil {
		conn.Close(ctx)
		t.Fatal("a database answers after Close")
	}
}

func TestBackend_ManyClonesAtOnceOfOneClusterAllGetItsData(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := w.emu.CreateSource(ctx, "production", nil); err != nil {
		t.Fatal(err)
	}
	exec(t, w.connect(t, "production"), "DELETE FROM people WHERE id > 42")
	// Pull requests at once: their base backups of production take turns,
	// and every clone has a port of its own.
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 1; i <= 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.api.RestoreDBClusterToPointInTime(ctx, &rds.RestoreDBClusterToPointInTimeInput{DBClusterIdentifier: aws.String(fmt.Sprintf("prenv-pr-%d", i)),
				SourceDBClusterIdentifier: aws.String("production"), RestoreType: aws.String("copy-on-write"), UseLatestRestorableTime: aws.Bool(true)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a clone of many at once: %v", err)
		}
	}
	ports := map[int32]string{}
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("prenv-pr-%d", i)
		if n := count(t, w.connect(t, id), "SELECT count(*) FROM people"); n != 42 {
			t.Errorf("%s has %d people, production 42", id, n)
		}
		d, err := w.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		p := aws.ToInt32(d.DBClusters[0].Port)
		if other, ok := ports[p]; ok {
			t.Errorf("%s and %s both on port %d", id, other, p)
		}
		ports[p] = id
	}
}
