package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lock"
	"github.com/prenv/prenv/internal/store"
)

// Verdict is what a sweep decides for one resource.
type Verdict string

// Verdicts, each given with its reason.
const (
	// VerdictKeep: wanted (its environment is open and not expired, its
	// pull request is open, it is pinned, a run is at work on it), too
	// young to judge, or unreadable (kept: fail closed).
	VerdictKeep Verdict = "keep"
	// VerdictExpired: no up renewed it before its expiry (ttl).
	VerdictExpired Verdict = "expired"
	// VerdictOrphaned: no open pull request and no live environment, and
	// older than sweep.grace.
	VerdictOrphaned Verdict = "orphaned"
	// VerdictHalfMade: left by an interrupted run, wanted by nothing, and
	// older than sweep.grace.
	VerdictHalfMade Verdict = "half-made"
	// VerdictForeign: not this installation's; never touched.
	VerdictForeign Verdict = "foreign"
	// VerdictLegacy: selected by sweep.legacy and older than its
	// older_than; deleted only when asked (--apply --legacy).
	VerdictLegacy Verdict = "legacy"
)

// Verdicts lists every verdict, in the order plans show them.
var Verdicts = []Verdict{VerdictExpired, VerdictOrphaned, VerdictHalfMade, VerdictLegacy, VerdictKeep, VerdictForeign}

// ParseVerdict reads a verdict's name.
func ParseVerdict(s string) (Verdict, error) {
	for _, v := range Verdicts {
		if string(v) == s {
			return v, nil
		}
	}
	names := make([]string, len(Verdicts))
	for i, v := range Verdicts {
		names[i] = string(v)
	}
	return "", fmt.Errorf("%q is not a verdict (%s)", s, strings.Join(names, ", "))
}

// Deletes reports whether a sweep that applies its plan deletes what has
// verdict v (legacy only when asked).
func (v Verdict) Deletes() bool {
	return v == VerdictExpired || v == VerdictOrphaned || v == VerdictHalfMade || v == VerdictLegacy
}

// OpenPull is an open pull request as the sweeper needs it.
type OpenPull struct {
	Number int
	Labels []string
}

// PullRequests lists a repository's open pull requests (GitHub).
type PullRequests interface {
	OpenPulls(ctx context.Context, repo string) ([]OpenPull, error)
}

// SweepOptions say how to sweep.
type SweepOptions struct {
	// Apply carries the plan out; without it nothing changes.
	Apply bool
	// Only, if set, limits what Apply carries out to these verdicts.
	Only []Verdict
	// Legacy, if set, also lists what sweep.legacy selects; ApplyLegacy
	// (with Apply) deletes what is older than Legacy.OlderThan.
	Legacy      *env.Legacy
	ApplyLegacy bool
	// Grace: an orphaned or half-made resource younger than this is kept
	// (a run on another machine may be making it now).
	Grace time.Duration
	// MaxDeletions bounds the deletions of one run (an environment, or
	// a resource of none, counts one), the oldest first; 0 reports only.
	MaxDeletions int
	// KeepLabel pins the environment of an open pull request carrying it.
	KeepLabel string
	// Pulls, if set, lists the open pull requests (GitHub configured);
	// DefaultRepo is the repository of environments keyed without one.
	Pulls       PullRequests
	DefaultRepo string
	// Inventories are listed besides the Cloner's and the Runtime's (the
	// golden build leftovers).
	Inventories []env.Inventory
}

// Plan is what a sweep found and decided, and, applied, what it did.
type Plan struct {
	At      time.Time `json:"at"`
	Applied bool      `json:"applied"`
	Items   []Item    `json:"items"`
	// Notes say what limited this run (a provider that could not be
	// listed, an open-PR list that failed, max_deletions).
	Notes []string `json:"notes,omitempty"`
}

// Item is one resource of a plan.
type Item struct {
	env.Resource
	// Environment is the name of the environment it belongs to (pr-12).
	Environment string    `json:"environment,omitempty"`
	Age         Seconds   `json:"age_seconds"`
	ExpiresAt   time.Time `json:"expires_at,omitempty"`
	Verdict     Verdict   `json:"verdict"`
	Reason      string    `json:"reason"`
	// Outcome is what an applied plan did with it: deleted, failed: ...,
	// deferred: ..., protected: ..., or empty when nothing was to be done.
	Outcome string `json:"outcome,omitempty"`

	inv env.Inventory // lists and removes it; nil for the store's own
}

