package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
)

// What a Prometheus scrape of /metrics reads: environments by state, the
// queue's depth and age, runs and steps (a clone under its database
// provider), the sweeper's deletions and GitHub's quota.
func TestMetrics_ScrapeSaysWhatPrenvIsDoing(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, state := range []env.State{env.StateReady, env.StateReady, env.StateFailed, env.StateDeleted} {
		k := env.Key{PR: i + 1}
		if _, err := s.Request(ctx, k, k.Name(), "c", false); err != nil {
			t.Fatal(err)
		}
		e, _ := s.Get(ctx, k)
		e.State = state
		if err := s.Save(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Enqueue(ctx, store.Delivery{ID: "d1", Event: "pull_request", Body: []byte("{}"), ReceivedAt: time.Now().Add(-90 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	m := New(Source{Store: s, Queue: s, Remaining: func() (int, bool) { return 4321, true }})
	start := time.Now()
	m.Run(store.Run{Kind: "up", State: store.RunSucceeded, StartedAt: start, FinishedAt: start.Add(3 * time.Second),
		Steps: []store.Step{{Name: "clone", Seconds: 0.2}, {Name: "deploy", Seconds: 1.5}}}, store.Providers{Database: "aurora", Runtime: "kubernetes"})
	m.Swept(lifecycle.Plan{Applied: true, Items: []lifecycle.Item{{Verdict: lifecycle.VerdictExpired, Outcome: "deleted"},
		{Verdict: lifecycle.VerdictExpired, Outcome: "deferred: a run holds it"}, {Verdict: lifecycle.VerdictOrphaned, Outcome: "deleted"}}})
	m.Pool(3, 2, true)
	m.Claimed()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`prenv_environments{state="ready"} 2`,
		`prenv_environments{state="failed"} 1`,
		`prenv_webhook_queue_depth 1`,
		`prenv_run_duration_seconds_count{kind="up",state="succeeded"} 1`,
		`prenv_run_duration_seconds_sum{kind="up",state="succeeded"} 3`,
		`prenv_step_duration_seconds_count{provider="aurora",step="clone"} 1`,
		`prenv_step_duration_seconds_count{provider="kubernetes",step="deploy"} 1`,
		`prenv_sweep_deletions_total{verdict="expired"} 1`,
		`prenv_sweep_deletions_total{verdict="orphaned"} 1`,
		`prenv_github_rate_limit_remaining 4321`,
		`prenv_store_up 1`,
		`prenv_pool_members{state="ready"} 3`,
		`prenv_pool_members{state="filling"} 2`,
		`prenv_pool_claims_total 1`,
		`prenv_pool_rounds_held_back_total 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want+" ") {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	if strings.Contains(text, `state="deleted"`) {
		t.Error("deleted environments are counted")
	}
	if !strings.Contains(text, "prenv_webhook_queue_oldest_seconds 9") && !strings.Contains(text, "prenv_webhook_queue_oldest_seconds 8") {
		t.Errorf("the queue's oldest delivery is 90s old:\n%s", grep(text, "oldest"))
	}
	if t.Failed() {
		t.Log(grep(text, "prenv_"))
	}
}

func grep(text, what string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, what) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
