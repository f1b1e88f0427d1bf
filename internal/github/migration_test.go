package github_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/github/githubtest"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/store"
)

// rewriteReport is a report with two warnings: a rewrite and an index built
// without CONCURRENTLY.
func rewriteReport() rehearsal.Report {
	return rehearsal.Report{Seconds: 4.2, Golden: rehearsal.Golden{Generation: "3"}, DiffBase: rehearsal.DiffFromGolden, Interval: 0.05,
		SchemaDiff: []rehearsal.Change{{Kind: rehearsal.KindColumn, Object: "total_cents", Table: "orders", Action: rehearsal.Changed, Detail: "type integer -> bigint"}},
		Locks:      []rehearsal.LockHold{{Table: "public.orders", Mode: "ACCESS EXCLUSIVE", Seconds: 3.9, Rows: 300000, Bytes: 40 << 20, Statement: "ALTER TABLE orders ALTER COLUMN total_cents TYPE bigint"}},
		Rewrites:   []rehearsal.Rewrite{{Kind: rehearsal.KindTable, Name: "public.orders", BytesBefore: 40 << 20, BytesAfter: 42 << 20}},
		Warnings: []rehearsal.Warning{
			{Code: rehearsal.TableRewrite, Table: "public.orders", Message: "orders was rewritten", Statement: "ALTER TABLE orders ALTER COLUMN total_cents TYPE bigint"},
			{Code: rehearsal.IndexNotConcurrent, Table: "public.orders", Message: "orders_item was built without CONCURRENTLY"},
		}}
}

// finish reports a finished up of acme/shop#12 at commit whose run
// recorded rep, through d.
func finish(t *testing.T, d *github.Deployments, commit string, rep rehearsal.Report, state env.State) {
	t.Helper()
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	k := env.Key{PR: 12}
	e := store.Env{Key: k, Name: "pr-12", State: state, Commit: commit, DesiredCommit: commit, URL: "http://pr-12.example.test"}
	d.Started(context.Background(), e, commit)
	d.Finished(context.Background(), e, store.Run{Key: k, Kind: "up", Commit: commit, Migration: data, StartedAt: time.Now()})
}

func deployments(gh *githubtest.Server, failOn ...rehearsal.Code) (*github.Deployments, *[]string) {
	var warned []string
	return &github.Deployments{Reporter: &github.Reporter{Client: &github.Client{BaseURL: gh.URL, Tokens: github.StaticToken("tok")}},
		Repo: func(env.Key) string { return "acme/shop" }, Check: true, FailOn: failOn,
		LogURL: func(k env.Key) string { return "https://prenv.example.test/envs/" + k.Name() + "/log" },
		Warn:   func(what string, err error) { warned = append(warned, what+": "+err.Error()) }}, &warned
}

// Issue 12: the sticky comment shows the migration's report, warnings in
// view and the rest collapsed, and the check run "migration rehearsal"
// fails on the codes of migration.fail_on only.
func TestDeployments_TheMigrationReportInTheCommentAndTheCheckRun(t *testing.T) {
	gh := githubtest.New(t, "tok")
	d, warned := deployments(gh, rehearsal.TableRewrite)
	finish(t, d, "c0ffee", rewriteReport(), env.StateReady)
	if len(*warned) > 0 {
		t.Fatalf("warnings: %v", *warned)
	}
	comments := gh.CommentsOf("acme/shop", 12)
	if len(comments) != 1 {
		t.Fatalf("%d comments, want 1", len(comments))
	}
	body := comments[0].Body
	heading := strings.Index(body, "### Migration rehearsal: 2 warnings")
	warning := strings.Index(body, "**table-rewrite** on `public.orders`")
	details := strings.Index(body, "<details><summary>")
	if heading < 0 || warning < heading || details < warning || !strings.Contains(body, "golden generation `3`") ||
		!strings.Contains(body, "| `public.orders` | ACCESS EXCLUSIVE | 3.90 s | 300,000 | 40 MB |") {
		t.Fatalf("the comment, want the report with its warnings before the collapsed details:\n%s", body)
	}
	runs := gh.CheckRunsOf("acme/shop")
	if len(runs) != 1 {
		t.Fatalf("check runs: %+v", runs)
	}
	c := runs[0]
	if c.Name != "migration rehearsal" || c.HeadSHA != "c0ffee" || c.Status != "completed" || c.Conclusion != "failure" ||
		c.Output.Title != "1 of migration.fail_on: table-rewrite on public.orders" || !strings.Contains(c.Output.Summary, "index-not-concurrent") ||
		c.DetailsURL != "https://prenv.example.test/envs/pr-12/log" {
		t.Fatalf("check run: %+v", c)
	}

	// Warnings outside fail_on are listed, not failing.
	d, _ = deployments(gh, rehearsal.DataDropped)
	finish(t, d, "beef", rewriteReport(), env.StateReady)
	if c := gh.CheckRunsOf("acme/shop")[1]; c.HeadSHA != "beef" || c.Conclusion != "success" || c.Output.Title != "2 warnings, none in migration.fail_on" {
		t.Fatalf("check run without a failing code: %+v", c)
	}
	// A failed migration fails the check, whatever fail_on says.
	failed := rehearsal.Report{Seconds: 0.3, Failed: "migrate: exit status 1", DiffBase: rehearsal.DiffFromBegin}
	finish(t, d, "bad", failed, env.StateFailed)
	if c := gh.CheckRunsOf("acme/shop")[2]; c.HeadSHA != "bad" || c.Conclusion != "failure" || c.Output.Title != "The migration failed" {
		t.Fatalf("check run of a failed migration: %+v", c)
	}
	if body := gh.CommentsOf("acme/shop", 12)[0].Body; !strings.Contains(body, "### Migration rehearsal: failed, no warnings") || !strings.Contains(body, "migrate: exit status 1") {
		t.Fatalf("the comment after the failed migration:\n%s", body)
	}
}

