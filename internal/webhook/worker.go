package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
)

// Policy says which pull requests get an environment.
type Policy struct {
	// DefaultRepo keeps the short names (pr-N) for its pull requests.
	DefaultRepo string
	// Repos, if set, are the only repositories whose deliveries count.
	Repos []string
	// Label, if set, is the opt-in label; OptOutLabel keeps a pull request
	// without an environment.
	Label, OptOutLabel string
	// Forks is off or label; with label, a fork's pull request needs
	// ForkLabel (which only maintainers can set): its code would run with
	// the environment's database credentials.
	Forks, ForkLabel string
	// KeepLabel pins an environment against expiry (sweep.keep_label):
	// adding it to a pull request whose environment expired brings it
	// back.
	KeepLabel string
}

// Wants says whether pr should have an environment, and if not why.
func (p Policy) Wants(pr github.PullRequest) (bool, string) {
	switch {
	case pr.State != "open":
		return false, "the pull request is " + pr.State
	case p.OptOutLabel != "" && pr.HasLabel(p.OptOutLabel):
		return false, "the pull request carries the opt-out label " + p.OptOutLabel
	case p.Label != "" && !pr.HasLabel(p.Label):
		return false, "the pull request lacks the opt-in label " + p.Label
	case pr.Fork() && p.Forks != "label":
		return false, "the pull request comes from a fork, and github.forks is off (fork code would run with the environment's database credentials)"
	case pr.Fork() && !pr.HasLabel(p.ForkLabel):
		return false, "the pull request comes from a fork and lacks the label " + p.ForkLabel + " a maintainer sets to preview it"
	}
	return true, ""
}

// expiredAt reports whether e was brought down by the sweeper for lack of
// activity while pr was at its head, and pr does not carry the keep
// label: only a push or the label brings such an environment back.
func (p Policy) expiredAt(e store.Env, pr github.PullRequest) bool {
	return e.DownReason == lifecycle.ReasonExpired && e.DownCommit == pr.Head.SHA &&
		(p.KeepLabel == "" || !pr.HasLabel(p.KeepLabel))
}

func orNone(label string) string {
	if label == "" {
		return "(none: sweep.keep_label is empty)"
	}
	return label
}

// Accepts reports whether deliveries for repo count.
func (p Policy) Accepts(repo string) bool {
	if len(p.Repos) == 0 {
		return true
	}
	for _, r := range p.Repos {
		if strings.EqualFold(r, repo) {
			return true
		}
	}
	return false
}

// Repo is the repository of k's pull request: its own, or DefaultRepo.
func (p Policy) Repo(k env.Key) string {
	if k.Repo != "" {
		return k.Repo
	}
	return p.DefaultRepo
}

// Key is the environment of repo's pull request n.
func (p Policy) Key(repo string, n int) (env.Key, error) {
	if strings.EqualFold(repo, p.DefaultRepo) {
		repo = ""
	}
	return env.NewKey(repo, n)
}

// Store is what the worker needs of the store.
type Store interface {
	store.Store
	store.Queue
}

// Worker carries out queued deliveries.
type Worker struct {
	Store     Store
	Lifecycle *lifecycle.Lifecycle
	Policy    Policy
	// GitHub, if set, answers when a delivery leaves doubt. Reports go
	// through the Lifecycle's Reporter.
	GitHub *github.Client
	// Concurrency bounds the environments worked on at once (default 4).
	Concurrency int
	Log         *slog.Logger
	// ID names this replica in the claims it takes on deliveries, when the
	// store is shared (store.Claimer); ClaimTTL is how long a claim lasts
	// unless renewed (default 30s): a replica that dies lets its
	// deliveries go to another after that.
	ID       string
	ClaimTTL time.Duration

	carried atomic.Int64
	once    sync.Once
	wake    chan struct{}
	slots   chan struct{}
	mu      sync.Mutex
	boxes   map[string]*mailbox // per environment
	taken   map[string]bool     // deliveries dispatched
	running sync.WaitGroup
}

