package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/github/githubtest"
	"github.com/prenv/prenv/internal/store/storetest"
	"github.com/prenv/prenv/internal/testenv"
)

// Two prenv serve processes, each with a home of its own, share one
// PostgreSQL store, the test control plane (the Kubernetes runtime) and one
// emulated AWS account (Aurora clones that are real PostgreSQL clusters):
// 200 deliveries for 20 pull requests (ten pushes each), sent to either
// replica, are split between them; every environment converges to its pull
// request's last commit, with no two runs of one environment at once (read
// from the run records); then a replica is killed with SIGKILL while it works on a new
// pull request, and the other takes the environment over (as soon as the
// server has closed the killed replica's sessions, well before its claim
// would run out) and brings it up; nothing is made twice, and no lock or claim is
// left.
func TestReplicas_TwoServeProcessesShareTheWorkAndSurviveAKill(t *testing.T) {
	first, c := kubeHarness(t, "")
	api, _, _ := useAurora(t, first, 20)
	store := testenv.Server(t)
	gh := githubtest.New(t, "tok")
	const secret = "webhook-secret"
	first.extra = append(first.extra, "PRENV_REPOSITORY=acme/shop", "PRENV_STORE="+store, "PRENV_GITHUB_WEBHOOK_SECRET="+secret,
		"PRENV_GITHUB_TOKEN=tok", "PRENV_GITHUB_API_URL="+gh.URL, "PRENV_GITHUB_RECONCILE=0s", "PRENV_SERVE_CLAIM_TTL=5s",
		"PRENV_GITHUB_CONCURRENCY=4",
		"PRENV_RUNTIME_KUBERNETES_TIMEOUT=3m") // twenty releases at once on two cores: the control plane is slow to answer
	second := first.anotherMachine()
	replicas := []*harness{first, second}
	procs := make([]*os.Process, 2)
	logs := make([]*bytes.Buffer, 2)
	for i, h := range replicas {
		cmd := h.command("serve")
		logs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = logs[i], logs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd.Process
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, b := range logs {
				t.Logf("replica %d's log:\n%s", i, b.String())
			}
		}
	})
	deliver := func(h *harness, id string, pr int, action, sha, state string, at time.Time) {
		t.Helper()
		h.deliver(secret, id, pr, action, sha, state, at)
	}
	ready := func(pr int, sha string) bool {
		out, _, code := first.run("status", fmt.Sprintf("pr-%d", pr), "-o", "json")
		var st status
		return code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.State == "ready" && st.Commit == sha
	}
	until := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s", d, what)
			}
		}
	}

	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	n := 0
	const prs, pushes = 20, 10
	for push := 1; push <= pushes; push++ {
		for pr := 1; pr <= prs; pr++ {
			action := "synchronize"
			if push == 1 {
				action = "opened"
			}
			deliver(replicas[n%2], fmt.Sprintf("d-%d-%d", pr, push), pr, action, fmt.Sprintf("c%d-%d", pr, push), "open", t0.Add(time.Duration(push)*time.Second))
			n++
		}
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// What each environment says, and what the queue holds, for the
		// one who reads the failure.
		for pr := 1; pr <= prs; pr++ {
			out, errOut, _ := first.run("status", fmt.Sprintf("pr-%d", pr), "-o", "json")
			t.Logf("pr-%d: %s %s", pr, strings.TrimSpace(out), strings.TrimSpace(errOut))
		}
		if conn, err := pgx.Connect(context.Background(), store); err == nil {
			var queued, claimed int
			_ = conn.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE claimed_by <> '') FROM prenv_deliveries WHERE state = 'queued'`).Scan(&queued, &claimed)
			t.Logf("deliveries queued: %d, of which claimed: %d", queued, claimed)
			conn.Close(context.Background())
		}
	})
	until("every environment ready at its last commit", 6*time.Minute, func() bool {
		for pr := 1; pr <= prs; pr++ {
			if !ready(pr, fmt.Sprintf("c%d-%d", pr, pushes)) {
				return false
			}
		}
		return true
	})

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// No two runs of one environment at once, from the run records.
	rows, err := conn.Query(ctx, `SELECT key, started_at, coalesce(finished_at, started_at) FROM prenv_runs ORDER BY key, started_at`)
	if err != nil {
		t.Fatal(err)
	}
	var spans []storetest.Span
	for rows.Next() {
		var s storetest.Span
		if err := rows.Scan(&s.Key, &s.From, &s.To); err != nil {
			t.Fatal(err)
		}
		spans = append(spans, s)
	}
	rows.Close()
	for _, o := range storetest.Overlapping(spans) {
		t.Error(o)
	}
	var done, overtaken int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'superseded') FROM prenv_runs`).Scan(&done, &overtaken); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d deliveries for %d pull requests: %d runs succeeded, %d superseded", prs*pushes, prs, done, overtaken)
	// Both replicas carried out deliveries (their logs say which).
	for i, b := range logs {
		if !strings.Contains(b.String(), "up from a webhook") {
			t.Errorf("replica %d carried out no delivery", i)
		}
	}

	// A new pull request; the replica that claims its delivery is killed.
	deliver(first, "d-21-1", 21, "opened", "c21-1", "open", t0.Add(time.Minute))
	var owner string
	until("the delivery for pr-21 claimed", 30*time.Second, func() bool {
		_ = conn.QueryRow(ctx, `SELECT claimed_by FROM prenv_deliveries WHERE id = 'd-21-1'`).Scan(&owner)
		return owner != ""
	})
	// Its run is under way: a run record exists and is running.
	until("a run of pr-21 under way", 30*time.Second, func() bool {
		var n int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM prenv_runs WHERE key = '#21' AND state = 'running'`).Scan(&n)
		return n == 1
	})
	killed := -1
	for i, p := range procs {
		if strings.Contains(owner, fmt.Sprintf("/%d/", p.Pid)) {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("the claim %q names neither replica (%d, %d)", owner, procs[0].Pid, procs[1].Pid)
	}
	if err := procs[killed].Kill(); err != nil {
		t.Fatal(err)
	}
	procs[killed].Wait()
	t1 := time.Now()
	until("pr-21 ready, brought up by the replica left", 2*time.Minute, func() bool { return ready(21, "c21-1") })
	t.Logf("replica %d killed during a run of pr-21; the other brought it up %.1fs later", killed, time.Since(t1).Seconds())

	// The killed replica's run is recorded as interrupted; the other's
	// succeeded.
	var interrupted, succeeded int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'interrupted'), count(*) FILTER (WHERE state = 'succeeded') FROM prenv_runs WHERE key = '#21'`).Scan(&interrupted, &succeeded); err != nil {
		t.Fatal(err)
	}
	if interrupted != 1 || succeeded != 1 {
		t.Errorf("runs of pr-21: %d interrupted, %d succeeded; want one each", interrupted, succeeded)
	}
	// Nothing twice: one namespace and one Aurora cluster for pr-21.
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "prenv.dev/pr=21"})
	if err != nil || len(nss.Items) != 1 {
		t.Fatalf("namespaces of pr-21: %v %v", nss, err)
	}
	var of21 []string
	for _, id := range clusters(t, api) {
		if strings.Contains(id, "pr-21") {
			of21 = append(of21, id)
		}
	}
	if len(of21) != 1 {
		t.Fatalf("Aurora clusters of pr-21: %v", of21)
	}
	// Nothing left: no claim on a delivery, no environment's lock held.
	var claimed, locks int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM prenv_deliveries WHERE claimed_by <> ''`).Scan(&claimed); err != nil {
		t.Fatal(err)
	}
	until("no environment's lock held", 10*time.Second, func() bool {
		// (The replica left holds the leader's lock, and its presence.)
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'prenv lock'
			AND ((l.classid::bigint << 32) | l.objid::bigint) <> hashtextextended('prenv:prenv-leader', 0)`).Scan(&locks)
		return locks == 0
	})
	if claimed != 0 {
		t.Errorf("%d deliveries still claimed", claimed)
	}
}
