package env

import (
	"context"
	"sort"
	"strconv"
	"time"
	"unicode"
)

// Labels that keep an environment's status on its resources (Recorder):
// what its last run left, so that any machine with access reads it there.
const (
	LabelState      = "prenv.dev/state"
	LabelCommit     = "prenv.dev/commit"
	LabelURL        = "prenv.dev/url"
	LabelUpdatedAt  = "prenv.dev/updated-at"
	LabelGeneration = "prenv.dev/generation"
)

// Status is what an environment's resources say of it: what a Recorder
// writes at the end of each run, and what StatusOf reads back on any
// machine, whatever its own store holds.
type Status struct {
	Key    Key
	State  State
	Commit string
	URL    string
	// Database is where its database answers (host:port), when a
	// resource says.
	Database   string
	Generation int
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// UpdatedAt is when a run last recorded the status: of a local record
	// and the resources, the later one is the truth.
	UpdatedAt time.Time
	// Resources names what it was read from ("kubernetes namespace pr-4").
	Resources []string
}

// Recorder is a provider whose resources live where other machines see
// them (a Kubernetes cluster, an AWS account): it keeps each environment's
// status on them, and finds one environment's resources without listing
// everything. A CI runner starts with an empty store; with Recorders the
// resources are the record.
type Recorder interface {
	// Record writes s (state, commit, URL, expiry, the time) on k's
	// resources, ours only; nothing if k has none.
	Record(ctx context.Context, k Key, s Status) error
	// Find lists k's resources as Resources lists them (ours, with their
	// labels), with a request or two; none if k has none.
	Find(ctx context.Context, q Query, k Key) ([]Resource, error)
}

// Of is the resources of rs that belong to k.
func Of(rs []Resource, k Key) []Resource {
	var out []Resource
	for _, r := range rs {
		if r.Key == k {
			out = append(out, r)
		}
	}
	return out
}

// StatusLabels are the labels Record writes for s.
func StatusLabels(s Status) map[string]string {
	m := map[string]string{
		LabelState:     string(s.State),
		LabelCommit:    s.Commit,
		LabelUpdatedAt: s.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	if s.URL != "" {
		m[LabelURL] = s.URL
	}
	if !s.ExpiresAt.IsZero() {
		m[LabelExpiresAt] = s.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return m
}

// StatusOf reads the statuses of the environments that rs (resources of
// this installation's owner, as Resources or Find list them) belong to,
// by key. Resources without a key, with a Problem, or of another owner say
// nothing. Of several resources of one environment, the one last recorded
// says its state, commit and URL; the earliest says when it was created,
// the latest when it expires.
func StatusOf(owner string, rs []Resource) map[Key]Status {
	out := map[Key]Status{}
	for _, r := range rs {
		if r.Key == (Key{}) || r.Owner() != owner || r.Legacy {
			continue
		}
		s := out[r.Key]
		s.Key = r.Key
		s.Resources = append(s.Resources, r.Provider+" "+r.Kind+" "+r.ID)
		if r.Problem != "" {
			// It exists; what it says cannot be trusted.
			out[r.Key] = s
			continue
		}
		created := labelTime(r.Labels, LabelCreatedAt)
		if created.IsZero() {
			created = r.CreatedAt
		}
		if !created.IsZero() && (s.CreatedAt.IsZero() || created.Before(s.CreatedAt)) {
			s.CreatedAt = created
		}
		if t := labelTime(r.Labels, LabelExpiresAt); t.After(s.ExpiresAt) {
			s.ExpiresAt = t
		}
		if r.Address != "" {
			s.Database = r.Address
		}
		if g, err := strconv.Atoi(r.Labels[LabelGeneration]); err == nil && g > 0 {
			s.Generation = g
		}
		// A time to come is no later record: a chart that annotates its
		// namespace so would outrank every real one.
		if t := labelTime(r.Labels, LabelUpdatedAt); known[State(r.Labels[LabelState])] && !t.Before(s.UpdatedAt) && !t.After(time.Now().Add(5*time.Minute)) {
			// What a pull request's chart could write on its own namespace
			// is shown in terminals: only printable text is read.
			s.UpdatedAt, s.State, s.Commit = t, State(printable(r.Labels[LabelState], 32)), printable(r.Labels[LabelCommit], 64)
			if u := printable(r.Labels[LabelURL], 2048); u != "" {
				s.URL = u
			}
		}
		out[r.Key] = s
	}
	for k, s := range out {
		if s.State == "" {
			// Made by a run that never recorded its end (it is at work, or
			// was killed), or by a prenv before status labels.
			s.State = StateInterrupted
		}
		sort.Strings(s.Resources)
		out[k] = s
	}
	return out
}

func labelTime(labels map[string]string, name string) time.Time {
	t, err := time.Parse(time.RFC3339, labels[name])
	if err != nil {
		return time.Time{}
	}
	return t
}

// known are the states a status can record.
var known = map[State]bool{StateReady: true, StateFailed: true, StateInterrupted: true, StateDeleting: true,
	StatePending: true, StateCloning: true, StateMigrating: true, StateDeploying: true}

// printable is v when it is at most max bytes of printable, non-space
// text (a state, a commit, a URL), else "".
func printable(v string, max int) string {
	if len(v) > max {
		return ""
	}
	for _, r := range v {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return ""
		}
	}
	return v
}
