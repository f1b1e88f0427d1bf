// Package github connects prenv to GitHub: webhook deliveries (verified and
// parsed), the REST API (deployments, the sticky comment, pull requests)
// with its rate limits honoured, and authentication as a GitHub App or with
// a token.
package github

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxBody is the largest delivery GitHub sends (25 MB); larger bodies are
// refused.
const MaxBody = 25 << 20

// ErrSignature is a delivery whose X-Hub-Signature-256 is missing, malformed
// or wrong.
var ErrSignature = errors.New("webhook signature")

// Verify checks header, the X-Hub-Signature-256 of body: "sha256=" and the
// hex HMAC-SHA256 of the raw body keyed with secret, compared in constant
// time. A sha1-only signature (X-Hub-Signature) is not accepted.
func Verify(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	if header == "" {
		return fmt.Errorf("%w: X-Hub-Signature-256 is missing (set the webhook's secret in GitHub)", ErrSignature)
	}
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return fmt.Errorf("%w: X-Hub-Signature-256 does not start with sha256=", ErrSignature)
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: X-Hub-Signature-256 is not a hex SHA-256", ErrSignature)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%w: X-Hub-Signature-256 does not match the body and the configured secret", ErrSignature)
	}
	return nil
}

// Sign returns the X-Hub-Signature-256 of body with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// PullRequest is the part of a pull request prenv reads.
type PullRequest struct {
	Number    int        `json:"number"`
	State     string     `json:"state"` // open | closed
	Merged    bool       `json:"merged"`
	HTMLURL   string     `json:"html_url"`
	UpdatedAt time.Time  `json:"updated_at"`
	ClosedAt  *time.Time `json:"closed_at"`
	Head      struct {
		SHA  string `json:"sha"`
		Ref  string `json:"ref"`
		Repo *struct {
			FullName string `json:"full_name"`
			Fork     bool   `json:"fork"`
		} `json:"repo"`
	} `json:"head"`
	Base struct {
		Repo struct {
			FullName string `json:"full_name"`
		} `json:"repo"`
	} `json:"base"`
	Labels []Label `json:"labels"`
}

// Label is a pull request's label.
type Label struct {
	Name string `json:"name"`
}

// Fork reports whether the pull request's head is in another repository.
func (p PullRequest) Fork() bool {
	return p.Head.Repo == nil || !strings.EqualFold(p.Head.Repo.FullName, p.Base.Repo.FullName)
}

// HasLabel reports whether the pull request carries label name.
func (p PullRequest) HasLabel(name string) bool {
	for _, l := range p.Labels {
		if strings.EqualFold(l.Name, name) {
			return true
		}
	}
	return false
}

// PullRequestEvent is a pull_request delivery.
type PullRequestEvent struct {
	Action      string      `json:"action"`
	Number      int         `json:"number"`
	PullRequest PullRequest `json:"pull_request"`
	Label       *Label      `json:"label"`
	Repository  struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	Installation *struct {
		ID int64 `json:"id"`
	} `json:"installation"`
}

// ParsePullRequestEvent reads a pull_request delivery's body.
func ParsePullRequestEvent(body []byte) (PullRequestEvent, error) {
	var e PullRequestEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return e, fmt.Errorf("the pull_request delivery is not JSON: %w", err)
	}
	if e.Number == 0 {
		e.Number = e.PullRequest.Number
	}
	if e.Number <= 0 {
		return e, errors.New("the pull_request delivery has no pull request number")
	}
	if e.Repository.FullName == "" {
		e.Repository.FullName = e.PullRequest.Base.Repo.FullName
	}
	if !strings.Contains(e.Repository.FullName, "/") {
		return e, errors.New("the pull_request delivery names no repository (repository.full_name)")
	}
	if e.PullRequest.Number == 0 {
		e.PullRequest.Number = e.Number
	}
	return e, nil
}