// Seconds is a duration written as seconds in JSON.
type Seconds time.Duration

// MarshalJSON writes whole seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprint(int64(time.Duration(s) / time.Second))), nil
}

// Counts returns how many items have each verdict.
func (p Plan) Counts() map[Verdict]int {
	m := map[Verdict]int{}
	for _, it := range p.Items {
		m[it.Verdict]++
	}
	return m
}

// sweep is one run's view of the world.
type sweep struct {
	l       *Lifecycle
	opts    SweepOptions
	now     time.Time
	records map[string]store.Env // by key
	open    map[string]OpenPull  // by key, when known
	known   map[string]bool      // repositories whose open pull requests are known
	// noOrphans: the open-PR list failed or was empty while environments
	// exist: nothing is deleted as orphaned (or half-made) in this run.
	noOrphans string
	// listFailed: a provider could not be listed, so what it holds of an
	// environment is unknown (a protected namespace, say): no down runs.
	listFailed string
	plan       *Plan
}

// Sweep lists everything the providers see for this installation, gives
// each resource one verdict with its reason, and with opts.Apply deletes
// what is expired, orphaned or half-made (and, asked, legacy): an
// environment on record through Down (its lock, latest wins, its report),
// a resource of none through its provider's Remove, which checks the owner
// again. What carries another owner id is never touched; what cannot be
// read is kept and said. It returns the plan, and an error joining what
// could not be listed or deleted.
func (l *Lifecycle) Sweep(ctx context.Context, opts SweepOptions) (Plan, error) {
	if opts.Apply {
		// One sweep carries out its plan at a time on this machine (prenv
		// serve's and a scheduled one): each would count max_deletions
		// for itself.
		tctx, cancel := context.WithTimeout(ctx, time.Second)
		unlock, err := lock.File(tctx, filepath.Join(l.LockDir, ".sweep.lock"))
		cancel()
		if err != nil {
			return Plan{At: l.now()}, fmt.Errorf("another sweep is carrying out its plan on this machine now (prenv serve's, or a scheduled one): run it again when that one ends; nothing was changed (%w)", err)
		}
		defer unlock()
	}
	s := &sweep{l: l, opts: opts, now: l.now(), records: map[string]store.Env{}, open: map[string]OpenPull{}, known: map[string]bool{}}
	s.plan = &Plan{At: s.now}
	// Without the records every environment would look orphaned: no
	// record, no sweep.
	envs, err := l.Store.List(ctx)
	if err != nil {
		return *s.plan, fmt.Errorf("read the environments' records, so nothing was swept: %w", err)
	}
	for _, e := range envs {
		s.records[e.Key.String()] = e
	}
	var errs []error
	q := env.Query{Owner: l.Owner, Legacy: opts.Legacy, Now: s.now}
	for _, inv := range s.inventories() {
		rs, err := inv.Resources(ctx, q)
		if err != nil {
			errs = append(errs, err)
			s.listFailed = fmt.Sprintf("a provider could not be listed (%v)", err)
			s.note("%v: nothing of it is planned this run, and no environment is brought down", err)
			continue
		}
		for _, r := range rs {
			s.plan.Items = append(s.plan.Items, Item{Resource: r, inv: inv})
		}
	}
	s.plan.Items = append(s.plan.Items, s.lockFiles()...)
	s.pulls(ctx)
	if opts.Pulls == nil {
		for _, it := range s.plan.Items {
			if it.Shared && it.Key.PR > 0 && it.Owner() == l.Owner {
				s.note("GitHub is not configured here: what a CI runner made on the shared %s (its store is not this one) is judged by this store alone and counts as orphaned past sweep.grace; set PRENV_GITHUB_TOKEN (or the GitHub App) so that open pull requests keep theirs", it.Provider)
				break
			}
		}
	}
	for i := range s.plan.Items {
		s.judge(&s.plan.Items[i])
	}
	s.recordsOnly()
	sortItems(s.plan.Items)
	if opts.Apply {
		s.plan.Applied = true
		errs = append(errs, s.apply(ctx)...)
	}
	return *s.plan, errors.Join(errs...)
}

func (s *sweep) note(format string, args ...any) {
	s.plan.Notes = append(s.plan.Notes, fmt.Sprintf(format, args...))
}

