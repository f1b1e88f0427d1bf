package github_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/github/githubtest"
	"github.com/prenv/prenv/internal/lifecycle"
	rtmemory "github.com/prenv/prenv/internal/runtime/memory"
	"github.com/prenv/prenv/internal/store/sqlite"
)

// An environment that expires while its pull request is open is brought
// down by the sweeper through the lifecycle: its deployments become
// inactive and the sticky comment says it expired and how to bring it
// back, as GitHub shows them.
func TestSweep_AnExpiredEnvironmentSaysSoOnItsPullRequest(t *testing.T) {
	ctx := context.Background()
	gh := githubtest.New(t, "tok")
	gh.SetPulls("acme/shop", githubtest.PR{"number": 12, "state": "open", "labels": []any{}})
	client := &github.Client{BaseURL: gh.URL, Tokens: github.StaticToken("tok")}
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "prenv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	now := time.Now()
	reports := &github.Deployments{Reporter: &github.Reporter{Client: client}, Repo: func(env.Key) string { return "acme/shop" }}
	lc := &lifecycle.Lifecycle{Store: st, Cloner: &dbmemory.Cloner{World: world, Owner: "acme"}, Runtime: rtmemory.New("acme"),
		LockDir: dir, Owner: "acme", TTL: 2 * time.Hour, Reporter: reports, Now: func() time.Time { return now }}
	k := env.Key{PR: 12}
	if _, err := lc.Up(ctx, lifecycle.UpOptions{Key: k, Commit: "c0ffee"}); err != nil {
		t.Fatal(err)
	}
	if got := gh.StatusesOf("acme/shop", "pr-12"); strings.Join(got, ",") != "c0ffee:in_progress,c0ffee:success" {
		t.Fatalf("statuses after up: %v", got)
	}
	now = now.Add(3 * time.Hour)
	opts := lifecycle.SweepOptions{Apply: true, Grace: time.Hour, MaxDeletions: 10, KeepLabel: "prenv:keep",
		Pulls: github.PullLister{Client: client}, DefaultRepo: "acme/shop"}
	plan, err := lc.Sweep(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c := plan.Counts(); c[lifecycle.VerdictExpired] != 2 {
		t.Fatalf("plan: %+v; want the database and the home expired", plan.Items)
	}
	if got := gh.StatusesOf("acme/shop", "pr-12"); got[len(got)-1] != "c0ffee:inactive" {
		t.Fatalf("statuses after the sweep: %v; want the deployment inactive", got)
	}
	comments := gh.CommentsOf("acme/shop", 12)
	if len(comments) != 1 {
		t.Fatalf("%d comments; want the one sticky comment", len(comments))
	}
	body := comments[0].Body
	for _, want := range []string{"expired", "2h0m0s (ttl)", "push a commit", "prenv:keep"} {
		if !strings.Contains(body, want) {
			t.Errorf("the comment lacks %q:\n%s", want, body)
		}
	}
}
