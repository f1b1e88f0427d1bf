package rdsemu_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/testenv"
)

func TestCommand_AProductionClusterHasItsOwnDataAndAnAutomatedSnapshot(t *testing.T) {
	ctx := context.Background()
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.PeopleSQL)
	first, last := testenv.PortRange(t, 4)
	bin := testenv.Build(t, "./cmd/rdsemu")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--addr", addr, "--postgres-home", home, "--postgres-ports", fmt.Sprintf("%d-%d", first, last), "--production-cluster", "production")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var out []string
	for ready := false; !ready; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("rdsemu exited before it listened:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
			}
			out = append(out, line)
			ready = strings.Contains(line, "RDS API")
		case <-time.After(time.Minute):
			t.Fatalf("rdsemu did not listen within a minute:\n%s\n%s", strings.Join(out, "\n"), stderr.String())
		}
	}
	if !strings.Contains(out[0], "production clusters: production)") {
		t.Fatalf("rdsemu said:\n%s", strings.Join(out, "\n"))
	}
	c := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	snaps, err := c.DescribeDBClusterSnapshots(ctx, &rds.DescribeDBClusterSnapshotsInput{DBClusterIdentifier: aws.String("production"), SnapshotType: aws.String("automated")})
	if err != nil || len(snaps.DBClusterSnapshots) != 1 || aws.ToString(snaps.DBClusterSnapshots[0].Status) != "available" {
		t.Fatalf("production's automated snapshots: %+v %v", snaps, err)
	}
	if _, err := c.RestoreDBClusterFromSnapshot(ctx, &rds.RestoreDBClusterFromSnapshotInput{DBClusterIdentifier: aws.String("golden-1"),
		SnapshotIdentifier: snaps.DBClusterSnapshots[0].DBClusterSnapshotArn, Engine: aws.String("aurora-postgresql")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("golden-1"), MasterUserPassword: aws.String("golden-password")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("golden-1")})
	if err != nil {
		t.Fatal(err)
	}
	cl := d.DBClusters[0]
	ep := rdsemu.Endpoint{Host: aws.ToString(cl.Endpoint), Port: int(aws.ToInt32(cl.Port)), User: aws.ToString(cl.MasterUsername), Password: "golden-password"}
	if n := testenv.QueryInt(t, ep.URL("app"), "SELECT count(*) FROM people"); n != 500 {
		t.Fatalf("the restore of production's snapshot has %d people, want the golden 500", n)
	}
	// Stopped, it removes every database it made.
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rdsemu after SIGTERM: %v\n%s", err, stderr.String())
	}
	if left, _ := filepath.Glob(filepath.Join(home, "rdsemu-*")); len(left) != 0 {
		t.Fatalf("left after SIGTERM: %v", left)
	}
}
