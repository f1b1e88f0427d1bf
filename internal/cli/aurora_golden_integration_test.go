package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/rdsemu/pgbackend"
	"github.com/prenv/prenv/internal/testenv"
)

const auroraGoldenConfig = `version: 1
owner: shop-previews
database:
  provider: aurora
  aurora:
    require_security_groups: false
    sslmode: disable
    ready_check: sql
golden:
  source:
    aurora:
      cluster: production-db
      from: %s
  keep: 2
  masking:
    salt: ${PRENV_MASKING_SALT}
    tables:
      people:
        full_name: person_name
        email: email
        phone: phone
        street: address
        postcode: redact
%s    keep: [people.city]
`

type auroraGoldenGen struct {
	Number        int    `json:"generation"`
	Cluster       string `json:"cluster"`
	Status        string `json:"status"`
	Promoted      bool   `json:"promoted"`
	Source        string `json:"source"`
	MaskedColumns int    `json:"masked_columns"`
	Scan          string `json:"scan"`
	Rows          int64  `json:"rows"`
	SizeBytes     int64  `json:"size_bytes"`
	Steps         []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
	} `json:"steps"`
}

// Issue 11, section 4, end to end through the RDS emulator with real
// PostgreSQL behind every cluster: the nightly build restores production's
// newest automated snapshot into a golden cluster, masks it in place
// through SQL, scans it and promotes it by tag; environments clone it and
// never see production's personal data; a column of emails added in
// production refuses the next build, deleting its cluster, while the
// current generation stays current; golden.keep retires old generations
// without breaking the clones made from them.
func TestAurora_TheNightlyGoldenClusterIsMaskedScannedAndPromoted(t *testing.T) {
	h := newHarness(t)
	back := testenv.Home(t)
	testenv.Golden(t, back, testenv.DemoSQL(200)) // production's data: synthetic people
	first, last := testenv.PortRange(t, 12)
	b, err := pgbackend.New(back, fmt.Sprintf("%d-%d", first, last), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	emu := rdsemu.New(rdsemu.Options{Backend: b})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	if err := emu.CreateSource(ctx, "production-db", map[string]string{"team": "shop"}); err != nil {
		t.Fatal(err)
	}
	snapshot := func(at string) {
		t.Helper()
		if err := emu.TakeSnapshot(ctx, "production-db", "rds:production-db-"+at, true); err != nil {
			t.Fatal(err)
		}
	}
	api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example", "")})
	// Production also holds a database besides database.name and a
	// materialized view over the people: neither may reach an environment
	// as it is.
	prod := productionURL(t, api)
	execSQL(t, prod, "CREATE MATERIALIZED VIEW people_emails AS SELECT id, email FROM people", "CREATE DATABASE analytics")
	execSQL(t, strings.Replace(prod, "/app?", "/analytics?", 1), "CREATE TABLE visitors AS SELECT 'visitor' || i || '@example.test' AS email FROM generate_series(1, 10) i")
	snapshot("2026-11-25-02-05")

	h.dir = t.TempDir()
	writeConfig := func(from, extra string) {
		os.WriteFile(filepath.Join(h.dir, "prenv.yaml"), []byte(fmt.Sprintf(auroraGoldenConfig, from, extra)), 0o644)
	}
	writeConfig("snapshot", "")
	h.extra = append(h.extra, "PRENV_MASKING_SALT=a-test-salt-of-enough-length",
		"PRENV_DATABASE_AURORA_ENDPOINT="+srv.URL, "PRENV_DATABASE_AURORA_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	gens := func() []auroraGoldenGen {
		t.Helper()
		var out []auroraGoldenGen
		if err := json.Unmarshal([]byte(h.must("golden", "ls", "-o", "json")), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Before any build, up says what to do.
	if out, errs, code := h.run("up", "--pr", "7"); code == 0 || !strings.Contains(errs, "prenv golden build") {
		t.Fatalf("up before any golden build: exit %d\n%s%s", code, out, errs)
	}
	out := h.must("golden", "build")
	if !strings.Contains(out, "golden generation 1 is ready (cluster prenv-golden-1") {
		t.Fatalf("golden build: %s", out)
	}
	g := gens()
	if len(g) != 1 || !g[0].Promoted || g[0].Status != "available" || g[0].Source != "snapshot:rds:production-db-2026-11-25-02-05" ||
		g[0].MaskedColumns != 5 || g[0].Scan != "clean" || g[0].Rows < 200 || g[0].SizeBytes <= 0 {
		t.Fatalf("golden ls -o json: %+v", g)
	}
	var steps []string
	for _, s := range g[0].Steps {
		steps = append(steps, s.Name)
	}
	if strings.Join(steps, " ") != "restore password databases mask check analyze" {
		t.Errorf("steps %v: want each step of the build with its time, read back from the tags", steps)
	}
	if ls := h.must("golden", "ls"); !strings.Contains(ls, "1 (current)") || !strings.Contains(ls, "prenv-golden-1") || !strings.Contains(ls, "5 columns") {
		t.Fatalf("golden ls:\n%s", ls)
	}

	// An environment clones the golden cluster: masked, unique, joined.
	h.must("up", "--pr", "7")
	st := h.status(7)
	if st.Database.Generation != 1 {
		t.Fatalf("PR 7 cloned generation %d, want 1", st.Database.Generation)
	}
	pr7 := st.Database.URL
	if n := testenv.QueryInt(t, pr7, "SELECT count(*) FROM people WHERE email LIKE '%@example.test'"); n != 0 {
		t.Fatalf("the clone holds %d of production's emails", n)
	}
	if n := testenv.QueryInt(t, pr7, "SELECT count(DISTINCT email) FROM people WHERE email LIKE '%@example.com'"); n != 200 {
		t.Fatalf("%d distinct masked emails, want 200", n)
	}
	if n := testenv.QueryInt(t, pr7, "SELECT count(*) FROM orders o LEFT JOIN people p ON p.id = o.person_id WHERE p.id IS NULL"); n != 0 {
		t.Fatalf("%d orders lost their person", n)
	}
	if n := testenv.QueryInt(t, pr7, "SELECT count(*) FROM people_emails WHERE email LIKE '%@example.test'"); n != 0 {
		t.Fatalf("the clone's materialized view holds %d of production's emails", n)
	}
	if conn, err := pgx.Connect(context.Background(), strings.Replace(pr7, "/app?", "/analytics?", 1)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		if conn != nil {
			conn.Close(context.Background())
		}
		t.Fatalf("the clone has production's analytics database (err %v): no rule masks it", err)
	}
	// Production itself was read, never written.
	if n := testenv.QueryInt(t, prod, "SELECT count(*) FROM people WHERE email LIKE '%@example.test'"); n != 200 {
		t.Fatalf("production holds %d of its 200 emails after the build", n)
	}

	// Production grows a column of emails; the next night's build is
	// refused, its cluster deleted, and generation 1 stays current.
	execSQL(t, prod, "ALTER TABLE people ADD COLUMN backup_email text", "UPDATE people SET backup_email = 'backup' || id || '@mail.example.org'")
	snapshot("2026-11-26-02-05")
	out, errs, code := h.run("golden", "build")
	if code != 1 || !strings.Contains(errs, "people.backup_email") || !strings.Contains(errs, "generation 1 is still current") || strings.Contains(errs, "backup1@mail.example.org") {
		t.Fatalf("a build with an uncovered personal column: exit %d\n%s%s", code, out, errs)
	}
	if g := gens(); len(g) != 1 || g[0].Number != 1 {
		t.Fatalf("after the refused build: %+v, want generation 1 alone (the refused build's cluster deleted)", g)
	}
	for _, c := range clusters(t, api) {
		if strings.HasPrefix(c, "prenv-golden-2") { // the refused build's
			t.Fatalf("the refused build's cluster is left: %v", clusters(t, api))
		}
	}

	// A rule for the new column: golden check says the build would pass,
	// promoting nothing; generations 2 (from the new snapshot) and 3 (a
	// copy-on-write clone of production as it is now) build, a refused
	// build taking no number; golden.keep retires 1, and PR 7, cloned from
	// it, still answers.
	writeConfig("snapshot", "        backup_email: email\n")
	if out := h.must("golden", "check"); !strings.Contains(out, "masked 6 columns; scan: clean; nothing was promoted") {
		t.Fatalf("golden check: %s", out)
	}
	if g := gens(); len(g) != 1 {
		t.Fatalf("golden check left generations %+v", g)
	}
	if out := h.must("golden", "build"); !strings.Contains(out, "golden generation 2 is ready") {
		t.Fatalf("build 2: %s", out)
	}
	writeConfig("clone", "        backup_email: email\n")
	if out := h.must("golden", "build"); !strings.Contains(out, "golden generation 3 is ready") {
		t.Fatalf("build 3: %s", out)
	}
	g = gens()
	if len(g) != 2 || g[0].Number != 2 || g[1].Number != 3 || g[0].Source != "snapshot:rds:production-db-2026-11-26-02-05" ||
		g[1].Source != "cluster:production-db" || g[1].MaskedColumns != 6 {
		t.Fatalf("after two more builds: %+v; want 2 (from the new snapshot) and 3 (a clone of production), golden.keep 2, 6 masked columns", g)
	}
	if n := testenv.QueryInt(t, pr7, "SELECT count(*) FROM people"); n != 200 {
		t.Fatalf("PR 7's clone of the retired generation answers %d people", n)
	}
	h.must("up", "--pr", "8")
	st = h.status(8)
	if st.Database.Generation != 3 {
		t.Fatalf("PR 8 cloned generation %d, want 3", st.Database.Generation)
	}
	if n := testenv.QueryInt(t, st.Database.URL, "SELECT count(*) FROM people WHERE backup_email LIKE '%@mail.example.org'"); n != 0 {
		t.Fatalf("PR 8 holds %d of production's backup emails", n)
	}
	// The sweeper leaves the golden clusters alone.
	if out := h.must("sweep", "-o", "json"); strings.Contains(out, "prenv-golden-") {
		t.Fatalf("the sweep plan lists golden clusters:\n%s", out)
	}
	h.must("down", "--pr", "7")
	h.must("down", "--pr", "8")
}

func execSQL(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// productionURL gives production's master user a password a DBA would
// know, and returns its URL.
func productionURL(t *testing.T, api *rds.Client) string {
	t.Helper()
	ctx := context.Background()
	if _, err := api.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: aws.String("production-db"),
		MasterUserPassword: aws.String("dba-password-1234"), ApplyImmediately: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	var url string
	waitFor(t, 30*time.Second, func() bool {
		out, err := api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("production-db")})
		if err != nil || len(out.DBClusters) == 0 || aws.ToString(out.DBClusters[0].Status) != "available" {
			return false
		}
		c := out.DBClusters[0]
		url = fmt.Sprintf("postgres://%s:dba-password-1234@%s:%d/app?sslmode=disable", aws.ToString(c.MasterUsername), aws.ToString(c.Endpoint), aws.ToInt32(c.Port))
		return true
	})
	return url
}