func (s *sweep) inventories() []env.Inventory {
	var out []env.Inventory
	if inv, ok := s.l.Cloner.(env.Inventory); ok {
		out = append(out, inv)
	}
	if inv, ok := s.l.Runtime.(env.Inventory); ok {
		out = append(out, inv)
	}
	return append(out, s.opts.Inventories...)
}

// lockFiles lists the environments' lock files: ours by location.
func (s *sweep) lockFiles() []Item {
	entries, err := os.ReadDir(s.l.LockDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.note("the lock files in %s cannot be listed: %v", s.l.LockDir, err)
		}
		return nil
	}
	byName := map[string]store.Env{}
	for _, e := range s.records {
		byName[e.Key.Name()] = e
	}
	var out []Item
	for _, de := range entries {
		name, ok := strings.CutSuffix(de.Name(), ".lock")
		if !ok || de.IsDir() || strings.HasPrefix(name, ".") {
			continue // not an environment's (the sweep's own)
		}
		r := env.Resource{Provider: "lock", Kind: "lock", ID: de.Name(), Local: true}
		if info, err := de.Info(); err == nil {
			r.CreatedAt = info.ModTime()
		}
		if e, ok := byName[name]; ok {
			r.Key = e.Key
		}
		out = append(out, Item{Resource: r})
	}
	return out
}

