package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultAPIURL is github.com's REST API; GitHub Enterprise Server's is
// https://HOST/api/v3.
const DefaultAPIURL = "https://api.github.com"

// TokenSource gives a token for calls about repo.
type TokenSource interface {
	Token(ctx context.Context, repo string) (string, error)
}

// StaticToken is a token from the environment (GITHUB_TOKEN in Actions).
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context, string) (string, error) {
	if t == "" {
		return "", errors.New("no GitHub token: set GITHUB_TOKEN (in Actions: env: GITHUB_TOKEN: ${{ github.token }})")
	}
	return string(t), nil
}

// Client calls GitHub's REST API, waiting out rate limits.
type Client struct {
	BaseURL string // default DefaultAPIURL
	Tokens  TokenSource
	HTTP    *http.Client
	// MaxWait is the longest prenv waits for a rate limit within one call
	// (default 15 minutes); beyond it the call fails with a *RateLimitError
	// and the caller retries later.
	MaxWait time.Duration
	// Sleep waits for d (tests replace it); Now is the clock.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time

	mu             sync.Mutex
	resetAt        time.Time // the primary limit is spent until then
	remaining      int       // of the rate limit, as the last response said
	remainingKnown bool
	secondary      int // consecutive secondary-limit responses
}

// APIError is a response GitHub refused.
type APIError struct {
	Status  int
	Method  string
	Path    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("GitHub %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// RateLimitError is a call given up because of a rate limit; Until says
// when to try again.
type RateLimitError struct {
	Until time.Time
	Err   error
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("GitHub rate limit: try again after %s: %v", e.Until.UTC().Format(time.RFC3339), e.Err)
}
func (e *RateLimitError) Unwrap() error { return e.Err }

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultAPIURL
	}
	return strings.TrimSuffix(c.BaseURL, "/")
}

// do calls method path (relative to the API) as repo's token allows, with in
// as the JSON body, and decodes the answer into out. It returns the
// response's Link header for pagination.
func (c *Client) do(ctx context.Context, repo, method, path string, in, out any) (string, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return "", err
		}
	}
	maxWait := c.MaxWait
	if maxWait <= 0 {
		maxWait = 15 * time.Minute
	}
	for attempt := 0; ; attempt++ {
		// The primary limit was spent: wait for its reset first.
		c.mu.Lock()
		wait := c.resetAt.Sub(c.now())
		c.mu.Unlock()
		if wait > maxWait {
			return "", &RateLimitError{Until: c.now().Add(wait), Err: errors.New("the hourly request quota is spent")}
		}
		if wait > 0 {
			if err := c.sleep(ctx, wait); err != nil {
				return "", err
			}
			c.waited()
		}
		token, err := c.Tokens.Token(ctx, repo)
		if err != nil {
			return "", err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base()+path, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("User-Agent", "prenv")
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		hc := c.HTTP
		if hc == nil {
			hc = http.DefaultClient
		}
		resp, err := hc.Do(req)
		if err != nil {
			return "", fmt.Errorf("GitHub %s %s: %w", method, path, err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
		resp.Body.Close()
		c.noteQuota(resp.Header)
		if resp.StatusCode < 300 {
			c.mu.Lock()
			c.secondary = 0
			c.mu.Unlock()
			if out != nil && len(data) > 0 {
				if err := json.Unmarshal(data, out); err != nil {
					return "", fmt.Errorf("GitHub %s %s: the answer is not what GitHub sends: %w", method, path, err)
				}
			}
			return resp.Header.Get("Link"), nil
		}
		apiErr := &APIError{Status: resp.StatusCode, Method: method, Path: path, Message: message(data)}
		wait, limited := c.rateLimitWait(resp, apiErr.Message)
		if !limited {
			return "", apiErr
		}
		if wait > maxWait || attempt >= 6 {
			return "", &RateLimitError{Until: c.now().Add(wait), Err: apiErr}
		}
		if err := c.sleep(ctx, wait); err != nil {
			return "", err
		}
		c.waited()
	}
}

// waited forgets a spent quota once its reset was waited for.
func (c *Client) waited() {
	c.mu.Lock()
	c.resetAt = time.Time{}
	c.mu.Unlock()
}

// Remaining is what the last response said is left of the rate limit's
// quota; false before any response said.
func (c *Client) Remaining() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remaining, c.remainingKnown
}

// noteQuota remembers what is left of the quota, and when an exhausted
// primary quota resets.
func (c *Client) noteQuota(h http.Header) {
	if n, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil {
		c.mu.Lock()
		c.remaining, c.remainingKnown = n, true
		c.mu.Unlock()
	}
	if h.Get("X-RateLimit-Remaining") != "0" {
		return
	}
	if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
		c.mu.Lock()
		c.resetAt = time.Unix(reset, 0).Add(time.Second)
		c.mu.Unlock()
	}
}

