package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/store"
)

// Reconcile compares the environments with the open pull requests, for the
// deliveries GitHub never made (it does not redeliver failed ones by
// itself): an open pull request that should have an environment and has
// none gets one; an environment whose pull request GitHub says is closed is
// brought down. It queues what it finds like deliveries, so the worker's
// rules apply. If listing fails, or lists nothing while environments exist,
// it changes nothing and says why.
func (w *Worker) Reconcile(ctx context.Context) error {
	w.init()
	if w.GitHub == nil {
		return fmt.Errorf("reconcile needs GitHub credentials (a GitHub App or a token)")
	}
	envs, err := w.Store.List(ctx)
	if err != nil {
		return err
	}
	active := map[string][]store.Env{} // by repository
	repos := map[string]bool{}
	for _, r := range w.Policy.Repos {
		repos[r] = true
	}
	if w.Policy.DefaultRepo != "" {
		repos[w.Policy.DefaultRepo] = true
	}
	for _, e := range envs {
		repo := e.Key.Repo
		if repo == "" {
			repo = w.Policy.DefaultRepo
		}
		if repo == "" || !w.Policy.Accepts(repo) {
			continue
		}
		repos[repo] = true
		if e.State != env.StateDeleted && !e.Closed {
			active[repo] = append(active[repo], e)
		}
	}
	var problems []string
	for repo := range repos {
		if err := w.reconcileRepo(ctx, repo, active[repo]); err != nil {
			problems = append(problems, err.Error())
		}
	}
	w.Notify()
	if len(problems) > 0 {
		return fmt.Errorf("reconcile: %s", strings.Join(problems, "; "))
	}
	return nil
}

func (w *Worker) reconcileRepo(ctx context.Context, repo string, active []store.Env) error {
	open, err := w.GitHub.OpenPullRequests(ctx, repo)
	if err != nil {
		return fmt.Errorf("listing the open pull requests of %s failed, so nothing was changed: %v", repo, err)
	}
	if len(open) == 0 && len(active) > 0 {
		return fmt.Errorf("GitHub lists no open pull requests for %s while %d environments exist: nothing was changed (closes arrive as deliveries; if they were all really closed, bring them down with prenv down)", repo, len(active))
	}
	byNumber := map[int]github.PullRequest{}
	for _, pr := range open {
		byNumber[pr.Number] = pr
		k, err := w.Policy.Key(repo, pr.Number)
		if err != nil {
			continue
		}
		ok, _ := w.Policy.Wants(pr)
		e, gerr := w.Store.Get(ctx, k)
		has := gerr == nil && e.State != env.StateDeleted && !e.Closed
		// The sweeper brought it down for lack of activity: only a push
		// (another head) or the keep label brings it back.
		expired := gerr == nil && !has && w.Policy.expiredAt(e, pr)
		if ok && !expired && (!has || e.DesiredCommit != pr.Head.SHA) {
			w.Log.Info("reconcile: an open pull request without its environment at its head", "repo", repo, "pr", pr.Number, "head", pr.Head.SHA)
			w.enqueue(ctx, repo, pr, "reconcile:"+repo+"#"+fmt.Sprint(pr.Number)+":"+pr.Head.SHA)
		}
	}
	for _, e := range active {
		if _, open := byNumber[e.Key.PR]; open {
			continue
		}
		// Not in the list: ask about this one before bringing anything down.
		pr, err := w.GitHub.PullRequest(ctx, repo, e.Key.PR)
		if err != nil {
			w.Log.Warn("reconcile: cannot confirm a pull request's state; leaving its environment", "repo", repo, "pr", e.Key.PR, "error", err)
			continue
		}
		if pr.State == "closed" {
			w.Log.Info("reconcile: the pull request is closed; bringing its environment down", "repo", repo, "pr", e.Key.PR)
			w.enqueue(ctx, repo, pr, "reconcile:"+repo+"#"+fmt.Sprint(pr.Number)+":closed:"+pr.UpdatedAt.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// enqueue queues pr's current state as a delivery of id.
func (w *Worker) enqueue(ctx context.Context, repo string, pr github.PullRequest, id string) {
	action := "synchronize"
	if pr.State == "closed" {
		action = "closed"
	}
	body, _ := json.Marshal(map[string]any{"action": action, "number": pr.Number, "pull_request": pr, "repository": map[string]string{"full_name": repo}})
	if _, err := w.Store.Enqueue(ctx, store.Delivery{ID: id, Event: "pull_request", Body: body}); err != nil {
		w.Log.Error("reconcile: queue", "repo", repo, "pr", pr.Number, "error", err)
	}
}

// Reconciling runs Reconcile every interval until ctx ends.
func (w *Worker) Reconciling(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.Reconcile(ctx); err != nil && ctx.Err() == nil {
			w.Log.Warn(err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
