package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prenv/prenv/internal/testenv"
	"github.com/prenv/prenv/internal/testenv/kube"
)

// asMigrationPod does the work of the migration container that kwok does
// not run: once a Job's pod labelled prenv.dev/test-hold=true runs in ns,
// it runs sql on the environment's database (from prenv's Secret, as the
// container would read it) with the PGAPPNAME the pod was given, then lets
// the pod complete. The returned channel gets the outcome.
func asMigrationPod(c *kube.Cluster, ns, sql string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		done <- func() error {
			for {
				pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "prenv.dev/test-hold=true"})
				if err == nil {
					for _, p := range pods.Items {
						if p.Status.Phase == corev1.PodRunning {
							return migrateAs(ctx, c, ns, p, sql)
						}
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("no migration pod ran in %s: %w", ns, ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}()
	return done
}

func migrateAs(ctx context.Context, c *kube.Cluster, ns string, pod corev1.Pod, sql string) error {
	secret, err := c.Client.CoreV1().Secrets(ns).Get(ctx, "prenv-database", metav1.GetOptions{})
	if err != nil {
		return err
	}
	app := ""
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == "PGAPPNAME" {
			app = e.Value
		}
	}
	cfg, err := pgx.ParseConfig(string(secret.Data["DATABASE_URL"]))
	if err != nil {
		return err
	}
	if app != "" {
		cfg.RuntimeParams["application_name"] = app
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("the migration: %w", err)
	}
	_, err = c.Client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"labels":{"prenv.dev/test-hold":"false"}}}`), metav1.PatchOptions{})
	return err
}

type migrationStatus struct {
	Migration *struct {
		Commit     string  `json:"commit"`
		Seconds    float64 `json:"seconds"`
		DiffBase   string  `json:"diff_base"`
		SchemaDiff []struct {
			Kind, Object, Action string
		} `json:"schema_diff"`
		Locks []struct {
			Table, Mode string
			Seconds     float64
		} `json:"locks"`
		Warnings []struct {
			Code, Table string
		} `json:"warnings"`
		Notes []string `json:"notes"`
	} `json:"migration"`
}

func (h *harness) migrationStatus(pr string) migrationStatus {
	h.t.Helper()
	var st migrationStatus
	if err := json.Unmarshal([]byte(h.must("status", "--pr", pr, "-o", "json")), &st); err != nil || st.Migration == nil {
		h.t.Fatalf("status -o json: %v, no migration report", err)
	}
	return st
}

// Issue 12 on Kubernetes: the migration a chart's pre-upgrade hook Job runs,
// and the one prenv's own migration Job runs, are watched from prenv and
// reported, the sessions told apart by PGAPPNAME.
func TestKubernetes_TheMigrationRehearsalWatchesTheHookJobAndPrenvsMigrationJob(t *testing.T) {
	h, c := kubeHarness(t, "")
	root := testenv.ModuleRoot(t)
	chart := root + "/examples/demo/chart"
	h.writeKubeConfig(c.Kubeconfig, chart, kubeValues+`
      migration: {podLabels: {prenv.dev/test-hold: "true"}}`, "")
	h.extra = append(h.extra, "PRENV_MIGRATION_LARGE_TABLE_ROWS=10")
	h.golden(100)

	// The chart's hook: a column's type changes, orders is rewritten under
	// ACCESS EXCLUSIVE, held for half a second.
	done := asMigrationPod(c, "pr-43", "BEGIN; ALTER TABLE orders ALTER COLUMN quantity TYPE bigint; SELECT pg_sleep(0.5); COMMIT")
	h.must("up", "--pr", "43", "--sha", "c1")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := h.migrationStatus("43")
	m := st.Migration
	held := false
	for _, l := range m.Locks {
		held = held || (l.Table == "orders" && l.Mode == "ACCESS EXCLUSIVE" && l.Seconds >= 0.4)
	}
	if m.Commit != "c1" || m.DiffBase != "golden" || m.Seconds < 0.5 || !held || len(m.Warnings) == 0 || m.Warnings[0].Code != "table-rewrite" ||
		len(m.Notes) == 0 || !strings.Contains(strings.Join(m.Notes, " "), "pre-install/pre-upgrade hook Jobs") {
		t.Fatalf("the hook's rehearsal: %+v", *m)
	}

	// prenv's own migration Job, for a chart without hooks: an index built
	// without CONCURRENTLY on orders (large here above 10 rows).
	h.writeKubeConfig(c.Kubeconfig, chart, kubeValues+`
      migration: {enabled: false}`, `    migration: |
      image: "example/prenv-demo-app:{{ .Commit }}"
      command: ["/app", "migrate"]
      pod_labels: {prenv.dev/test-hold: "true"}
`)
	done = asMigrationPod(c, "pr-43", "BEGIN; CREATE INDEX orders_item ON orders (item); SELECT pg_sleep(0.3); COMMIT")
	h.must("up", "--pr", "43", "--sha", "c2")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	job, err := c.Client.BatchV1().Jobs("pr-43").Get(context.Background(), "prenv-migrate-c2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := job.Spec.Template.Spec.Containers[0].Env; len(env) != 1 || env[0].Name != "PGAPPNAME" || env[0].Value != "prenv-migrate" {
		t.Fatalf("the migration Job's environment: %+v; want PGAPPNAME=prenv-migrate", env)
	}
	m = h.migrationStatus("43").Migration
	var diff, codes []string
	for _, c := range m.SchemaDiff {
		diff = append(diff, c.Action+" "+c.Kind+" "+c.Object)
	}
	for _, w := range m.Warnings {
		codes = append(codes, w.Code)
	}
	if want := "changed column quantity,added index orders_item"; m.Commit != "c2" || m.DiffBase != "golden" || strings.Join(diff, ",") != want ||
		strings.Join(codes, ",") != "index-not-concurrent" || m.Seconds < 0.3 {
		t.Fatalf("prenv's migration Job's rehearsal: %+v\n diff %s (want %s)\n warnings %v", *m, strings.Join(diff, ","), want, codes)
	}
	h.must("down", "--pr", "43")
}
