package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/github/githubtest"
)

// The test vector of GitHub's "Validating webhook deliveries".
func TestVerify_GitHubsTestVector(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	const sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if err := github.Verify(secret, body, sig); err != nil {
		t.Fatalf("the documented signature: %v", err)
	}
	if got := github.Sign(secret, body); got != sig {
		t.Fatalf("Sign = %s", got)
	}
	for name, h := range map[string]string{
		"missing":   "",
		"sha1 only": "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
		"malformed": "sha256=zz",
		"wrong":     "sha256=" + strings.Repeat("0", 64),
	} {
		if err := github.Verify(secret, body, h); !errors.Is(err, github.ErrSignature) {
			t.Errorf("%s signature: %v", name, err)
		}
	}
	if err := github.Verify(secret, []byte("Hello, World?"), sig); !errors.Is(err, github.ErrSignature) {
		t.Error("a changed body still verifies")
	}
}

func TestParsePullRequestEvent(t *testing.T) {
	e, err := github.ParsePullRequestEvent([]byte(`{"action":"synchronize","number":12,"pull_request":{"number":12,"state":"open",
		"head":{"sha":"abc","repo":{"full_name":"someone/shop","fork":true}},"base":{"repo":{"full_name":"acme/shop"}},"labels":[{"name":"Preview"}]},
		"repository":{"full_name":"acme/shop"}}`))
	if err != nil || e.Number != 12 || e.PullRequest.Head.SHA != "abc" || !e.PullRequest.Fork() || !e.PullRequest.HasLabel("preview") {
		t.Fatalf("%+v %v", e, err)
	}
	if _, err := github.ParsePullRequestEvent([]byte(`{"action":"opened","pull_request":{},"repository":{"full_name":"acme/shop"}}`)); err == nil || !strings.Contains(err.Error(), "number") {
		t.Fatalf("no number: %v", err)
	}
	if _, err := github.ParsePullRequestEvent([]byte(`not json`)); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("not JSON: %v", err)
	}
}

// sleeps records the waits the client asks for instead of waiting.
type sleeps []time.Duration

func (s *sleeps) sleep(_ context.Context, d time.Duration) error { *s = append(*s, d); return nil }

func TestClient_DeploymentsAndOneStickyCommentAcrossPushes(t *testing.T) {
	gh := githubtest.New(t, "tok")
	gh.PageSize = 2 // the marker is found on a later page
	c := &github.Client{BaseURL: gh.URL, Tokens: github.StaticToken("tok")}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		gh.Comments["acme/shop#12"] = append(gh.Comments["acme/shop#12"], &githubtest.Comment{ID: int64(900 + i), Body: "a review comment"})
	}
	for i, sha := range []string{"c1", "c2", "c3"} {
		id, err := c.CreateDeployment(ctx, "acme/shop", sha, "pr-12", "prenv")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeploymentStatus(ctx, "acme/shop", id, github.DeploymentStatus{State: "success", EnvironmentURL: "https://pr-12.example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := c.UpsertComment(ctx, "acme/shop", 12, "<!-- prenv -->", fmt.Sprintf("<!-- prenv -->\npush %d at %s", i+1, sha)); err != nil {
			t.Fatal(err)
		}
	}
	var ours []string
	for _, cm := range gh.CommentsOf("acme/shop", 12) {
		if strings.Contains(cm.Body, "<!-- prenv -->") {
			ours = append(ours, cm.Body)
		}
	}
	if len(ours) != 1 || !strings.Contains(ours[0], "push 3 at c3") {
		t.Fatalf("prenv's comments after three pushes: %q", ours)
	}
	if got := strings.Join(gh.StatusesOf("acme/shop", "pr-12"), " "); got != "c1:success c2:success c3:success" {
		t.Fatalf("statuses %s", got)
	}
	deps, err := c.Deployments(ctx, "acme/shop", "pr-12")
	if err != nil || len(deps) != 3 || deps[0].SHA != "c3" {
		t.Fatalf("deployments %+v %v", deps, err)
	}
}

func TestClient_WaitsOutRateLimitsAsGitHubAsks(t *testing.T) {
	gh := githubtest.New(t, "tok")
	var waited sleeps
	now := time.Unix(1_800_000_000, 0)
	c := &github.Client{BaseURL: gh.URL, Tokens: github.StaticToken("tok"), Sleep: waited.sleep, Now: func() time.Time { return now }}
	ctx := context.Background()
	gh.Fail(
		githubtest.Fault{Status: 429, Headers: map[string]string{"Retry-After": "7"}, Message: "API rate limit exceeded"},
		githubtest.Fault{Status: 403, Headers: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(90*time.Second).Unix(), 10)}, Message: "API rate limit exceeded for installation"},
		githubtest.SecondaryLimit(), githubtest.SecondaryLimit(),
	)
	if _, err := c.OpenPullRequests(ctx, "acme/shop"); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{7 * time.Second, 91 * time.Second, time.Minute, 2 * time.Minute}
	if fmt.Sprint(waited) != fmt.Sprint(want) {
		t.Fatalf("waits %v, want %v (retry-after, the reset, then at least a minute doubling)", waited, want)
	}
	// A limit longer than MaxWait is given back to the caller to retry later.
	c.MaxWait = time.Minute
	gh.Fail(githubtest.Fault{Status: 403, Headers: map[string]string{"Retry-After": "3600"}, Message: "slow down"})
	var rl *github.RateLimitError
	if _, err := c.OpenPullRequests(ctx, "acme/shop"); !errors.As(err, &rl) || !rl.Until.Equal(now.Add(time.Hour)) {
		t.Fatalf("a long limit: %v", err)
	}
	// A plain 403 is not a rate limit.
	gh.Fail(githubtest.Fault{Status: 403, Message: "Resource not accessible by integration"})
	var ae *github.APIError
	if _, err := c.OpenPullRequests(ctx, "acme/shop"); !errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(err.Error(), "not accessible") {
		t.Fatalf("a refusal: %v", err)
	}
}

func TestApp_InstallationTokensFromAJWTAndRefreshedBeforeExpiry(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	gh := githubtest.New(t, "unused")
	gh.AppKey = &key.PublicKey
	gh.Installed["acme/shop"] = 42
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	parsed, err := github.ParsePrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	app := &github.App{ID: 7, Key: parsed, BaseURL: gh.URL, Now: func() time.Time { return now }}
	c := &github.Client{BaseURL: gh.URL, Tokens: app}
	ctx := context.Background()
	if _, err := c.OpenPullRequests(ctx, "acme/shop"); err != nil {
		t.Fatalf("with an installation token: %v", err)
	}
	c.OpenPullRequests(ctx, "acme/shop")
	if n := gh.CallCount("POST /app/installations/42/access_tokens"); n != 1 {
		t.Fatalf("%d tokens for two calls within the hour", n)
	}
	now = now.Add(56 * time.Minute) // within five minutes of expiry
	c.OpenPullRequests(ctx, "acme/shop")
	if n := gh.CallCount("POST /app/installations/42/access_tokens"); n != 2 {
		t.Fatalf("the token was not refreshed before it expired: %d", n)
	}
	if _, err := c.OpenPullRequests(ctx, "other/repo"); err == nil || !strings.Contains(err.Error(), "not installed on other/repo") {
		t.Fatalf("a repository without the app: %v", err)
	}
	if _, err := github.ParsePrivateKey([]byte("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")); err == nil || !strings.Contains(err.Error(), "does not parse") {
		t.Fatalf("a key that does not parse: %v", err)
	}
}
