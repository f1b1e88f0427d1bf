package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
)

// workflow is the GitHub Actions run prenv is a step of, read from the
// runner's environment and the event payload (GITHUB_EVENT_PATH).
type workflow struct {
	Repo   string // GITHUB_REPOSITORY
	PR     int
	SHA    string // the pull request's head commit
	Fork   bool
	LogURL string // the run's page
	getenv func(string) string
}

// workflow returns the Actions run, or nil outside Actions.
func (a *app) workflow() (*workflow, error) {
	g := a.opts.Getenv
	path := g("GITHUB_EVENT_PATH")
	if g("GITHUB_ACTIONS") != "true" || path == "" {
		return nil, nil
	}
	w := &workflow{Repo: g("GITHUB_REPOSITORY"), getenv: g}
	if server, run := g("GITHUB_SERVER_URL"), g("GITHUB_RUN_ID"); server != "" && run != "" && w.Repo != "" {
		w.LogURL = fmt.Sprintf("%s/%s/actions/runs/%s", strings.TrimSuffix(server, "/"), w.Repo, run)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("GITHUB_EVENT_PATH: %w", err)
	}
	var ev struct {
		Number      int                 `json:"number"`
		PullRequest *github.PullRequest `json:"pull_request"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("GITHUB_EVENT_PATH %s is not the event's JSON: %w", path, err)
	}
	if ev.PullRequest != nil {
		w.PR, w.SHA, w.Fork = ev.PullRequest.Number, ev.PullRequest.Head.SHA, ev.PullRequest.Fork()
		if w.PR == 0 {
			w.PR = ev.Number
		}
	}
	return w, nil
}

// ciTarget is target for up and down: outside flags, the pull request and
// repository come from the workflow's event, and the workflow's repository
// is the default one (environments keep the short name pr-N).
func (a *app) ciTarget(pr prFlag, repo string) (config.Config, env.Key, *workflow, error) {
	w, err := a.workflow()
	if err != nil {
		return config.Config{}, env.Key{}, nil, usageError{err}
	}
	cfg, err := a.config()
	if err != nil {
		return cfg, env.Key{}, nil, err
	}
	if w != nil {
		if cfg.Repository == "" {
			cfg.Repository = w.Repo
		}
		if repo == "" {
			repo = w.Repo // the pull request is the workflow repository's
		}
		if pr.n == 0 {
			if w.PR == 0 {
				return cfg, env.Key{}, nil, usageError{fmt.Errorf("--pr is not given and the workflow's event (%s) is not a pull request's: run on pull_request, or pass --pr", a.opts.Getenv("GITHUB_EVENT_NAME"))}
			}
			pr.n = w.PR
		}
	}
	k, err := key(cfg, pr, repo)
	return cfg, k, w, err
}

// reporter returns how to report to GitHub from the CLI (a token from the
// environment), or nil when there is no token or reporting is off.
func (a *app) reporter(cfg config.Config) *github.Reporter {
	if !cfg.GitHub.Report {
		return nil
	}
	token := a.opts.Getenv("PRENV_GITHUB_TOKEN")
	if token == "" {
		token = a.opts.Getenv("GITHUB_TOKEN")
	}
	if token == "" {
		return nil
	}
	api := cfg.GitHub.APIURL
	if api == "" {
		api = a.opts.Getenv("GITHUB_API_URL") // set by Actions, GitHub Enterprise Server's too
	}
	return &github.Reporter{Client: &github.Client{BaseURL: api, Tokens: github.StaticToken(token), MaxWait: 2 * time.Minute}}
}

// reportRepo is the repository of k's pull request.
func reportRepo(cfg config.Config, k env.Key) string {
	if k.Repo != "" {
		return k.Repo
	}
	return cfg.Repository
}

// githubView is v as GitHub is told of it.
func githubView(v envView, logURL string) github.View {
	gv := github.View{Name: v.Name, PR: v.PR, State: v.State, URL: v.URL, Commit: v.Commit, Attempted: v.DesiredCommit, Generation: v.Database.Generation, Error: v.Error, LogURL: logURL}
	if v.LastRun != nil && v.LastRun.Output != "" && v.State == "failed" {
		gv.Error = strings.TrimSpace(v.Error + "\n" + v.LastRun.Output)
	}
	for _, s := range v.Steps {
		gv.Steps = append(gv.Steps, github.Step{Name: s.Name, Seconds: s.Seconds})
	}
	if m := v.Migration; m != nil && (m.Commit == v.Commit || m.Commit == v.DesiredCommit) {
		rep := m.Report
		gv.Migration = &rep
	}
	return gv
}

// finishWorkflow writes the step's outputs (url, environment, state, and
// database-url for a database-only environment) and its job summary, when
// prenv runs in Actions.
func (a *app) finishWorkflow(w *workflow, v envView) {
	if w == nil {
		return
	}
	appendTo := func(name, text string) {
		path := w.getenv(name)
		if path == "" {
			return
		}
		f, err := os.OpenFile(filepath.Clean(path), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			a.log.Warn("cannot write "+name, "error", err)
			return
		}
		defer f.Close()
		f.WriteString(text)
	}
	outputs := fmt.Sprintf("url=%s\nenvironment=%s\nstate=%s\n", oneLine(v.URL), v.Name, v.State)
	if v.URL == "" && v.Database.URL != "" && v.State != "deleted" {
		// A database-only environment's job needs its database; the URL
		// carries the password, masked (::add-mask::) before this is written.
		outputs += "database-url=" + oneLine(v.Database.URL) + "\n"
	}
	appendTo("GITHUB_OUTPUT", outputs)
	appendTo("GITHUB_STEP_SUMMARY", github.Summary(githubView(v, w.LogURL))+"\n")
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// masker hides secrets from a GitHub Actions job's log: before prenv prints
// a password, or a URL carrying one, it writes ::add-mask::<value> (the
// runner then shows *** for it in every later line of the job's log, and
// GitHub keeps it out of outputs and summaries). Outside Actions it does
// nothing.
type masker struct {
	w    io.Writer
	on   bool
	seen map[string]bool
}

// masker writes on stdout, ahead of what it hides; with -o json on stderr,
// which the runner reads as well, so that stdout stays JSON for a script
// that captures it (and would otherwise swallow the masks).
func (a *app) masker(out string) *masker {
	w := a.opts.Stdout
	if out != "text" {
		w = a.opts.Stderr
	}
	return &masker{w: w, on: a.opts.Getenv("GITHUB_ACTIONS") == "true", seen: map[string]bool{}}
}

// secret masks each value, once.
func (m *masker) secret(values ...string) {
	if !m.on {
		return
	}
	for _, v := range values {
		// Each line is masked on its own too: the runner matches masks line
		// by line.
		for _, s := range append([]string{v}, strings.Split(v, "\n")...) {
			s = strings.TrimRight(s, "\r")
			if strings.TrimSpace(s) == "" || m.seen[s] {
				continue
			}
			m.seen[s] = true
			fmt.Fprintf(m.w, "::add-mask::%s\n", escapeCommand(s))
		}
	}
}

// url masks a URL that carries a password: the URL and the password, as
// written in it and decoded.
func (m *masker) url(raw string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return
	}
	written := strings.TrimPrefix(u.User.String(), u.User.Username()+":")
	m.secret(pw, written, raw)
}

// view masks what v shows that is secret: the login's password, the
// database URL (for localpg and Aurora, it carries the password), a URL
// with a password.
func (m *masker) view(v envView) {
	if v.Auth != nil {
		m.secret(v.Auth.Password)
	}
	m.url(v.Database.URL)
	m.url(v.URL)
}

// escapeCommand writes s as a workflow command's value: the runner reads
// %25, %0D and %0A back as %, CR and LF.
func escapeCommand(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}
