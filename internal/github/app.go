package github

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ParsePrivateKey reads a GitHub App's private key (the PEM file GitHub
// generates, PKCS#1, or PKCS#8).
func ParsePrivateKey(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("the GitHub App private key is not PEM: give the .pem file GitHub generated for the app")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the GitHub App private key does not parse (%v): give the .pem file GitHub generated for the app", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the GitHub App private key is not an RSA key")
	}
	return rk, nil
}

// App authenticates as a GitHub App: a JWT signed with its key gets an
// installation token per installation, kept until five minutes before it
// expires.
type App struct {
	ID      int64
	Key     *rsa.PrivateKey
	BaseURL string // default DefaultAPIURL
	HTTP    *http.Client
	Now     func() time.Time

	mu     sync.Mutex
	byRepo map[string]int64 // installation of each repository
	tokens map[int64]appToken
}

type appToken struct {
	token   string
	expires time.Time
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// JWT returns the app's JSON Web Token (RS256, valid nine minutes, issued a
// minute in the past against clock drift).
func (a *App) JWT() (string, error) {
	now := a.now()
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix(), "iss": strconv.FormatInt(a.ID, 10)})
	signing := header + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, a.Key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + enc.EncodeToString(sig), nil
}

// Token implements TokenSource: an installation token for repo.
func (a *App) Token(ctx context.Context, repo string) (string, error) {
	a.mu.Lock()
	id, known := a.byRepo[repo]
	t, cached := a.tokens[id]
	a.mu.Unlock()
	if known && cached && a.now().Before(t.expires.Add(-5*time.Minute)) {
		return t.token, nil // the usual case: no signing, no request
	}
	jwt, err := a.JWT()
	if err != nil {
		return "", err
	}
	c := &Client{BaseURL: a.BaseURL, HTTP: a.HTTP, Tokens: StaticToken(jwt), Now: a.Now}
	if !known {
		var inst struct {
			ID int64 `json:"id"`
		}
		if _, err := c.do(ctx, repo, http.MethodGet, repoPath(repo)+"/installation", nil, &inst); err != nil {
			return "", fmt.Errorf("the GitHub App %d is not installed on %s (or its key is wrong): %w", a.ID, repo, err)
		}
		id = inst.ID
		a.mu.Lock()
		if a.byRepo == nil {
			a.byRepo = map[string]int64{}
		}
		a.byRepo[repo] = id
		t, cached = a.tokens[id]
		a.mu.Unlock()
		if cached && a.now().Before(t.expires.Add(-5*time.Minute)) {
			return t.token, nil // another repository of the same installation fetched it
		}
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if _, err := c.do(ctx, repo, http.MethodPost, fmt.Sprintf("/app/installations/%d/access_tokens", id), nil, &out); err != nil {
		return "", fmt.Errorf("an installation token for %s: %w", repo, err)
	}
	a.mu.Lock()
	if a.tokens == nil {
		a.tokens = map[int64]appToken{}
	}
	a.tokens[id] = appToken{out.Token, out.ExpiresAt}
	a.mu.Unlock()
	return out.Token, nil
}