// rateLimitWait says whether a refused response is a rate limit and how
// long to wait, as GitHub documents: retry-after when given; the reset time
// when the primary quota is spent; otherwise, for a secondary limit, at
// least a minute, doubling while it lasts.
func (c *Client) rateLimitWait(resp *http.Response, msg string) (time.Duration, bool) {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return time.Duration(n) * time.Second, true
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(reset, 0).Sub(c.now())+time.Second, time.Second), true
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || strings.Contains(strings.ToLower(msg), "secondary rate limit") {
		c.mu.Lock()
		n := c.secondary
		c.secondary++
		c.mu.Unlock()
		return time.Minute << min(n, 5), true
	}
	return 0, false
}

func message(data []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &m) == nil && m.Message != "" {
		return m.Message
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// next returns the next page's path from a Link header, or "".
func (c *Client) next(link string) string {
	for _, part := range strings.Split(link, ",") {
		seg := strings.Split(part, ";")
		if len(seg) < 2 || !strings.Contains(seg[1], `rel="next"`) {
			continue
		}
		u := strings.Trim(strings.TrimSpace(seg[0]), "<>")
		return strings.TrimPrefix(u, c.base())
	}
	return ""
}

// list returns every page of a list the API answers at path.
func list[T any](ctx context.Context, c *Client, repo, path string) ([]T, error) {
	var all []T
	for path != "" {
		var page []T
		link, err := c.do(ctx, repo, http.MethodGet, path, nil, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		path = c.next(link)
	}
	return all, nil
}

func repoPath(repo string) string {
	owner, name, _ := strings.Cut(repo, "/")
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name)
}

// DeploymentStatus is one status of a deployment.
type DeploymentStatus struct {
	State          string `json:"state"` // in_progress | success | failure | inactive
	EnvironmentURL string `json:"environment_url,omitempty"`
	LogURL         string `json:"log_url,omitempty"`
	Description    string `json:"description,omitempty"`
}

// CreateDeployment creates the deployment of ref (a commit) to environment
// (pr-N): transient, never merging the default branch in, with no required
// status checks.
func (c *Client) CreateDeployment(ctx context.Context, repo, ref, environment, description string) (int64, error) {
	in := map[string]any{
		"ref": ref, "environment": environment, "description": description,
		"transient_environment": true, "production_environment": false, "auto_merge": false, "required_contexts": []string{},
	}
	var out struct {
		ID int64 `json:"id"`
	}
	if _, err := c.do(ctx, repo, http.MethodPost, repoPath(repo)+"/deployments", in, &out); err != nil {
		return 0, err
	}
	return out.ID, nil
}

// SetDeploymentStatus adds a status to deployment id.
func (c *Client) SetDeploymentStatus(ctx context.Context, repo string, id int64, s DeploymentStatus) error {
	if len(s.Description) > 140 {
		s.Description = s.Description[:137] + "..."
	}
	_, err := c.do(ctx, repo, http.MethodPost, fmt.Sprintf("%s/deployments/%d/statuses", repoPath(repo), id), s, nil)
	return err
}

// Deployment is a deployment as GitHub lists it.
type Deployment struct {
	ID          int64  `json:"id"`
	SHA         string `json:"sha"`
	Ref         string `json:"ref"`
	Environment string `json:"environment"`
}

// Deployments lists the deployments to environment, newest first.
func (c *Client) Deployments(ctx context.Context, repo, environment string) ([]Deployment, error) {
	return list[Deployment](ctx, c, repo, repoPath(repo)+"/deployments?per_page=100&environment="+url.QueryEscape(environment))
}

// Comment is an issue comment.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// UpsertComment edits the comment of pull request pr whose body holds
// marker, or creates it when there is none: one comment per pull request,
// edited in place.
func (c *Client) UpsertComment(ctx context.Context, repo string, pr int, marker, body string) error {
	path := fmt.Sprintf("%s/issues/%d/comments?per_page=100", repoPath(repo), pr)
	for path != "" {
		var page []Comment
		link, err := c.do(ctx, repo, http.MethodGet, path, nil, &page)
		if err != nil {
			return err
		}
		for _, cm := range page {
			if strings.Contains(cm.Body, marker) {
				if cm.Body == body {
					return nil
				}
				_, err := c.do(ctx, repo, http.MethodPatch, fmt.Sprintf("%s/issues/comments/%d", repoPath(repo), cm.ID), map[string]string{"body": body}, nil)
				return err
			}
		}
		path = c.next(link)
	}
	_, err := c.do(ctx, repo, http.MethodPost, fmt.Sprintf("%s/issues/%d/comments", repoPath(repo), pr), map[string]string{"body": body}, nil)
	return err
}

// PullRequest returns pull request n.
func (c *Client) PullRequest(ctx context.Context, repo string, n int) (PullRequest, error) {
	var pr PullRequest
	_, err := c.do(ctx, repo, http.MethodGet, fmt.Sprintf("%s/pulls/%d", repoPath(repo), n), nil, &pr)
	return pr, err
}

// OpenPullRequests lists repo's open pull requests, every page.
func (c *Client) OpenPullRequests(ctx context.Context, repo string) ([]PullRequest, error) {
	return list[PullRequest](ctx, c, repo, repoPath(repo)+"/pulls?state=open&per_page=100")
}

// CheckRun is a check run on a commit (GitHub's checks API: a GitHub App's
// token, or Actions' GITHUB_TOKEN with checks: write).
type CheckRun struct {
	Name       string      `json:"name"`
	HeadSHA    string      `json:"head_sha"`
	Status     string      `json:"status"`               // completed
	Conclusion string      `json:"conclusion,omitempty"` // success | failure | neutral
	DetailsURL string      `json:"details_url,omitempty"`
	Output     CheckOutput `json:"output"`
}

// CheckOutput is what a check run shows.
type CheckOutput struct {
	Title   string `json:"title"`
	Summary string `json:"summary"`
	Text    string `json:"text,omitempty"`
}

// checkOutputLimit is the most GitHub takes in a check run's summary or
// text.
const checkOutputLimit = 65535

// CreateCheckRun creates check run c and returns its id. A personal access
// token cannot: GitHub answers 403, and the error says what can.
func (c *Client) CreateCheckRun(ctx context.Context, repo string, run CheckRun) (int64, error) {
	if len(run.Output.Summary) > checkOutputLimit {
		run.Output.Summary = strings.ToValidUTF8(run.Output.Summary[:checkOutputLimit-3], "") + "..."
	}
	if len(run.Output.Text) > checkOutputLimit {
		run.Output.Text = strings.ToValidUTF8(run.Output.Text[:checkOutputLimit-3], "") + "..."
	}
	var out struct {
		ID int64 `json:"id"`
	}
	if _, err := c.do(ctx, repo, http.MethodPost, repoPath(repo)+"/check-runs", run, &out); err != nil {
		var api *APIError
		var rl *RateLimitError
		if errors.As(err, &api) && api.Status == http.StatusForbidden && !errors.As(err, &rl) {
			return 0, fmt.Errorf("create the check run %q: %w (check runs need a GitHub App's token, or Actions' GITHUB_TOKEN with 'checks: write' in the workflow's permissions; a personal access token cannot)", run.Name, err)
		}
		return 0, err
	}
	return out.ID, nil
}