// pulls learns the open pull requests of every repository an environment
// or a resource names.
func (s *sweep) pulls(ctx context.Context) {
	if s.opts.Pulls == nil {
		return
	}
	// Environments that exist per repository: open records, and, since a
	// CI runner's store starts empty, this installation's resources whose
	// labels say they have not expired.
	liveKeys := map[string]map[string]bool{}
	repos := map[string]bool{}
	alive := func(k env.Key) {
		repo := s.repo(k)
		if liveKeys[repo] == nil {
			liveKeys[repo] = map[string]bool{}
		}
		liveKeys[repo][k.String()] = true
	}
	for _, e := range s.records {
		if repo := s.repo(e.Key); repo != "" {
			repos[repo] = true
			if s.live(e) {
				alive(e.Key)
			}
		}
	}
	for _, it := range s.plan.Items {
		if it.Key.PR == 0 {
			continue
		}
		if repo := s.repo(it.Key); repo != "" {
			repos[repo] = true
			t, err := time.Parse(time.RFC3339, it.Labels[env.LabelExpiresAt])
			if it.Owner() == s.l.Owner && !it.Legacy && (err != nil || t.After(s.now)) {
				alive(it.Key)
			}
		}
	}
	live := map[string]int{}
	for repo, keys := range liveKeys {
		live[repo] = len(keys)
	}
	names := make([]string, 0, len(repos))
	for r := range repos {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, repo := range names {
		prs, err := s.opts.Pulls.OpenPulls(ctx, repo)
		if err != nil {
			s.noOrphans = fmt.Sprintf("the open pull requests of %s could not be listed (%v)", repo, err)
			s.note("%s: nothing is deleted as orphaned or half-made this run (expiry still applies)", s.noOrphans)
			continue
		}
		if len(prs) == 0 && live[repo] > 0 {
			s.noOrphans = fmt.Sprintf("GitHub lists no open pull request of %s while %d of its environments are open", repo, live[repo])
			s.note("%s: nothing is deleted as orphaned or half-made this run (expiry still applies)", s.noOrphans)
			continue
		}
		s.known[repo] = true
		for _, pr := range prs {
			if k, err := env.NewKey(keyRepo(repo, s.opts.DefaultRepo), pr.Number); err == nil {
				s.open[k.String()] = pr
			}
		}
	}
}

// repo is the repository of k's pull request, "" when unknown.
func (s *sweep) repo(k env.Key) string {
	if k.Repo != "" {
		return k.Repo
	}
	return strings.ToLower(s.opts.DefaultRepo)
}

// keyRepo is the repository part of the keys of repo's environments.
func keyRepo(repo, defaultRepo string) string {
	if strings.EqualFold(repo, defaultRepo) {
		return ""
	}
	return repo
}

func (s *sweep) live(e store.Env) bool {
	return !e.Closed && e.State != env.StateDeleted
}

func (s *sweep) held(k env.Key) bool {
	held, err := s.l.locks().Held(context.Background(), lockOf(k.Name()))
	return held || err != nil // a lock that cannot be read may be held: keep
}

// judge gives it its verdict and reason.
func (s *sweep) judge(it *Item) {
	r := it.Resource
	keep := func(format string, args ...any) { it.Verdict, it.Reason = VerdictKeep, fmt.Sprintf(format, args...) }
	if r.Key.PR > 0 {
		it.Environment = r.Key.Name()
	}
	if owner := r.Owner(); !r.Legacy && (owner != s.l.Owner && (owner != "" || !r.Local)) {
		it.Verdict = VerdictForeign
		if owner == "" {
			it.Reason = "carries no owner id: not made by prenv"
		} else {
			it.Reason = fmt.Sprintf("owner id %q is not this installation's (%q)", owner, s.l.Owner)
		}
		return
	}
	if r.Problem != "" {
		keep("%s: kept, since what cannot be read is never deleted", r.Problem)
		return
	}
	created := r.CreatedAt
	if created.IsZero() {
		v, ok := r.Labels[env.LabelCreatedAt]
		t, err := time.Parse(time.RFC3339, v)
		if !ok || err != nil {
			keep("its creation time cannot be read (%s %q): kept", env.LabelCreatedAt, v)
			return
		}
		created = t
	}
	it.Age = Seconds(s.now.Sub(created))
	if r.Legacy {
		s.judgeLegacy(it)
		return
	}
	var rec *store.Env
	if e, ok := s.records[r.Key.String()]; ok && r.Key.PR > 0 {
		rec = &e
	}
	if v, ok := r.Labels[env.LabelExpiresAt]; ok {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			keep("its expiry cannot be read (%s %q): kept", env.LabelExpiresAt, v)
			return
		}
		it.ExpiresAt = t
	}
	if rec != nil && rec.ExpiresAt.After(it.ExpiresAt) {
		it.ExpiresAt = rec.ExpiresAt // renewed on the record, not yet on the resource
	}
	if r.Kind == "lock" {
		s.judgeLock(it, rec)
		return
	}
	if r.Key.PR > 0 && s.held(r.Key) {
		keep("a run of %s is at work on it now", r.Key.Name())
		return
	}
	pr, open := s.open[r.Key.String()]
	if open && s.opts.KeepLabel != "" && hasLabel(pr.Labels, s.opts.KeepLabel) {
		keep("pinned: its pull request carries the label %s", s.opts.KeepLabel)
		return
	}
	protected := ""
	if r.Protected != "" {
		protected = "; " + r.Protected + ": reported, never forced"
	}
	if r.Key.PR == 0 && !it.ExpiresAt.IsZero() {
		// Of no environment, with a deadline its maker gave it (a golden
		// build's build_timeout): before it, its maker may be at work on
		// it; past it, it is half-made, not "expired: no up renewed it".
		if !s.now.After(it.ExpiresAt) {
			keep("its maker's deadline (%s) has not passed: it may still be at work on it", it.ExpiresAt.Format(time.RFC3339))
			return
		}
		if r.HalfMade != "" {
			it.Verdict, it.Reason = VerdictHalfMade, r.HalfMade+protected
			return
		}
	}
	if !it.ExpiresAt.IsZero() && s.now.After(it.ExpiresAt) && r.Key.PR > 0 && s.labelsUnknown(r.Key) {
		keep("expired, but its pull request's labels could not be read (%s): %s may pin it", s.noOrphans, s.opts.KeepLabel)
		return
	}
	if !it.ExpiresAt.IsZero() && s.now.After(it.ExpiresAt) {
		it.Verdict = VerdictExpired
		it.Reason = fmt.Sprintf("expired %s ago: no up renewed it (ttl)%s", roundAge(s.now.Sub(it.ExpiresAt)), protected)
		return
	}
	switch {
	case rec != nil && s.live(*rec):
		if it.ExpiresAt.IsZero() {
			keep("its environment is open")
		} else {
			keep("its environment is open; it expires in %s", roundAge(it.ExpiresAt.Sub(s.now)))
		}
		return
	case open:
		keep("its pull request is open")
		return
	case time.Duration(it.Age) < s.opts.Grace:
		keep("younger than sweep.grace (%s): a run elsewhere may be making it", s.opts.Grace)
		return
	case r.Key.PR > 0 && s.noOrphans != "":
		keep("%s, so nothing is deleted as orphaned this run", s.noOrphans)
		return
	}
	if r.HalfMade != "" {
		it.Verdict, it.Reason = VerdictHalfMade, r.HalfMade+protected
		return
	}
	it.Verdict = VerdictOrphaned
	switch {
	case r.Key.PR == 0:
		it.Reason = "belongs to no environment"
	case !s.known[s.repo(r.Key)]:
		it.Reason = "no live environment (its pull request's state is not known here: GitHub is not configured, or no repository is)"
	default:
		it.Reason = "no open pull request and no live environment"
	}
	it.Reason += protected
}

