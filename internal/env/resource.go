package env

import (
	"context"
	"errors"
	"time"
)

// Resource is one thing a provider can list as made by prenv (or found
// where prenv makes things), as the sweeper sees it: what it is, the
// labels or tags it carries, and what the provider itself can tell of it.
// Providers fill it from one paginated list of their own API; the
// sweeper decides what becomes of it (lifecycle.Sweep).
type Resource struct {
	// Provider is the provider that lists it: localpg, local, kubernetes,
	// aurora, golden, lock.
	Provider string `json:"provider"`
	// Kind is what it is in the provider's words: clone, home, process,
	// namespace, release, cluster, instance, build, lock.
	Kind string `json:"kind"`
	// ID is the provider's name for it, unique within Provider and Kind
	// (a directory name, a namespace, an RDS identifier).
	ID string `json:"id"`
	// Labels are its labels or tags as read (LabelOwner, LabelKey,
	// LabelCreatedAt, LabelExpiresAt, ...). A resource owned by location
	// (under PRENV_HOME: a golden build directory, a lock file) has none
	// and sets Local.
	Labels map[string]string `json:"labels,omitempty"`
	// Local says the resource is prenv's by where it is (under
	// PRENV_HOME), not by a label: only this installation can see it.
	Local bool `json:"local,omitempty"`
	// Shared says other machines make and use such resources too (an AWS
	// account, a Kubernetes cluster): a CI runner may own it with a store
	// of its own, so no record here does not mean nobody wants it.
	Shared bool `json:"shared,omitempty"`
	// Key is the environment it belongs to, read by the provider from its
	// labels (each provider writes the key its own way); zero when it
	// belongs to none or the key cannot be read (see Problem).
	Key Key `json:"-"`
	// CreatedAt is when the provider's own API says it was made; zero when
	// the provider does not say (the created-at label is used then).
	CreatedAt time.Time `json:"created_at,omitempty"`
	// Protected, when set, says why it must not be deleted (deletion
	// protection is on): it is reported and never forced.
	Protected string `json:"protected,omitempty"`
	// HalfMade, when set, says why the provider sees it as left by an
	// interrupted run: a cluster with no writer, a writer whose cluster is
	// gone, a clone that never completed, a build directory.
	HalfMade string `json:"half_made,omitempty"`
	// Problem, when set, says why what the provider read cannot be trusted
	// (an unreadable key or time): the sweeper keeps it and says so.
	Problem string `json:"problem,omitempty"`
	// Legacy says it was selected by sweep.legacy: not made by prenv, and
	// listed, planned and deleted apart from prenv's own.
	Legacy bool `json:"legacy,omitempty"`
	// Address is where it answers, when the provider says (an Aurora
	// cluster's endpoint, host:port).
	Address string `json:"address,omitempty"`
}

// Owner is the owner id the resource carries, or "" for none.
func (r Resource) Owner() string { return r.Labels[LabelOwner] }

// Legacy selects resources prenv did not make, for teams moving from
// scripts that tag what they make (sweep.legacy). A provider selects a
// resource only when every given criterion it understands matches.
type Legacy struct {
	// Tags every selected Aurora cluster or instance carries with these
	// values (Ephemeral=true).
	Tags map[string]string
	// NamePattern is a regular expression a selected namespace's name
	// matches in full.
	NamePattern string
	// Labels every selected namespace carries with these values.
	Labels map[string]string
	// OlderThan: only what is older than this is deleted. The sweeper
	// applies it (providers select by tags, names and labels only).
	OlderThan time.Duration
}

// Query says what an Inventory lists.
type Query struct {
	// Owner is this installation's owner id. Resources carrying another
	// owner id, or none where prenv's would be, are listed too: the
	// sweeper shows them as foreign and never touches them.
	Owner string
	// Legacy, when not nil, also selects legacy resources (Legacy set).
	Legacy *Legacy
	// Now is the time ages are measured at.
	Now time.Time
}

// ErrNotOurs is returned by Remove when the resource no longer carries
// the owner id (or the legacy selection) it was planned with: it is left.
var ErrNotOurs = errors.New("not owned by this installation")

// Inventory is a provider that can list everything it made in one pass
// and remove one of those things by itself, without an environment
// record: what a sweep needs.
type Inventory interface {
	// Resources lists what the provider sees for q: its own resources
	// (owner id equal to q.Owner), the foreign ones where prenv's would be,
	// and, with q.Legacy, the legacy ones. One paginated list per kind,
	// never a request per resource.
	Resources(ctx context.Context, q Query) ([]Resource, error)
	// Remove deletes r, reading it again first: nil if it is already
	// gone; an error wrapping ErrNotOurs, untouched, if it no longer
	// carries q.Owner (or, for a legacy resource, no longer matches
	// q.Legacy); refused, untouched, if deletion protection is on.
	Remove(ctx context.Context, q Query, r Resource) error
}

// Renewer is a provider that can move the expiry written on an
// environment's resources (LabelExpiresAt): each up renews it, and
// 'prenv extend' moves it. It changes nothing else, and nothing of what
// is not ours.
type Renewer interface {
	Renew(ctx context.Context, k Key, expiresAt time.Time) error
}
