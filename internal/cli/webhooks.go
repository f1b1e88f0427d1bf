package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/webhook"
)

// githubClient is how prenv serve talks to GitHub: as the configured
// GitHub App, else with a token from the environment; nil without either.
func (a *app) githubClient(cfg config.Config) (*github.Client, error) {
	api := cfg.GitHub.APIURL
	if cfg.GitHub.AppID != 0 {
		path := cfg.GitHub.AppKeyFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(cfg.Dir, path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("github.app_key_file: %v: %w", err, config.ErrInvalid)
		}
		key, err := github.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("github.app_key_file %s: %v: %w", path, err, config.ErrInvalid)
		}
		return &github.Client{BaseURL: api, Tokens: &github.App{ID: cfg.GitHub.AppID, Key: key, BaseURL: api}}, nil
	}
	token := a.opts.Getenv("PRENV_GITHUB_TOKEN")
	if token == "" {
		token = a.opts.Getenv("GITHUB_TOKEN")
	}
	if token == "" {
		return nil, nil
	}
	return &github.Client{BaseURL: api, Tokens: github.StaticToken(token)}, nil
}

// serveReporter is how prenv serve reports to GitHub: retried in the
// background; nil without credentials or with github.report off.
func (a *app) serveReporter(cfg config.Config) (*github.Deployments, error) {
	client, err := a.githubClient(cfg)
	if err != nil || client == nil || !cfg.GitHub.Report {
		return nil, err
	}
	policy := webhook.Policy{DefaultRepo: cfg.Repository}
	d := &github.Deployments{Reporter: &github.Reporter{Client: client}, Repo: policy.Repo, Background: true, Log: a.log,
		Check: cfg.Migration.Check, FailOn: cfg.Migration.FailOnCodes()}
	if cfg.PublicURL != "" {
		base := strings.TrimSuffix(cfg.PublicURL, "/")
		d.LogURL = func(k env.Key) string { return base + "/envs/" + k.Name() + "/log" }
	}
	return d, nil
}

// webhooks returns the handler of /webhooks/github and starts the worker
// and the reconciler; without a webhook secret the handler refuses every
// delivery and says how to turn webhooks on.
func (a *app) webhooks(ctx context.Context, cfg config.Config, s store.Store) (http.Handler, func(ctx context.Context), error) {
	q, ok := s.(webhook.Store)
	if !ok {
		return nil, nil, fmt.Errorf("the store cannot queue webhook deliveries")
	}
	client, err := a.githubClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	if client != nil {
		a.remaining = client.Remaining
	}
	secret := cfg.GitHub.WebhookSecret
	if secret == "" {
		a.log.Info("webhooks are off: set github.webhook_secret (or PRENV_GITHUB_WEBHOOK_SECRET) to receive GitHub's deliveries at " + webhook.Path)
		return &webhook.Receiver{Log: a.log}, func(context.Context) {}, nil
	}
	lc, err := a.lifecycle(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	g := cfg.GitHub
	w := &webhook.Worker{
		Store: q, Lifecycle: lc, GitHub: client, Concurrency: g.Concurrency, Log: a.log, ID: replicaID(), ClaimTTL: cfg.Serve.ClaimTTL.D(),
		Policy: webhook.Policy{DefaultRepo: cfg.Repository, Repos: g.Repositories, Label: g.Label, OptOutLabel: g.OptOutLabel, Forks: g.Forks, ForkLabel: g.ForkLabel, KeepLabel: cfg.Sweep.KeepLabel},
	}
	reports, err := a.serveReporter(cfg)
	if err != nil {
		return nil, nil, err
	}
	lc.Reporter = nil // the CLI's, from a token in the environment
	if reports != nil {
		lc.Reporter = reports
	}
	go func() {
		w.Run(ctx)
		if reports != nil {
			reports.Wait()
		}
		lc.Store.Close()
	}()
	// Reconciling is the leader's (one replica's) work.
	reconcile := func(context.Context) {}
	if client != nil && g.Reconcile > 0 {
		reconcile = func(ctx context.Context) { w.Reconciling(ctx, g.Reconcile.D()) }
	} else if client == nil {
		a.log.Warn("no GitHub credentials (github.app_id and app_key_file, or PRENV_GITHUB_TOKEN): prenv serve cannot report to GitHub or reconcile missed deliveries")
	}
	a.log.Info("receiving GitHub webhooks", "path", webhook.Path)
	return &webhook.Receiver{Secret: []byte(secret), Queue: q, Notify: w.Notify, Log: a.log}, reconcile, nil
}

// replicaID names this prenv serve among the replicas that share a store:
// its host (a pod's name) and process, and a random part so that a
// restarted process is another replica.
func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}