// labelsUnknown reports whether k's pull request may carry the keep label
// without this sweep knowing: GitHub is configured, but its list of the
// repository's open pull requests failed or was in doubt.
func (s *sweep) labelsUnknown(k env.Key) bool {
	return s.opts.Pulls != nil && s.opts.KeepLabel != "" && !s.known[s.repo(k)] && s.noOrphans != ""
}

func (s *sweep) judgeLegacy(it *Item) {
	l := s.opts.Legacy
	if l == nil || l.OlderThan <= 0 || time.Duration(it.Age) <= l.OlderThan {
		it.Verdict = VerdictKeep
		it.Reason = "selected by sweep.legacy, but not older than its older_than"
		return
	}
	it.Verdict = VerdictLegacy
	it.Reason = fmt.Sprintf("selected by sweep.legacy and older than %s", l.OlderThan)
	if it.Protected != "" {
		it.Reason += "; " + it.Protected + ": reported, never forced"
	}
}

// judgeLock: a lock file is stale when no process holds it and no live
// environment uses it.
func (s *sweep) judgeLock(it *Item, rec *store.Env) {
	path := filepath.Join(s.l.LockDir, it.ID)
	switch {
	case lock.Held(path):
		it.Verdict, it.Reason = VerdictKeep, "a run holds it"
	case rec != nil && s.live(*rec):
		it.Verdict, it.Reason = VerdictKeep, "the lock of a live environment"
	case time.Duration(it.Age) < s.opts.Grace:
		it.Verdict, it.Reason = VerdictKeep, fmt.Sprintf("younger than sweep.grace (%s)", s.opts.Grace)
	default:
		it.Verdict, it.Reason = VerdictOrphaned, "a lock file no run holds, of no live environment"
	}
}

// recordsOnly adds the expired environments on record whose providers
// listed nothing of them (a provider without an inventory, or one whose
// resources are already gone): they are brought down all the same.
func (s *sweep) recordsOnly() {
	seen := map[string]bool{}
	for _, it := range s.plan.Items {
		if it.Key.PR > 0 {
			seen[it.Key.String()] = true
		}
	}
	for key, e := range s.records {
		if seen[key] || !s.live(e) || e.ExpiresAt.IsZero() || !s.now.After(e.ExpiresAt) {
			continue
		}
		it := Item{Resource: env.Resource{Provider: "store", Kind: "environment", ID: e.Key.Name(), Key: e.Key, Local: true, CreatedAt: e.CreatedAt},
			Environment: e.Key.Name(), Age: Seconds(s.now.Sub(e.CreatedAt)), ExpiresAt: e.ExpiresAt}
		pr, open := s.open[key]
		switch {
		case s.held(e.Key):
			it.Verdict, it.Reason = VerdictKeep, "a run is at work on it now"
		case open && s.opts.KeepLabel != "" && hasLabel(pr.Labels, s.opts.KeepLabel):
			it.Verdict, it.Reason = VerdictKeep, "pinned: its pull request carries the label "+s.opts.KeepLabel
		case s.labelsUnknown(e.Key):
			it.Verdict, it.Reason = VerdictKeep, fmt.Sprintf("expired, but its pull request's labels could not be read (%s): %s may pin it", s.noOrphans, s.opts.KeepLabel)
		default:
			it.Verdict = VerdictExpired
			it.Reason = fmt.Sprintf("expired %s ago: no up renewed it (ttl)", roundAge(s.now.Sub(e.ExpiresAt)))
		}
		s.plan.Items = append(s.plan.Items, it)
	}
}

func hasLabel(labels []string, want string) bool {
	for _, l := range labels {
		if strings.EqualFold(l, want) {
			return true
		}
	}
	return false
}

func roundAge(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// sortItems orders a plan: by verdict (what is deleted first), then
// provider, kind and id.
func sortItems(items []Item) {
	rank := map[Verdict]int{}
	for i, v := range Verdicts {
		rank[v] = i
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if rank[a.Verdict] != rank[b.Verdict] {
			return rank[a.Verdict] < rank[b.Verdict]
		}
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.ID < b.ID
	})
}

