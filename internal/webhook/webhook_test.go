package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/sqlite"
	"github.com/prenv/prenv/internal/webhook"
)

const secret = "It's a Secret to Everybody"

// world is prenv serve's webhook side on in-memory providers and a real
// store, with a fake GitHub.
type world struct {
	t    *testing.T
	dir  string
	st   *sqlite.Store
	rt   *rtmemory.Runtime
	db   *dbmemory.World
	w    *webhook.Worker
	srv  *httptest.Server
	gh   *githubtest.Server
	time time.Time
}

func newWorld(t *testing.T, policy webhook.Policy) *world {
	w := &world{t: t, dir: t.TempDir(), rt: rtmemory.New("prenv"), db: dbmemory.NewWorld(), time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	w.db.SetGolden(1)
	w.gh = githubtest.New(t, "tok")
	w.open(policy)
	return w
}

// open (re)starts the server side over the same store: a restart.
func (w *world) open(policy webhook.Policy) {
	st, err := sqlite.Open(context.Background(), filepath.Join(w.dir, "prenv.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { st.Close() })
	w.st = st
	client := &github.Client{BaseURL: w.gh.URL, Tokens: github.StaticToken("tok")}
	reports := &github.Deployments{Reporter: &github.Reporter{Client: client}, Background: true,
		Repo: func(k env.Key) string { return policy.Repo(k) }}
	w.t.Cleanup(reports.Wait)
	w.w = &webhook.Worker{Store: st, Policy: policy, GitHub: client,
		Lifecycle: &lifecycle.Lifecycle{Store: st, Cloner: &dbmemory.Cloner{World: w.db, Owner: "prenv"}, Runtime: w.rt,
			LockDir: filepath.Join(w.dir, "locks"), Owner: "prenv", TTL: time.Hour, Reporter: reports}}
	w.srv = httptest.NewServer(&webhook.Receiver{Secret: []byte(secret), Queue: st, Notify: w.w.Notify})
	w.t.Cleanup(w.srv.Close)
}

// event is a pull_request delivery's body in GitHub's shape.
func (w *world) event(action string, n int, sha, state string, at time.Time, labels ...string) []byte {
	ls := []map[string]string{}
	for _, l := range labels {
		ls = append(ls, map[string]string{"name": l})
	}
	body, _ := json.Marshal(map[string]any{"action": action, "number": n, "pull_request": map[string]any{
		"number": n, "state": state, "updated_at": at.Format(time.RFC3339), "labels": ls,
		"head": map[string]any{"sha": sha, "ref": "feature", "repo": map[string]any{"full_name": "acme/shop"}},
		"base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}},
		"repository": map[string]any{"full_name": "acme/shop"}})
	return body
}

func (w *world) post(id, event string, body []byte, sig string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+webhook.Path, bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m["message"]
}

func (w *world) deliver(id, event string, body []byte) int {
	code, _ := w.post(id, event, body, github.Sign([]byte(secret), body))
	return code
}

// settle carries out everything queued and waits for the runs.
func (w *world) settle() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.w.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, _ := w.st.Queued(context.Background(), 10)
		if len(q) == 0 {
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("deliveries still queued: %v", q)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func (w *world) env(n int) store.Env {
	e, err := w.st.Get(context.Background(), env.Key{PR: n})
	if err != nil {
		return store.Env{}
	}
	return e
}

func queued(t *testing.T, st *sqlite.Store) int {
	q, err := st.Queued(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(q)
}

func TestReceiver_RefusesWhatIsNotSignedAndQueuesNothing(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	body := w.event("opened", 1, "c1", "open", w.time)
	for name, sig := range map[string]string{"missing": "", "malformed": "sha256=xyz", "sha1 only": "sha1=abcdef", "wrong": github.Sign([]byte("other"), body)} {
		if code, msg := w.post("d-"+name, "pull_request", body, sig); code != 401 || !strings.Contains(msg, "X-Hub-Signature-256") {
			t.Errorf("%s signature: %d %s", name, code, msg)
		}
	}
	big := bytes.Repeat([]byte("x"), github.MaxBody+1)
	if code, _ := w.post("d-big", "pull_request", big, github.Sign([]byte(secret), big)); code != 413 {
		t.Errorf("a body over 25 MB: %d", code)
	}
	if n := queued(t, w.st); n != 0 {
		t.Fatalf("%d deliveries queued", n)
	}
	if code := w.deliver("d-ping", "ping", []byte(`{"zen":"Keep it logically awesome."}`)); code != 200 {
		t.Errorf("ping: %d", code)
	}
	if code := w.deliver("d-push", "push", []byte(`{"ref":"refs/heads/main"}`)); code/100 != 2 {
		t.Errorf("an unknown event: %d", code)
	}
	if code := w.deliver("d-edit", "pull_request", w.event("edited", 1, "c1", "open", w.time)); code/100 != 2 {
		t.Errorf("an unknown action: %d", code)
	}
	if code, msg := w.post("d-json", "pull_request", []byte("not json"), github.Sign([]byte(secret), []byte("not json"))); code != 400 || !strings.Contains(msg, "not JSON") {
		t.Errorf("a body that is not JSON: %d %s", code, msg)
	}
	noNumber := []byte(`{"action":"opened","pull_request":{"state":"open"},"repository":{"full_name":"acme/shop"}}`)
	if code, msg := w.post("d-nonum", "pull_request", noNumber, github.Sign([]byte(secret), noNumber)); code != 400 || !strings.Contains(msg, "number") {
		t.Errorf("no number: %d %s", code, msg)
	}
	if n := queued(t, w.st); n != 0 {
		t.Fatalf("%d deliveries queued", n)
	}
	// Without a secret the endpoint refuses everything.
	off := httptest.NewServer(&webhook.Receiver{Queue: w.st})
	defer off.Close()
	resp, _ := http.Post(off.URL+webhook.Path, "application/json", bytes.NewReader(body))
	if resp.StatusCode != 503 {
		t.Fatalf("without a secret: %d", resp.StatusCode)
	}
}

func TestWorker_OpenedSynchronizeClosedWithReportsAndOneComment(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	w.deliver("d1", "pull_request", w.event("opened", 7, "c1", "open", w.time))
	w.settle()
	if e := w.env(7); e.State != env.StateReady || e.Commit != "c1" {
		t.Fatalf("after opened: %+v", e)
	}
	w.deliver("d2", "pull_request", w.event("synchronize", 7, "c2", "open", w.time.Add(time.Minute)))
	w.settle()
	w.deliver("d3", "pull_request", w.event("synchronize", 7, "c3", "open", w.time.Add(2*time.Minute)))
	w.settle()
	if e := w.env(7); e.Commit != "c3" {
		t.Fatalf("after two pushes: %+v", e)
	}
	w.deliver("d4", "pull_request", w.event("closed", 7, "c3", "closed", w.time.Add(3*time.Minute)))
	w.settle()
	if e := w.env(7); e.State != env.StateDeleted {
		t.Fatalf("after closed: %+v", e)
	}
	waitFor(t, func() bool {
		return strings.HasSuffix(strings.Join(w.gh.StatusesOf("acme/shop", "pr-7"), " "), "c3:inactive")
	})
	var ours int
	for _, c := range w.gh.CommentsOf("acme/shop", 7) {
		if strings.Contains(c.Body, github.Marker) {
			ours++
		}
	}
	if ours != 1 {
		t.Fatalf("%d prenv comments after three pushes and a close", ours)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500 && !cond(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !cond() {
		t.Fatal("not within 5s")
	}
}

func TestWorker_TheSameDeliveryTwiceIsCarriedOutOnce(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	body := w.event("opened", 8, "c1", "open", w.time)
	if w.deliver("same", "pull_request", body) != 202 {
		t.Fatal("first delivery not accepted")
	}
	w.settle()
	if code := w.deliver("same", "pull_request", body); code != 200 {
		t.Fatalf("a redelivery: %d", code)
	}
	w.settle()
	if fmt.Sprint(w.rt.Migrations) != "[pr-8@c1]" {
		t.Fatalf("migrations %v: want one", w.rt.Migrations)
	}
}

func TestWorker_ADeliveryAcceptedBeforeARestartIsCarriedOutAfterIt(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	w.deliver("before-restart", "pull_request", w.event("opened", 9, "c1", "open", w.time))
	if queued(t, w.st) != 1 {
		t.Fatal("not queued")
	}
	w.st.Close()
	w.open(webhook.Policy{DefaultRepo: "acme/shop"}) // a new process over the same PRENV_HOME
	w.settle()
	if e := w.env(9); e.State != env.StateReady || e.Commit != "c1" {
		t.Fatalf("after the restart: %+v", e)
	}
}

func TestWorker_ACloseIsNeverUndoneByALateSynchronize(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	w.deliver("o", "pull_request", w.event("opened", 10, "c1", "open", w.time))
	w.settle()
	w.deliver("c", "pull_request", w.event("closed", 10, "c2", "closed", w.time.Add(2*time.Minute)))
	// GitHub delivers the push made before the close after it.
	w.deliver("s", "pull_request", w.event("synchronize", 10, "c2", "open", w.time.Add(time.Minute)))
	w.settle()
	if e := w.env(10); e.State != env.StateDeleted {
		t.Fatalf("a late synchronize resurrected it: %+v", e)
	}
	d, _ := w.st.Delivery(context.Background(), "s")
	if d.State != "ignored" || !strings.Contains(d.Note, "out of order") {
		t.Fatalf("the late delivery: %+v", d)
	}
	// Reopening is newer, and brings it back.
	w.deliver("r", "pull_request", w.event("reopened", 10, "c2", "open", w.time.Add(3*time.Minute)))
	w.settle()
	if e := w.env(10); e.State != env.StateReady || e.Commit != "c2" {
		t.Fatalf("after reopened: %+v", e)
	}
}

func TestWorker_ForkPullRequestsAreOffUnlessAMaintainerLabelsThem(t *testing.T) {
	fork := func(w *world, action string, labels ...string) []byte {
		var m map[string]any
		json.Unmarshal(w.event(action, 11, "f1", "open", w.time.Add(time.Duration(len(labels))*time.Minute), labels...), &m)
		m["pull_request"].(map[string]any)["head"].(map[string]any)["repo"] = map[string]any{"full_name": "stranger/shop", "fork": true}
		b, _ := json.Marshal(m)
		return b
	}
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	w.deliver("f", "pull_request", fork(w, "opened"))
	w.settle()
	if e := w.env(11); e.Name != "" {
		t.Fatalf("a fork's pull request got an environment with forks off: %+v", e)
	}
	d, _ := w.st.Delivery(context.Background(), "f")
	if !strings.Contains(d.Note, "fork") {
		t.Fatalf("why: %q", d.Note)
	}
	w2 := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Forks: "label", ForkLabel: "safe-to-preview"})
	w2.deliver("f1", "pull_request", fork(w2, "opened"))
	w2.settle()
	if e := w2.env(11); e.Name != "" {
		t.Fatal("a fork without the label got an environment")
	}
	w2.deliver("f2", "pull_request", fork(w2, "labeled", "safe-to-preview"))
	w2.settle()
	if e := w2.env(11); e.State != env.StateReady {
		t.Fatalf("a labelled fork: %+v", e)
	}
}

func TestWorker_OptInLabel(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Label: "preview"})
	w.deliver("a", "pull_request", w.event("opened", 12, "c1", "open", w.time))
	w.settle()
	if e := w.env(12); e.Name != "" {
		t.Fatal("an unlabelled pull request got an environment")
	}
	w.deliver("b", "pull_request", w.event("labeled", 12, "c1", "open", w.time.Add(time.Minute), "preview"))
	w.settle()
	if e := w.env(12); e.State != env.StateReady {
		t.Fatalf("labelled: %+v", e)
	}
	w.deliver("c", "pull_request", w.event("unlabeled", 12, "c1", "open", w.time.Add(2*time.Minute)))
	w.settle()
	if e := w.env(12); e.State != env.StateDeleted {
		t.Fatalf("unlabelled: %+v", e)
	}
}

func TestReconcile_ConvergesButChangesNothingWhenGitHubCannotSay(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	pr := func(n int, sha, state string) githubtest.PR {
		return githubtest.PR{"number": n, "state": state, "updated_at": w.time.Format(time.RFC3339),
			"head": map[string]any{"sha": sha, "repo": map[string]any{"full_name": "acme/shop"}}, "base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}
	}
	w.deliver("o", "pull_request", w.event("opened", 20, "c1", "open", w.time.Add(-time.Hour)))
	w.settle()
	// The listing fails: nothing changes, and the error says so.
	w.gh.PullsError = 502
	if err := w.w.Reconcile(context.Background()); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("a failing list: %v", err)
	}
	w.gh.PullsError = 0
	// The list is empty while environments exist: nothing changes.
	w.gh.SetPulls("acme/shop")
	if err := w.w.Reconcile(context.Background()); err == nil || !strings.Contains(err.Error(), "no open pull requests") {
		t.Fatalf("an empty list: %v", err)
	}
	w.settle()
	if e := w.env(20); e.State != env.StateReady {
		t.Fatalf("after reconciles that could not tell: %+v", e)
	}
	// GitHub missed two deliveries: #21 opened, #20 closed.
	w.gh.SetPulls("acme/shop", pr(21, "d1", "open"), pr(20, "c1", "closed"))
	if err := w.w.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if e := w.env(21); e.State != env.StateReady || e.Commit != "d1" {
		t.Fatalf("the missed open: %+v", e)
	}
	if e := w.env(20); e.State != env.StateDeleted {
		t.Fatalf("the missed close: %+v", e)
	}
}

func TestWorker_DeliveriesForOtherRepositoriesAreIgnoredWhenRepositoriesAreConfigured(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", Repos: []string{"acme/api"}})
	w.deliver("other", "pull_request", w.event("opened", 13, "c1", "open", w.time))
	w.settle()
	if e := w.env(13); e.Name != "" {
		t.Fatalf("a delivery of acme/shop acted on with repositories [acme/api]: %+v", e)
	}
	if d, _ := w.st.Delivery(context.Background(), "other"); d.State != "ignored" || !strings.Contains(d.Note, "not in github.repositories") {
		t.Fatalf("delivery %+v", d)
	}
}

func TestWorker_PushesInQuickSuccessionEndAtTheNewestCommit(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop"})
	for i, sha := range []string{"c1", "c2", "c3"} {
		w.deliver("push-"+sha, "pull_request", w.event("synchronize", 14, sha, "open", w.time.Add(time.Duration(i)*time.Minute)))
	}
	w.settle()
	if e := w.env(14); e.State != env.StateReady || e.Commit != "c3" {
		t.Fatalf("after three quick pushes: %+v", e)
	}
	for _, id := range []string{"push-c1", "push-c2", "push-c3"} {
		if d, _ := w.st.Delivery(context.Background(), id); d.State != "done" {
			t.Fatalf("delivery %s: %+v", id, d)
		}
	}
}

// An environment the sweeper brought down because it expired stays down
// while its pull request sits at the same commit (reconciliation and
// unrelated label changes leave it), and comes back with a push or the
// keep label.
func TestReconcile_AnExpiredEnvironmentComesBackOnlyWithAPushOrTheKeepLabel(t *testing.T) {
	w := newWorld(t, webhook.Policy{DefaultRepo: "acme/shop", KeepLabel: "prenv:keep"})
	ctx := context.Background()
	pr := func(sha string, labels ...string) githubtest.PR {
		ls := []any{}
		for _, l := range labels {
			ls = append(ls, map[string]any{"name": l})
		}
		return githubtest.PR{"number": 30, "state": "open", "updated_at": w.time.Format(time.RFC3339), "labels": ls,
			"head": map[string]any{"sha": sha, "repo": map[string]any{"full_name": "acme/shop"}}, "base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}
	}
	w.deliver("o", "pull_request", w.event("opened", 30, "c1", "open", w.time.Add(-3*time.Hour)))
	w.settle()
	// What the sweeper does to an expired environment.
	if _, err := w.w.Lifecycle.Down(ctx, lifecycle.DownOptions{Key: env.Key{PR: 30}, Why: lifecycle.Why{Reason: lifecycle.ReasonExpired}}); err != nil {
		t.Fatal(err)
	}
	w.gh.SetPulls("acme/shop", pr("c1"))
	if err := w.w.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	w.deliver("l", "pull_request", w.event("labeled", 30, "c1", "open", w.time.Add(-time.Hour), "bug"))
	w.settle()
	if e := w.env(30); e.State != env.StateDeleted {
		t.Fatalf("an expired environment came back at the same commit, with no keep label: %+v", e)
	}
	if d, _ := w.st.Delivery(ctx, "l"); d.State != "ignored" || !strings.Contains(d.Note, "expired") {
		t.Fatalf("the label delivery: %+v", d)
	}
	w.deliver("k", "pull_request", w.event("labeled", 30, "c1", "open", w.time.Add(-30*time.Minute), "bug", "prenv:keep"))
	w.settle()
	if e := w.env(30); e.State != env.StateReady || e.Commit != "c1" {
		t.Fatalf("the keep label did not bring it back: %+v", e)
	}
	if _, err := w.w.Lifecycle.Down(ctx, lifecycle.DownOptions{Key: env.Key{PR: 30}, Why: lifecycle.Why{Reason: lifecycle.ReasonExpired}}); err != nil {
		t.Fatal(err)
	}
	w.gh.SetPulls("acme/shop", pr("c2"))
	if err := w.w.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	w.settle()
	if e := w.env(30); e.State != env.StateReady || e.Commit != "c2" {
		t.Fatalf("a push did not bring it back: %+v", e)
	}
}
