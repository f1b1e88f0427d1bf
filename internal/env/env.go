package env

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadPR is returned by ParsePR for anything that is not a positive integer.
var ErrBadPR = errors.New("pull request number must be a positive integer")

// Key identifies one environment: a pull request of a repository. Repo may be
// empty when prenv serves a single repository.
type Key struct {
	Repo string // owner/name, lower case; empty for the default repository
	PR   int
}

// ParsePR parses a pull request number as typed by a user. It returns an
// error wrapping ErrBadPR for 0, negative numbers and anything not a number.
func ParsePR(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: %w (for example --pr 12)", s, ErrBadPR)
	}
	return n, nil
}

// NewKey returns the key of pull request pr of repo and checks both.
func NewKey(repo string, pr int) (Key, error) {
	if pr <= 0 {
		return Key{}, fmt.Errorf("%d: %w (for example --pr 12)", pr, ErrBadPR)
	}
	repo = strings.ToLower(strings.TrimSpace(repo))
	if repo != "" {
		owner, name, ok := strings.Cut(repo, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return Key{}, fmt.Errorf("repository %q: want owner/name", repo)
		}
	}
	return Key{Repo: repo, PR: pr}, nil
}

// String is the key as stored and shown: "owner/name#12", or "#12" for the
// default repository.
func (k Key) String() string { return k.Repo + "#" + strconv.Itoa(k.PR) }

// ParseKey is the inverse of String.
func ParseKey(s string) (Key, error) {
	repo, pr, ok := strings.Cut(s, "#")
	if !ok {
		return Key{}, fmt.Errorf("environment key %q: want owner/name#N", s)
	}
	n, err := ParsePR(pr)
	if err != nil {
		return Key{}, err
	}
	return NewKey(repo, n)
}

// Name is the environment's base name, a valid DNS label of at most 63
// characters: "pr-12" for the default repository, "pr-12-<repo>-<hash>" when
// a repository is named, so that two repositories never collide.
func (k Key) Name() string { return k.NameMax(63) }

// NameMax is Name bounded to max characters (53 for a Helm release, 63 for
// a DNS label or an RDS identifier). The result starts with a letter, holds
// only [a-z0-9-], has no double hyphen and does not end in one, so it is a
// valid DNS label and RDS identifier.
func (k Key) NameMax(max int) string {
	base := "pr-" + strconv.Itoa(k.PR)
	if k.Repo == "" {
		return base
	}
	sum := sha256.Sum256([]byte(k.Repo))
	hash := hex.EncodeToString(sum[:])[:6]
	slug := sanitize(strings.ReplaceAll(k.Repo, "/", "-"))
	room := max - len(base) - len(hash) - 2
	if room < 1 {
		return base + "-" + hash
	}
	if len(slug) > room {
		slug = strings.Trim(slug[:room], "-")
	}
	if slug == "" {
		return base + "-" + hash
	}
	return base + "-" + slug + "-" + hash
}

func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if ok {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// State is where an environment is in its life.
type State string

const (
	StatePending   State = "pending"   // asked for, not started
	StateCloning   State = "cloning"   // database being cloned
	StateMigrating State = "migrating" // migration running
	StateDeploying State = "deploying" // app being started and checked
	StateReady     State = "ready"     // serving the desired commit
	StateFailed    State = "failed"    // the last run failed; see its error
	// StateInterrupted: the last run stopped before it finished (a signal,
	// or its process was killed) and nothing was deployed by it; the next
	// up carries on from what it made.
	StateInterrupted State = "interrupted"
	StateDeleting    State = "deleting" // being torn down
	StateDeleted     State = "deleted"  // gone
)

// Working reports whether s says a run is at work on the environment.
func (s State) Working() bool {
	switch s {
	case StatePending, StateCloning, StateMigrating, StateDeploying, StateDeleting:
		return true
	}
	return false
}

// Label keys carried by every resource prenv creates.
const (
	LabelOwner     = "prenv.dev/owner"
	LabelKey       = "prenv.dev/env"
	LabelPR        = "prenv.dev/pr"
	LabelRepo      = "prenv.dev/repository"
	LabelCreatedAt = "prenv.dev/created-at"
	LabelExpiresAt = "prenv.dev/expires-at"
	LabelEphemeral = "Ephemeral"
)

// Labels returns the owner labels of a resource of environment k created at
// now, expiring after ttl.
func Labels(owner string, k Key, now time.Time, ttl time.Duration) map[string]string {
	return map[string]string{
		LabelOwner:     owner,
		LabelKey:       k.String(),
		LabelPR:        strconv.Itoa(k.PR),
		LabelRepo:      k.Repo,
		LabelCreatedAt: now.UTC().Format(time.RFC3339),
		LabelExpiresAt: now.Add(ttl).UTC().Format(time.RFC3339),
		LabelEphemeral: "true",
	}
}