// unit is what one deletion removes: an environment (through Down when
// it is on record, then each of its resources, all under its lock), or
// one resource of none.
type unit struct {
	key      env.Key // zero for a lone resource
	recorded bool
	seq      int64 // the record's DesiredSeq when the plan was made
	items    []int // indexes into the plan
	age      time.Duration
	why      Verdict
}

// apply carries the plan out, within max_deletions, the oldest first.
func (s *sweep) apply(ctx context.Context) []error {
	items := s.plan.Items
	wanted := map[Verdict]bool{VerdictExpired: true, VerdictOrphaned: true, VerdictHalfMade: true, VerdictLegacy: s.opts.ApplyLegacy}
	if len(s.opts.Only) > 0 {
		only := map[Verdict]bool{}
		for _, v := range s.opts.Only {
			only[v] = wanted[v]
		}
		wanted = only
	}
	// An environment goes whole or not at all: a resource of it that is
	// protected, or kept (wanted, too young, unreadable), keeps all of it
	// (a down reaches every provider, so a protected namespace must not go
	// because its clone expired).
	keptBy := map[string]string{}
	for _, it := range items {
		if it.Key.PR == 0 || it.Legacy || it.Provider == "lock" || it.Verdict == VerdictForeign {
			continue
		}
		switch {
		case it.Protected != "":
			keptBy[it.Key.String()] = fmt.Sprintf("protected: the environment goes whole or not at all, and %s %s %s is protected (%s)", it.Provider, it.Kind, it.ID, it.Protected)
		case it.Verdict == VerdictKeep && keptBy[it.Key.String()] == "":
			keptBy[it.Key.String()] = fmt.Sprintf("left: the environment goes whole or not at all, and %s %s %s is kept (%s)", it.Provider, it.Kind, it.ID, it.Reason)
		}
	}
	var units []*unit
	byKey := map[string]*unit{}
	for i := range items {
		it := &items[i]
		if !it.Verdict.Deletes() || !wanted[it.Verdict] {
			if it.Verdict == VerdictLegacy && !s.opts.ApplyLegacy {
				it.Outcome = "left: legacy resources are deleted only with --legacy"
			}
			continue
		}
		if it.Protected != "" {
			it.Outcome = "protected: " + it.Protected
			continue
		}
		if it.Key.PR > 0 && !it.Legacy && it.Provider != "lock" {
			key := it.Key.String()
			if why, ok := keptBy[key]; ok {
				it.Outcome = why
				continue
			}
			rec, recorded := s.records[key]
			if recorded && s.listFailed != "" {
				it.Outcome = "left: " + s.listFailed + ", and a down reaches every provider"
				continue
			}
			u := byKey[key]
			if u == nil {
				u = &unit{key: it.Key, recorded: recorded, seq: rec.DesiredSeq, why: it.Verdict}
				byKey[key] = u
				units = append(units, u)
			}
			u.items = append(u.items, i)
			u.age = max(u.age, time.Duration(it.Age))
			if it.Verdict == VerdictExpired {
				u.why = VerdictExpired
			}
			continue
		}
		units = append(units, &unit{items: []int{i}, age: time.Duration(it.Age), why: it.Verdict})
	}
	sort.SliceStable(units, func(i, j int) bool { return units[i].age > units[j].age })
	limit := s.opts.MaxDeletions
	if limit <= 0 && len(units) > 0 {
		s.note("sweep.max_deletions is 0: report only, nothing was deleted")
	}
	var errs []error
	for n, u := range units {
		if limit <= 0 {
			for _, i := range u.items {
				items[i].Outcome = "report only: sweep.max_deletions is 0"
			}
			continue
		}
		if n >= limit {
			for _, i := range u.items {
				items[i].Outcome = fmt.Sprintf("deferred: sweep.max_deletions (%d) reached this run, the oldest went first", limit)
			}
			continue
		}
		if err := s.applyUnit(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	if len(units) > limit && limit > 0 {
		s.note("%d deletions deferred by sweep.max_deletions (%d): the next sweep carries on", len(units)-limit, limit)
	}
	return errs
}

func (s *sweep) applyUnit(ctx context.Context, u *unit) error {
	items := s.plan.Items
	left := func(why string) error {
		for _, i := range u.items {
			items[i].Outcome = "left: " + why
		}
		return nil
	}
	if u.key.PR == 0 {
		return s.remove(ctx, &items[u.items[0]])
	}
	// The environment's lock, for the whole unit: a run at work on it
	// wins, and a run that starts now waits until its resources are gone
	// (then makes it again, as it asked).
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	held, err := s.l.locks().Lock(tctx, lockOf(u.key.Name()))
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return left(fmt.Sprintf("a run of %s holds its lock; the next sweep looks again", u.key.Name()))
	}
	defer held.Release()
	ctx, unfence := fenced(ctx, held)
	defer unfence()
	e, err := s.l.Store.Get(ctx, u.key)
	recorded := err == nil
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return left(fmt.Sprintf("its record cannot be read (%v)", err))
	case recorded != u.recorded || recorded && e.DesiredSeq != u.seq:
		// A push, a close or a reopen since the plan: it decides.
		return left("a newer request for it arrived since the plan was made")
	}
	var errs []error
	if recorded {
		switch err := s.l.checkProviders(ctx, u.key); {
		case errors.Is(err, ErrOtherProviders):
			// Made with other providers: what these list of it is still
			// theirs to remove, one resource at a time.
		case err != nil:
			return left(err.Error())
		default:
			head := s.l.head(ctx, u.key)
			seq, err := s.l.Store.Request(ctx, u.key, u.key.Name(), "", true)
			if err != nil {
				return left(fmt.Sprintf("the down could not be recorded (%v)", err))
			}
			s.l.markInterrupted(ctx, u.key)
			if _, err := s.l.down(ctx, DownOptions{Key: u.key, Why: s.why(u)}, seq, head); err != nil {
				err = lockLost(ctx, err)
				for _, i := range u.items {
					items[i].Outcome = "failed: " + err.Error()
				}
				return fmt.Errorf("down %s: %w", u.key.Name(), err)
			}
		}
	}
	for _, i := range u.items {
		if err := s.remove(ctx, &items[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if !recorded && u.why == VerdictExpired {
		// A CI runner's sweep has no record of it, but its pull request
		// is told all the same.
		s.l.reportTornDown(ctx, store.Env{Key: u.key, Name: u.key.Name(), State: env.StateDeleted}, s.why(u))
	}
	// The lock file goes with the environment, removed while held (a run
	// waiting on it opens the path again).
	if e, err := s.l.Store.Get(ctx, u.key); err != nil || !s.live(e) {
		path := filepath.Join(s.l.LockDir, lockOf(u.key.Name()))
		if _, ok := s.l.locks().(fileLocks); !ok {
			return nil // a store's lock leaves no file
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.l.log().Warn("cannot remove a lock file", "path", path, "err", err)
		}
	}
	return nil
}

// remove deletes one resource through its provider (which proves it is
// still ours on what it reads), or a stale lock file.
func (s *sweep) remove(ctx context.Context, it *Item) error {
	q := env.Query{Owner: s.l.Owner, Legacy: s.opts.Legacy, Now: s.now}
	var err error
	switch {
	case it.Provider == "lock":
		_, err = lock.Remove(filepath.Join(s.l.LockDir, it.ID))
	case it.inv != nil:
		err = it.inv.Remove(ctx, q, it.Resource)
	}
	if err != nil {
		it.Outcome = "failed: " + err.Error()
		return fmt.Errorf("remove %s %s %s: %w", it.Provider, it.Kind, it.ID, err)
	}
	it.Outcome = "deleted"
	s.l.log().Info("swept", "provider", it.Provider, "kind", it.Kind, "id", it.ID, "env", it.Environment, "verdict", it.Verdict, "reason", it.Reason)
	return nil
}

// why is what the Reporter is told of a swept environment.
func (s *sweep) why(u *unit) Why {
	if u.why == VerdictExpired {
		back := "push a commit to the pull request"
		if s.opts.KeepLabel != "" {
			back += ", or add the label `" + s.opts.KeepLabel + "` to keep it from expiring"
		}
		return Why{Reason: ReasonExpired, Back: back,
			Detail: fmt.Sprintf("This environment expired: nothing was pushed for %s (ttl), so prenv's sweeper tore it down.", s.l.TTL)}
	}
	return Why{Reason: ReasonOrphaned, Detail: "prenv's sweeper tore this environment down: its pull request is not open and nothing else wanted it."}
}
