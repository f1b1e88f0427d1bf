package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/store"
)

var _ lifecycle.Reporter = (*Deployments)(nil)

// Deployments is the lifecycle's Reporter for GitHub: a deployment per run
// of up, its outcome, inactive deployments and the sticky comment once an
// environment is brought down (and why: closed, expired, orphaned).
type Deployments struct {
	Reporter *Reporter
	// Repo is the repository of k's pull request; "" reports nothing.
	Repo func(k env.Key) string
	// LogURL, if set, gives the address of k's log for the deployment.
	LogURL func(k env.Key) string
	// Background retries a failed report in the background, after a
	// minute, then longer (prenv serve); otherwise each report is tried
	// once, waited for, and a failure handed to Warn (the CLI).
	Background bool
	// Check posts the check run "migration rehearsal" on each commit whose
	// migration was rehearsed (migration.check); it fails on a failed
	// migration and on the warnings whose codes are in FailOn
	// (migration.fail_on).
	Check  bool
	FailOn []rehearsal.Code
	Warn   func(what string, err error)
	Log    *slog.Logger

	mu  sync.Mutex
	ids map[string]int64 // the deployment of each environment's run in progress
	wg  sync.WaitGroup
}

// Wait waits for the reports retried in the background.
func (d *Deployments) Wait() { d.wg.Wait() }

func (d *Deployments) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (d *Deployments) logURL(k env.Key) string {
	if d.LogURL != nil {
		return d.LogURL(k)
	}
	return ""
}

// Started implements lifecycle.Reporter.
func (d *Deployments) Started(ctx context.Context, e store.Env, commit string) {
	repo := d.Repo(e.Key)
	if repo == "" {
		return
	}
	// The outcome needs the deployment's id: this one is waited for
	// (bounded), never retried later.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	id, err := d.Reporter.Started(ctx, repo, View{Name: e.Key.Name(), Commit: commit, LogURL: d.logURL(e.Key)})
	if err != nil {
		d.warn("report the deployment to GitHub", e.Key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ids == nil {
		d.ids = map[string]int64{}
	}
	d.ids[e.Key.String()] = id
}

// Finished implements lifecycle.Reporter.
func (d *Deployments) Finished(ctx context.Context, e store.Env, r store.Run) {
	repo := d.Repo(e.Key)
	if repo == "" {
		return
	}
	d.mu.Lock()
	id := d.ids[e.Key.String()]
	delete(d.ids, e.Key.String())
	d.mu.Unlock()
	v := RunView(e, r, d.logURL(e.Key))
	d.send(ctx, "report the result to GitHub", e.Key, func(ctx context.Context) error {
		return d.Reporter.Finished(ctx, repo, e.Key.PR, id, v)
	})
	if !d.Check || r.Commit == "" {
		return
	}
	var c CheckRun
	switch {
	case v.Migration != nil:
		c = MigrationCheck(*v.Migration, r.Commit, d.FailOn, v.LogURL, v.reportCommand())
	case r.Ran("migrate"):
		c = UnrehearsedCheck(r.Commit, "the migration ran unwatched (its database did not answer from where prenv runs, or the report could not be made)", v.LogURL)
	default:
		c = UnrehearsedCheck(r.Commit, "this up ran no migration (an earlier up of the commit did, unwatched, or this one ended before it)", v.LogURL)
	}
	d.send(ctx, "post the migration rehearsal's check run", e.Key, func(ctx context.Context) error {
		return d.Reporter.Check(ctx, repo, c)
	})
}

// TornDown implements lifecycle.Reporter.
func (d *Deployments) TornDown(ctx context.Context, e store.Env, why lifecycle.Why) {
	repo := d.Repo(e.Key)
	if repo == "" {
		return
	}
	v := View{Name: e.Key.Name(), State: "deleted", Reason: why.Reason, Note: why.Detail, Back: why.Back}
	d.send(ctx, "report the teardown to GitHub", e.Key, func(ctx context.Context) error {
		return d.Reporter.TornDown(ctx, repo, e.Key.PR, v)
	})
}

// RunView is what GitHub is told of e after run r.
func RunView(e store.Env, r store.Run, logURL string) View {
	v := View{Name: e.Key.Name(), PR: e.Key.PR, State: string(e.State), URL: e.URL, Commit: e.Commit, Attempted: e.DesiredCommit,
		Generation: e.Database.Generation, Error: e.Error, LogURL: logURL}
	if e.Closed {
		v.Attempted = ""
	}
	for _, s := range r.Steps {
		v.Steps = append(v.Steps, Step{Name: s.Name, Seconds: s.Seconds})
	}
	if r.Output != "" && e.State == env.StateFailed {
		v.Error = strings.TrimSpace(v.Error + "\n" + r.Output)
	}
	if len(r.Migration) > 0 {
		var rep rehearsal.Report
		if err := json.Unmarshal(r.Migration, &rep); err == nil {
			v.Migration = &rep
		}
	}
	return v
}

func (d *Deployments) warn(what string, k env.Key, err error) {
	if d.Warn != nil {
		d.Warn(what, err)
		return
	}
	d.log().Warn(what+" failed", "env", k.Name(), "error", err)
}

// send reports with f: once (the CLI), or retried in the background
// (serve) so that a report never holds up or fails a run.
func (d *Deployments) send(ctx context.Context, what string, k env.Key, f func(context.Context) error) {
	if !d.Background {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := f(ctx); err != nil {
			d.warn(what, k, err)
		}
		return
	}
	log := d.log().With("env", k.Name())
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		wait := time.Minute
		for attempt := 1; ; attempt++ {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			err := f(rctx)
			cancel()
			if err == nil || ctx.Err() != nil {
				return
			}
			var rl *RateLimitError
			if errors.As(err, &rl) {
				wait = max(wait, time.Until(rl.Until))
			}
			if attempt == 5 {
				log.Error(fmt.Sprintf("%s failed; giving up", what), "attempts", attempt, "error", err)
				return
			}
			log.Warn(fmt.Sprintf("%s failed; trying again", what), "in", wait, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
	}()
}

var _ lifecycle.PullRequests = PullLister{}

// PullLister is the sweeper's list of open pull requests, from GitHub.
type PullLister struct{ Client *Client }

// OpenPulls implements lifecycle.PullRequests.
func (p PullLister) OpenPulls(ctx context.Context, repo string) ([]lifecycle.OpenPull, error) {
	prs, err := p.Client.OpenPullRequests(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := make([]lifecycle.OpenPull, 0, len(prs))
	for _, pr := range prs {
		o := lifecycle.OpenPull{Number: pr.Number}
		for _, l := range pr.Labels {
			o.Labels = append(o.Labels, l.Name)
		}
		out = append(out, o)
	}
	return out, nil
}
