package github

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/prenv/prenv/internal/rehearsal"
)

// Marker is the hidden line that identifies prenv's comment on a pull
// request.
const Marker = "<!-- prenv: preview environment -->"

// Step is one timed step of a run.
type Step struct {
	Name    string
	Seconds float64
}

// View is what prenv reports of an environment.
type View struct {
	Name       string // pr-12
	PR         int
	State      string // ready, failed, deleted, ...
	URL        string
	Commit     string // the commit serving
	Attempted  string // the commit the last run tried, when it differs
	Generation int    // of the golden data the database was cloned from
	Steps      []Step
	Error      string
	LogURL     string
	// Reason says why an environment was torn down (closed, expired,
	// orphaned), Note says it to a person and Back how to bring it back.
	Reason, Note, Back string
	// Migration is the rehearsal report of the migration of Attempted (or
	// Commit), when one was recorded.
	Migration *rehearsal.Report
}

// commentLimit is what GitHub keeps of a comment's body (65,536
// characters), less a margin: the report gives way to the rest.
const commentLimit = 60000

// Summary is the markdown prenv writes to the pull request's comment and
// the Actions job summary.
func Summary(v View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Preview environment `%s`\n\n", v.Name)
	b.WriteString("| | |\n|---|---|\n")
	state := v.State
	switch v.State {
	case "ready":
		state = "✅ ready"
	case "failed":
		state = "❌ failed"
	case "deleted":
		state = "🗑️ torn down"
		if v.Reason == "expired" {
			state = "⌛ expired and torn down"
		}
	}
	fmt.Fprintf(&b, "| State | %s |\n", state)
	if v.URL != "" && v.State != "deleted" {
		fmt.Fprintf(&b, "| URL | %s |\n", v.URL)
	}
	switch {
	case v.Attempted != "" && v.Attempted != v.Commit && v.Commit != "":
		fmt.Fprintf(&b, "| Commit | `%s` failed; `%s` is still serving |\n", short(v.Attempted), short(v.Commit))
	case v.Attempted != "" && v.Commit == "":
		fmt.Fprintf(&b, "| Commit | `%s` |\n", short(v.Attempted))
	case v.Commit != "":
		fmt.Fprintf(&b, "| Commit | `%s` |\n", short(v.Commit))
	}
	if v.Generation > 0 {
		fmt.Fprintf(&b, "| Database | cloned from golden data generation %d |\n", v.Generation)
	}
	if v.Note != "" {
		fmt.Fprintf(&b, "\n%s\n", v.Note)
	}
	if v.Back != "" {
		fmt.Fprintf(&b, "\n**To bring it back:** %s\n", v.Back)
	}
	if v.Error != "" {
		fmt.Fprintf(&b, "\n**Why it failed**\n\n%s\n", fence(strings.TrimSpace(truncate(v.Error, 3000))))
		if v.LogURL != "" {
			fmt.Fprintf(&b, "\n[Full log](%s)\n", v.LogURL)
		}
	}
	if len(v.Steps) > 0 {
		var parts []string
		total := 0.0
		for _, s := range v.Steps {
			parts = append(parts, fmt.Sprintf("%s %.2f s", s.Name, s.Seconds))
			total += s.Seconds
		}
		fmt.Fprintf(&b, "\nLast run: %s (%.2f s)\n", strings.Join(parts, " · "), total)
	}
	if v.Migration != nil && v.State != "deleted" {
		b.WriteString("\n" + v.Migration.MarkdownWithin(commentLimit-b.Len(), v.reportCommand()))
	}
	return b.String()
}

// reportCommand is where the whole migration report is.
func (v View) reportCommand() string {
	if v.PR > 0 {
		return fmt.Sprintf("`prenv migration report --pr %d`", v.PR)
	}
	return "`prenv migration report`"
}

// CheckName is the name of the migration rehearsal's check run.
const CheckName = "migration rehearsal"

