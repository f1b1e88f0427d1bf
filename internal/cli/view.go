package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"
	"gopkg.in/yaml.v3"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/server"
	"github.com/prenv/prenv/internal/store"
)

// envView is an environment as status, ls and up print it.
type envView struct {
	PR            int            `json:"pr"`
	Repository    string         `json:"repository"`
	Name          string         `json:"name"`
	State         string         `json:"state"`
	URL           string         `json:"url"`
	Commit        string         `json:"commit"`
	DesiredCommit string         `json:"desired_commit"`
	Error         string         `json:"error,omitempty"`
	Database      store.Database `json:"database"`
	Auth          *authView      `json:"auth,omitempty"`
	Steps         []store.Step   `json:"steps"`
	LastRun       *runView       `json:"last_run,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	// ExpiresAt is when the sweeper brings it down unless an up or
	// 'prenv extend' moves it.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Providers are those the environment was made with.
	Providers *store.Providers `json:"providers,omitempty"`
	// Migration is the rehearsal report of the newest run that migrated
	// (docs/migration.md), with the commit it migrated to.
	Migration *migrationView `json:"migration,omitempty"`
	// Resources are the resources that show it, where the providers keep
	// each environment's status on them (Kubernetes, Aurora).
	Resources []string `json:"resources,omitempty"`
}

type migrationView struct {
	Commit string `json:"commit"`
	rehearsal.Report
}

type authView struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type runView struct {
	Kind       string    `json:"kind"`
	Commit     string    `json:"commit"`
	State      string    `json:"state"`
	Error      string    `json:"error,omitempty"`
	Output     string    `json:"output,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// login returns the environments' basic-auth login, which prenv serve
// enforces for the local runtime only (on Kubernetes the team's auth layer
// guards the Ingress). It reads, never creates, the stored password.
func login(cfg config.Config) *authView {
	if cfg.Runtime.Provider != "local" || !cfg.HasApp() {
		return nil
	}
	pw := cfg.Password
	if pw == "" {
		data, err := os.ReadFile(filepath.Join(cfg.Home, "password"))
		if err != nil {
			return nil
		}
		pw = strings.TrimSpace(string(data))
	}
	return &authView{User: server.AuthUser, Password: pw}
}

// envLogin is k's login: the one rt made for the environment when it makes
// logins (Kubernetes with basic_auth), else local (login(cfg)).
func envLogin(ctx context.Context, rt runtime.Runtime, k env.Key, local *authView) *authView {
	au, ok := rt.(runtime.Authenticator)
	if !ok {
		return local
	}
	user, pw, err := au.Login(ctx, k)
	if err != nil {
		return nil
	}
	return &authView{User: user, Password: pw}
}

// view is e as status, ls and up show it; auth is login(cfg), read once per
// command.
func view(ctx context.Context, s store.Store, cfg config.Config, e store.Env, auth *authView) envView {
	locks := lifecycle.LocksOf(s, filepath.Join(cfg.Home, "locks"))
	e = lifecycle.Observed(locks, e)
	v := envView{
		PR: e.Key.PR, Repository: e.Key.Repo, Name: e.Name, State: string(e.State), URL: e.URL,
		Commit: e.Commit, DesiredCommit: e.DesiredCommit, Error: e.Error, Database: e.Database,
		Steps: []store.Step{}, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if e.Closed && e.State != "deleted" {
		v.DesiredCommit = ""
	}
	if v.Repository == "" {
		v.Repository = cfg.Repository
	}
	if e.URL != "" {
		v.Auth = auth
	}
	if e.Providers.Known() {
		p := e.Providers
		v.Providers = &p
	}
	if !e.ExpiresAt.IsZero() && e.State != env.StateDeleted {
		at := e.ExpiresAt
		v.ExpiresAt = &at
	}
	if r, err := s.LastMigration(ctx, e.Key); err == nil {
		var rep rehearsal.Report
		if err := json.Unmarshal(r.Migration, &rep); err == nil {
			v.Migration = &migrationView{Commit: r.Commit, Report: rep}
		}
	}
	if r, err := s.LastRun(ctx, e.Key); err == nil {
		r = lifecycle.ObservedRun(locks, e.Key, r)
		v.LastRun = &runView{Kind: r.Kind, Commit: r.Commit, State: string(r.State), Error: r.Error, Output: r.Output, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
		if r.Steps != nil {
			v.Steps = r.Steps
		}
	}
	return v
}

// printAs writes v as JSON or YAML (the same fields and names: YAML is
// made from the JSON).
func printAs(w io.Writer, format string, v any) error {
	if format != "yaml" {
		return printJSON(w, v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil { // JSON is YAML: the keys keep their order
		return err
	}
	clearStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return err
	}
	return enc.Close()
}

// clearStyle turns JSON's flow style into YAML's block style, strings
// quoted only where YAML needs it.
func clearStyle(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		n.Style = 0
	} else if n.Style == yaml.DoubleQuotedStyle {
		n.Style = 0
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// checkOutput refuses an -o that is not one of formats (default text,
// json and yaml).
func checkOutput(out string, formats ...string) error {
	if len(formats) == 0 {
		formats = []string{"text", "json", "yaml"}
	}
	if slices.Contains(formats, out) {
		return nil
	}
	return usageError{fmt.Errorf("-o %q: want %s", out, orList(formats))}
}

func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printStatus writes the text form of one environment.
func printStatus(w io.Writer, v envView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	name := v.Name
	if v.Repository != "" {
		name += " (" + v.Repository + "#" + fmt.Sprint(v.PR) + ")"
	}
	fmt.Fprintf(tw, "environment:\t%s\n", name)
	fmt.Fprintf(tw, "state:\t%s\n", v.State)
	fmt.Fprintf(tw, "commit:\t%s\n", orDash(short(v.Commit)))
	if v.DesiredCommit != "" && v.DesiredCommit != v.Commit {
		fmt.Fprintf(tw, "wanted:\t%s\n", short(v.DesiredCommit))
	}
	if v.URL != "" {
		fmt.Fprintf(tw, "url:\t%s\n", v.URL)
	} else if v.State != "deleted" {
		fmt.Fprintf(tw, "url:\t- (database only)\n")
	}
	if v.Auth != nil {
		fmt.Fprintf(tw, "login:\t%s / %s\n", v.Auth.User, v.Auth.Password)
	}
	if v.Database.URL != "" {
		fmt.Fprintf(tw, "database:\t%s\n", v.Database.URL)
		fmt.Fprintf(tw, "golden:\tgeneration %d\n", v.Database.Generation)
		if v.ExpiresAt != nil {
			fmt.Fprintf(tw, "expires:\t%s (each up renews it; prenv extend)\n", expires(time.Now(), *v.ExpiresAt))
		}
		if v.Database.SecretRef != "" {
			fmt.Fprintf(tw, "password:\tin %s\n", v.Database.SecretRef)
		}
	}
	if len(v.Steps) > 0 {
		var parts []string
		total := 0.0
		for _, s := range v.Steps {
			parts = append(parts, fmt.Sprintf("%s %.2fs", s.Name, s.Seconds))
			total += s.Seconds
		}
		fmt.Fprintf(tw, "last run:\t%s %s, %.2fs (%s)\n", v.LastRun.Kind, v.LastRun.State, total, strings.Join(parts, ", "))
	}
	tw.Flush()
	if v.Error != "" {
		fmt.Fprintf(w, "error: %s\n", v.Error)
	}
	if v.LastRun != nil && v.LastRun.Output != "" && v.LastRun.State == string(store.RunFailed) {
		fmt.Fprintf(w, "output of the failed step:\n%s\n", indent(v.LastRun.Output))
	}
	if m := v.Migration; m != nil {
		fmt.Fprintf(w, "migration rehearsal (commit %s):\n%s\n", short(m.Commit), indent(m.Report.Text()))
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// notFound turns a store miss into a message with advice.
func notFound(err error, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no environment %s: see 'prenv ls', or create it with 'prenv up --pr N': %w", name, store.ErrNotFound)
	}
	return err
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