type action struct {
	seq      int64 // the request as recorded already (store.Claimer); 0: the run records it
	delivery string
	kind     string // up | down
	key      env.Key
	repo     string
	pr       int
	sha      string
}

type mailbox struct{ next *action }

func (w *Worker) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		n := w.Concurrency
		if n < 1 {
			n = 4
		}
		w.slots = make(chan struct{}, n)
		w.boxes = map[string]*mailbox{}
		w.taken = map[string]bool{}
		if w.Log == nil {
			w.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Carried is how many deliveries this worker carried out (not ignored).
func (w *Worker) Carried() int { return int(w.carried.Load()) }

// Notify wakes the worker: a delivery was queued.
func (w *Worker) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run carries out deliveries until ctx ends, then waits for the runs in
// progress (which stop at their next safe point).
func (w *Worker) Run(ctx context.Context) {
	w.init()
	defer w.running.Wait()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	if _, ok := w.Store.(store.Claimer); ok {
		// Claims are renewed until the runs in progress have stopped, not
		// only until shutdown begins.
		renewing, stop := context.WithCancel(context.WithoutCancel(ctx))
		defer stop()
		defer w.running.Wait()
		go w.renew(renewing)
	}
	for {
		w.Drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-tick.C:
		}
	}
}

// maxClaims is how many times replicas claim a delivery before it is
// given up: one that kills whoever runs it does not go round forever.
const maxClaims = 5

func (w *Worker) claimTTL() time.Duration {
	if w.ClaimTTL > 0 {
		return w.ClaimTTL
	}
	return 30 * time.Second
}

// renew keeps this replica's claims on the deliveries it works on alive,
// every third of their time.
func (w *Worker) renew(ctx context.Context) {
	c := w.Store.(store.Claimer)
	t := time.NewTicker(w.claimTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.taken))
		for id := range w.taken {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		lost, err := c.Renew(ctx, w.ID, ids, w.claimTTL())
		if err != nil {
			w.Log.Warn("renew the claims on webhook deliveries", "error", err)
			continue
		}
		for _, id := range lost {
			w.Log.Warn("a webhook delivery this replica works on was claimed by another (its claim ran out, or the store lost this replica's presence)", "delivery", id)
		}
	}
}

// Drain dispatches every queued delivery once.
func (w *Worker) Drain(ctx context.Context) {
	w.init()
	var ds []store.Delivery
	var err error
	if c, ok := w.Store.(store.Claimer); ok {
		// As many as this replica has room for: the rest stay for
		// whichever replica is free first.
		w.mu.Lock()
		free := cap(w.slots) - len(w.taken)
		w.mu.Unlock()
		if free <= 0 {
			return
		}
		ds, err = c.Claim(ctx, w.ID, free, w.claimTTL())
	} else {
		ds, err = w.Store.Queued(ctx, 200)
	}
	if err != nil {
		w.Log.Error("read the webhook queue", "error", err)
		return
	}
	for _, d := range ds {
		if _, ok := w.Store.(store.Claimer); ok && d.Attempts > maxClaims {
			w.mu.Lock()
			w.taken[d.ID] = true
			w.mu.Unlock()
			w.Log.Error("webhook delivery given up", "delivery", d.ID, "claims", d.Attempts)
			w.finish(d.ID, "failed", fmt.Sprintf("claimed %d times and never carried out: a replica may have crashed on it each time, or lost it (its environment's lock, or its own presence in the store); see the replicas' logs", d.Attempts-1))
			continue
		}
		w.mu.Lock()
		taken := w.taken[d.ID]
		w.taken[d.ID] = true
		w.mu.Unlock()
		if taken {
			continue
		}
		a, why, err := w.decide(ctx, d)
		switch {
		case err != nil:
			w.Log.Warn("webhook delivery failed", "delivery", d.ID, "error", err)
			w.finish(d.ID, "failed", err.Error())
		case a == nil:
			w.Log.Info("webhook delivery ignored", "delivery", d.ID, "why", why)
			w.finish(d.ID, "ignored", why)
		default:
			w.dispatch(ctx, a)
		}
	}
}

