package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/rdsemu/pgbackend"
	"github.com/prenv/prenv/internal/testenv"
)

// auroraHarness is a harness whose environments get their databases from
// the aurora provider, talking to an RDS emulator whose clusters are real
// PostgreSQL clones of a golden database of 150 customers. The third value
// says where the emulator keeps its clusters' databases.
func auroraHarness(t *testing.T) (*harness, *rds.Client, func() string) {
	h := newHarness(t)
	api, _, root := useAurora(t, h, 150)
	return h, api, root
}

// useAurora points h's environments at the aurora provider and an RDS
// emulator whose clusters are real PostgreSQL clones of a golden database
// of the given number of customers. It returns the SDK's client of the
// emulator, the emulator, and where it keeps its clusters' databases.
func useAurora(t *testing.T, h *harness, customers int) (*rds.Client, *rdsemu.Server, func() string) {
	back := testenv.Home(t)
	testenv.Golden(t, back, testenv.DemoSQL(customers))
	first, last := testenv.PortRange(t, 25) // a cluster each, for up to 25 environments
	b, err := pgbackend.New(back, fmt.Sprintf("%d-%d", first, last), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	emu := rdsemu.New(rdsemu.Options{Sources: []string{"golden"}, Backend: b})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	h.extra = append(h.extra,
		"PRENV_DATABASE_PROVIDER=aurora", "PRENV_DATABASE_AURORA_SOURCE_CLUSTER=golden", "PRENV_DATABASE_AURORA_ENDPOINT="+srv.URL,
		"PRENV_DATABASE_AURORA_REGION=us-east-1", "PRENV_DATABASE_AURORA_REQUIRE_SECURITY_GROUPS=false",
		"PRENV_DATABASE_AURORA_SSLMODE=disable", "PRENV_DATABASE_AURORA_READY_CHECK=sql",
		// The emulator does not check signatures; the SDK needs something to sign with.
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example", "")})
	return api, emu, b.Root
}

func clusters(t *testing.T, api *rds.Client) []string {
	out, err := api.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range out.DBClusters {
		ids = append(ids, aws.ToString(c.DBClusterIdentifier)+"="+aws.ToString(c.Status))
	}
	return ids
}

func TestAurora_UpMigratesTheAppAgainstTheClonedClusterAndDownRemovesIt(t *testing.T) {
	h, api, back := auroraHarness(t)
	c1, c2, _ := h.demoRepo()
	out, errs, code := h.run("up", "--pr", "7", "--sha", c1, "-o", "json")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s%s", code, out, errs)
	}
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.State != "ready" || !strings.HasPrefix(s.Database.URL, "postgres://app:") || !strings.Contains(s.Database.URL, "@127.0.0.1:") ||
		s.Database.Ready != "select 1 as app through the cluster endpoint" || s.Database.Generation != 1 {
		t.Fatalf("up -o json = %+v", s)
	}
	// The app ran its migrations against the cluster's database and serves
	// the golden data.
	code, body := h.get(s.URL, s.Auth.Password)
	if code != 200 || !strings.Contains(body, "150 customers") || !strings.Contains(body, "0002_order_status") {
		t.Fatalf("GET %s: %d\n%s", s.URL, code, body)
	}
	if got := strings.Join(clusters(t, api), " "); !strings.Contains(got, "prenv-pr-7=available") {
		t.Fatalf("clusters: %s", got)
	}
	// The migration was rehearsed on the cluster, through its endpoint.
	rehearsed := func(commit, want string) {
		t.Helper()
		m := h.migrationStatus("7").Migration
		var diff []string
		for _, c := range m.SchemaDiff {
			diff = append(diff, c.Action+" "+c.Kind+" "+c.Object)
		}
		if m.Commit != commit || m.DiffBase != "golden" || m.Seconds <= 0 || strings.Join(diff, ",") != want {
			t.Fatalf("the rehearsal of %s on Aurora: %+v\n diff %s\n want %s", commit, *m, strings.Join(diff, ","), want)
		}
	}
	rehearsed(c1, "added column status,added index orders_ordered_at")
	h.must("up", "--pr", "7", "--sha", c2)
	if st := h.status(7); st.Commit != c2 || st.Database.URL != s.Database.URL {
		t.Fatalf("a new commit got another database: %+v", st)
	}
	rehearsed(c2, "added column status,added index orders_ordered_at,added table reviews")
	for i := 0; i < 2; i++ {
		h.must("down", "--pr", "7")
	}
	if got := strings.Join(clusters(t, api), " "); got != "golden=available" {
		t.Fatalf("clusters after down: %s", got)
	}
	if back() == "" {
		t.Fatal("the emulator made no database for the cluster")
	}
	var left []string
	for _, d := range dirs(t, back()) {
		if strings.HasPrefix(d, "cluster-") {
			left = append(left, d)
		}
	}
	if len(left) != 0 {
		t.Fatalf("the cluster's database is still there: %v", left)
	}
}

func TestAurora_BadInputIsRefusedBeforeAnythingIsCreated(t *testing.T) {
	h, api, _ := auroraHarness(t)
	h.demoRepo()
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want string
	}{
		{"no source cluster", []string{"PRENV_DATABASE_AURORA_SOURCE_CLUSTER="}, 2, "database.aurora.source_cluster is required"},
		{"a source cluster that does not exist", []string{"PRENV_DATABASE_AURORA_SOURCE_CLUSTER=nightly"}, 3, "source cluster nightly does not exist"},
		{"security groups required and empty", []string{"PRENV_DATABASE_AURORA_REQUIRE_SECURITY_GROUPS=true"}, 2, "default security group"},
		{"an instance class that is not one", []string{"PRENV_DATABASE_AURORA_INSTANCE_CLASS=large"}, 2, "db.t4g.medium"},
		{"no credentials", []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, 2, "no AWS credentials found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := h.extra
			h.extra = append(append([]string{}, h.extra...), tc.env...)
			out, errs, code := h.run("up", "--pr", "8", "--sha", "HEAD")
			h.extra = saved
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, tc.code, tc.want, out, errs)
			}
			if out, _, _ := h.run("ls", "--all", "-o", "json"); strings.TrimSpace(out) != "[]" {
				t.Fatalf("something was recorded: %s", out)
			}
			if got := strings.Join(clusters(t, api), " "); got != "golden=available" {
				t.Fatalf("clusters: %s", got)
			}
		})
	}
}