// A personal access token cannot create check runs: the warning says what
// can, and the comment is still written.
func TestDeployments_ACheckRunRefusedSaysWhichTokenCan(t *testing.T) {
	gh := githubtest.New(t, "tok")
	gh.PersonalToken = true
	d, warned := deployments(gh)
	finish(t, d, "c0ffee", rewriteReport(), env.StateReady)
	if len(*warned) != 1 || !strings.Contains((*warned)[0], "checks: write") || !strings.Contains((*warned)[0], "403") {
		t.Fatalf("warnings: %v", *warned)
	}
	if c := gh.CommentsOf("acme/shop", 12); len(c) != 1 || !strings.Contains(c[0].Body, "Migration rehearsal") {
		t.Fatalf("comments: %+v", c)
	}
}

// A report too long for a comment (GitHub keeps 65,536 characters) keeps
// its summary and warnings and says where the rest is; so does the check
// run's summary.
func TestDeployments_AReportTooLongForACommentStillShowsItsWarnings(t *testing.T) {
	gh := githubtest.New(t, "tok")
	d, warned := deployments(gh)
	rep := rewriteReport()
	for i := range 3000 {
		rep.SchemaDiff = append(rep.SchemaDiff, rehearsal.Change{Kind: rehearsal.KindTable, Object: fmt.Sprintf("partition_of_events_%04d", i), Action: rehearsal.Added, Detail: "a table with a long enough description to take room"})
	}
	finish(t, d, "c0ffee", rep, env.StateReady)
	if len(*warned) > 0 {
		t.Fatalf("warnings: %v", *warned)
	}
	body := gh.CommentsOf("acme/shop", 12)[0].Body
	if len(body) > 65536 || !strings.Contains(body, "**table-rewrite**") || !strings.Contains(body, "**index-not-concurrent**") ||
		!strings.Contains(body, "`prenv migration report --pr 12`") || strings.Contains(body, "partition_of_events_0001") ||
		!strings.Contains(body, "### Preview environment `pr-12`") {
		t.Fatalf("the comment (%d bytes) of a report too long:\n%.3000s", len(body), body)
	}
	if c := gh.CheckRunsOf("acme/shop")[0]; len(c.Output.Summary) > 65535 || !strings.Contains(c.Output.Summary, "**table-rewrite**") {
		t.Fatalf("check run summary of %d bytes", len(c.Output.Summary))
	}
}

// The warnings of earlier migrations on the database fail the check of a
// push that migrates nothing new; a migration that ran unwatched gets a
// neutral check saying so, never a stale report.
func TestDeployments_EarlierWarningsStillFailAndAnUnwatchedMigrationIsNeutral(t *testing.T) {
	gh := githubtest.New(t, "tok")
	d, warned := deployments(gh, rehearsal.TableRewrite)
	later := rehearsal.Report{Seconds: 0.1, DiffBase: rehearsal.DiffFromGolden,
		Earlier: []rehearsal.Earlier{{Commit: "c0ffee", Warning: rewriteReport().Warnings[0]}}}
	finish(t, d, "beef", later, env.StateReady)
	c := gh.CheckRunsOf("acme/shop")[0]
	if c.HeadSHA != "beef" || c.Conclusion != "failure" || c.Output.Title != "1 of migration.fail_on: table-rewrite on public.orders" ||
		!strings.Contains(c.Output.Summary, "**table-rewrite** on `public.orders` (commit `c0ffee`)") {
		t.Fatalf("check run of a push after the rewrite: %+v", c)
	}
	if body := gh.CommentsOf("acme/shop", 12)[0].Body; !strings.Contains(body, "### Migration rehearsal: no warnings, 1 earlier") {
		t.Fatalf("the comment:\n%s", body)
	}
	// Migrated, no report: neutral, with the reason.
	k := env.Key{PR: 12}
	e := store.Env{Key: k, Name: "pr-12", State: env.StateReady, Commit: "face", DesiredCommit: "face"}
	d.Finished(context.Background(), e, store.Run{Key: k, Kind: "up", Commit: "face", Steps: []store.Step{{Name: "clone"}, {Name: "migrate"}, {Name: "deploy"}}})
	c = gh.CheckRunsOf("acme/shop")[1]
	if c.HeadSHA != "face" || c.Conclusion != "neutral" || !strings.HasPrefix(c.Output.Title, "Not rehearsed: the migration ran unwatched") {
		t.Fatalf("check run of an unwatched migration: %+v", c)
	}
	if len(*warned) > 0 {
		t.Fatalf("warnings: %v", *warned)
	}
}

// A failed run's output cannot close the comment's code block.
func TestSummary_TheErrorStaysInItsCodeBlock(t *testing.T) {
	out := "applying 0004.sql\n```\n</details><img src=x>\n# Approved\n```"
	s := github.Summary(github.View{Name: "pr-1", State: "failed", Error: out})
	if !strings.Contains(s, "````\n"+out+"\n````") {
		t.Fatalf("the error is not fenced beyond its own backticks:\n%s", s)
	}
}