func (w *Worker) finish(id, state, note string) {
	if c, ok := w.Store.(store.Claimer); ok {
		// Only while this replica holds it: a claim that ran out is
		// another replica's to finish.
		if held, err := c.FinishClaimed(context.Background(), w.ID, id, state, note); err != nil {
			w.Log.Error("record a delivery's outcome", "delivery", id, "error", err)
		} else if !held {
			w.Log.Warn("a delivery's outcome not recorded: another replica claimed it since", "delivery", id, "outcome", state)
		}
	} else if err := w.Store.Finish(context.Background(), id, state, note); err != nil {
		w.Log.Error("record a delivery's outcome", "delivery", id, "error", err)
	}
	// Handed back ("queued") or finished, it is no longer this worker's:
	// kept among those taken, it would be renewed in vain and never
	// claimed by this replica again.
	w.mu.Lock()
	delete(w.taken, id)
	w.mu.Unlock()
	w.Notify() // room for another
}

// decide turns a delivery into an action, or nil and why not.
func (w *Worker) decide(ctx context.Context, d store.Delivery) (*action, string, error) {
	if d.Event != "pull_request" {
		return nil, "event " + d.Event + " is not one prenv acts on", nil
	}
	e, err := github.ParsePullRequestEvent(d.Body)
	if err != nil {
		return nil, "", err
	}
	repo := e.Repository.FullName
	if !w.Policy.Accepts(repo) {
		return nil, "repository " + repo + " is not in github.repositories", nil
	}
	k, err := w.Policy.Key(repo, e.Number)
	if err != nil {
		return nil, "", err
	}
	pr := e.PullRequest
	if e.Action == "closed" {
		pr.State = "closed"
	}
	if (e.Action == "labeled" || e.Action == "unlabeled") && w.Policy.Label == "" && w.Policy.OptOutLabel == "" && w.Policy.ForkLabel == "" && w.Policy.KeepLabel == "" {
		return nil, "no label opt-in or opt-out is configured", nil
	}
	if pr.UpdatedAt.IsZero() && w.GitHub != nil {
		// No time to order it by: ask GitHub how the pull request is now.
		if pr, err = w.GitHub.PullRequest(ctx, repo, e.Number); err != nil {
			return nil, "", fmt.Errorf("ask GitHub about %s#%d: %w", repo, e.Number, err)
		}
	}
	// The observation orders deliveries by GitHub's time; with replicas
	// sharing the store it records the request with it, in one step, so
	// that requests for one pull request are recorded in GitHub's order
	// whichever replica takes which delivery.
	claimer, _ := w.Store.(store.Claimer)
	observe := func(a *action) (bool, error) {
		if claimer == nil || a == nil {
			return w.Store.ObservePull(ctx, k, pr.State, pr.UpdatedAt)
		}
		news, seq, err := claimer.ObserveAndRequest(ctx, k, pr.State, pr.UpdatedAt, k.Name(), a.sha, a.kind == "down")
		a.seq = seq
		return news, err
	}
	outOfOrder := fmt.Sprintf("out of order: a newer state of %s#%d was already seen (a close is never undone by a late delivery)", repo, e.Number)
	ignore := func(why string) (*action, string, error) {
		if fresh, err := observe(nil); err != nil {
			return nil, "", err
		} else if !fresh {
			return nil, outOfOrder, nil
		}
		return nil, why, nil
	}
	act := func(a *action) (*action, string, error) {
		if fresh, err := observe(a); err != nil {
			return nil, "", err
		} else if !fresh {
			return nil, outOfOrder, nil
		}
		return a, "", nil
	}
	a := &action{delivery: d.ID, key: k, repo: repo, pr: e.Number, sha: pr.Head.SHA}
	if ok, why := w.Policy.Wants(pr); !ok {
		if claimer != nil {
			// Recorded under the pull request's lock, so an open that
			// another replica records at the same moment is ordered
			// against it; no record means nothing to bring down.
			a.kind, a.sha = "down", ""
			if news, err := observe(a); err != nil || !news {
				if err == nil {
					return nil, outOfOrder, nil
				}
				return nil, "", err
			}
			if a.seq == 0 {
				return nil, why, nil
			}
			return a, "", nil
		}
		if e, err := w.Store.Get(ctx, k); errors.Is(err, store.ErrNotFound) || err == nil && e.State == env.StateDeleted {
			return ignore(why) // nothing to bring down
		}
		a.kind, a.sha = "down", ""
		return act(a)
	}
	if pr.Head.SHA == "" {
		return nil, "", fmt.Errorf("the delivery for %s#%d names no head commit", repo, e.Number)
	}
	if rec, err := w.Store.Get(ctx, k); err == nil && rec.Closed && w.Policy.expiredAt(rec, pr) {
		return ignore(fmt.Sprintf("%s expired at this commit: a push, or the label %s, brings it back", k.Name(), orNone(w.Policy.KeepLabel)))
	}
	a.kind = "up"
	return act(a)
}