// MigrationCheck is the check run of the migration rehearsal rep on
// commit: a failure when the migration failed or warned of a code in
// failOn, else a success (warnings outside failOn are listed, not
// failing).
//
// The warnings of the database's earlier migrations (rep.Earlier) count as
// this commit's: a push that migrates nothing new must not clear a
// failure the pull request's migration still causes.
func MigrationCheck(rep rehearsal.Report, commit string, failOn []rehearsal.Code, logURL, more string) CheckRun {
	var failing []string
	all := rep.AllWarnings()
	for _, w := range all {
		if slices.Contains(failOn, w.Code) {
			failing = append(failing, fmt.Sprintf("%s on %s", w.Code, w.Table))
		}
	}
	c := CheckRun{Name: CheckName, HeadSHA: commit, Status: "completed", Conclusion: "success", DetailsURL: logURL}
	switch {
	case rep.Failed != "":
		c.Conclusion = "failure"
		c.Output.Title = "The migration failed"
	case len(failing) > 0:
		c.Conclusion = "failure"
		c.Output.Title = fmt.Sprintf("%d of migration.fail_on: %s", len(failing), clipTitle(strings.Join(failing, ", ")))
	case len(all) > 0:
		c.Output.Title = fmt.Sprintf("%d warnings, none in migration.fail_on", len(all))
		if len(all) == 1 {
			c.Output.Title = "1 warning, not in migration.fail_on"
		}
	default:
		c.Output.Title = "No warnings"
	}
	c.Output.Summary = rep.MarkdownWithin(commentLimit, more)
	return c
}

// UnrehearsedCheck is the check run of a commit whose migration ran
// unwatched, or did not run: neutral, saying why, so that a required check
// does not wait forever.
func UnrehearsedCheck(commit, why, logURL string) CheckRun {
	c := CheckRun{Name: CheckName, HeadSHA: commit, Status: "completed", Conclusion: "neutral", DetailsURL: logURL}
	c.Output.Title = clipTitle("Not rehearsed: " + why)
	c.Output.Summary = "prenv has no rehearsal report for this commit's migration: " + why + ". prenv's log says more (a warning names what failed)."
	return c
}

func clipTitle(s string) string {
	if r := []rune(s); len(r) > 200 {
		return string(r[:199]) + "…"
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// truncate keeps the last n bytes of s, whole characters only.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + strings.ToValidUTF8(s[len(s)-n:], "")
}

// fence is a fenced code block that the text in it cannot close: the
// output of a pull request's build or migration may hold backticks.
func fence(s string) string {
	ticks := "```"
	for strings.Contains(s, ticks) {
		ticks += "`"
	}
	return ticks + "\n" + s + "\n" + ticks
}

// Reporter tells GitHub about environments: a deployment per commit with
// its statuses, and one sticky comment per pull request.
type Reporter struct {
	Client *Client
}

// Started creates the deployment of commit to the environment and marks it
// in progress; it returns the deployment's id.
func (r *Reporter) Started(ctx context.Context, repo string, v View) (int64, error) {
	id, err := r.Client.CreateDeployment(ctx, repo, v.Commit, v.Name, "prenv preview of "+short(v.Commit))
	if err != nil {
		return 0, err
	}
	return id, r.Client.SetDeploymentStatus(ctx, repo, id, DeploymentStatus{State: "in_progress", LogURL: v.LogURL, Description: "prenv is bringing it up"})
}

// Finished sets the deployment's outcome (success with the environment's
// URL, or failure with the reason and the log) and updates the comment.
func (r *Reporter) Finished(ctx context.Context, repo string, pr int, id int64, v View) error {
	var errs []string
	if id != 0 {
		s := DeploymentStatus{State: "success", EnvironmentURL: v.URL, LogURL: v.LogURL, Description: "ready"}
		if v.State != "ready" {
			s = DeploymentStatus{State: "failure", LogURL: v.LogURL, Description: firstLine(v.Error)}
		}
		if err := r.Client.SetDeploymentStatus(ctx, repo, id, s); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := r.Client.UpsertComment(ctx, repo, pr, Marker, Marker+"\n"+Summary(v)); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("report to GitHub: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Check posts a completed check run.
func (r *Reporter) Check(ctx context.Context, repo string, c CheckRun) error {
	_, err := r.Client.CreateCheckRun(ctx, repo, c)
	return err
}

// TornDown marks every deployment of the environment inactive and updates
// the comment.
func (r *Reporter) TornDown(ctx context.Context, repo string, pr int, v View) error {
	deps, err := r.Client.Deployments(ctx, repo, v.Name)
	if err != nil {
		return err
	}
	for _, d := range deps {
		desc := "torn down"
		if v.Reason != "" && v.Reason != "closed" {
			desc = "torn down: " + v.Reason
		}
		if err := r.Client.SetDeploymentStatus(ctx, repo, d.ID, DeploymentStatus{State: "inactive", Description: desc}); err != nil {
			return err
		}
	}
	return r.Client.UpsertComment(ctx, repo, pr, Marker, Marker+"\n"+Summary(v))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