// dispatch runs a in its environment's turn: one run per environment at a
// time, in delivery order; a newer action supersedes the one running (it
// stops at its next step boundary) and replaces any waiting.
func (w *Worker) dispatch(ctx context.Context, a *action) {
	id := a.key.String()
	w.mu.Lock()
	_, busy := w.boxes[id]
	w.mu.Unlock()
	if busy && a.seq == 0 {
		// Record the newer request first, so that the running one stops
		// early. Only then may the runner take a: recorded after a's own
		// run began, the request would supersede that run too, and nothing
		// would carry it out.
		if err := w.Lifecycle.Supersede(ctx, a.key, a.sha, a.kind == "down"); err != nil {
			w.Log.Warn("record a newer request", "env", a.key.Name(), "error", err)
		}
	}
	w.mu.Lock()
	if box, busy := w.boxes[id]; busy {
		old := box.next
		box.next = a
		w.mu.Unlock() // finish takes the lock
		if old != nil {
			w.finish(old.delivery, "done", "superseded by delivery "+a.delivery)
		}
		return
	}
	w.boxes[id] = &mailbox{}
	w.mu.Unlock()
	w.running.Add(1)
	go func() {
		defer w.running.Done()
		for a != nil {
			w.carryOut(ctx, a)
			w.mu.Lock()
			box := w.boxes[id]
			a, box.next = box.next, nil
			if a == nil {
				delete(w.boxes, id)
			}
			w.mu.Unlock()
		}
	}()
}

func (w *Worker) carryOut(ctx context.Context, a *action) {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return // still queued: carried out after the restart
	}
	defer func() { <-w.slots }()
	w.carried.Add(1)
	log := w.Log.With("env", a.key.Name(), "delivery", a.delivery)
	var err error
	switch a.kind {
	case "up":
		log.Info("up from a webhook", "commit", a.sha)
		_, err = w.Lifecycle.Up(ctx, lifecycle.UpOptions{Key: a.key, Commit: a.sha, Seq: a.seq})
	case "down":
		log.Info("down from a webhook")
		_, err = w.Lifecycle.Down(ctx, lifecycle.DownOptions{Key: a.key, Seq: a.seq})
	}
	switch {
	case ctx.Err() != nil:
		// Stopped by a shutdown: the delivery stays queued, and another
		// replica may take it at once.
		w.mu.Lock()
		delete(w.taken, a.delivery)
		w.mu.Unlock()
		if _, ok := w.Store.(store.Claimer); ok {
			w.finish(a.delivery, "queued", "handed back by a replica that stopped")
		}
	case errors.Is(err, lifecycle.ErrLockLost):
		// Carried on by whichever replica holds the lock now, or by this
		// one again.
		w.finish(a.delivery, "queued", "the environment's lock was lost: handed back")
	case errors.Is(err, lifecycle.ErrSuperseded):
		w.finish(a.delivery, "done", "superseded by a newer request")
	case err != nil:
		log.Warn("webhook run failed", "error", err)
		w.finish(a.delivery, "failed", err.Error())
	default:
		w.finish(a.delivery, "done", "")
	}
}
