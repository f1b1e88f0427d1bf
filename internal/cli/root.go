package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/metrics"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/version"
)

// Options are the process's surroundings, injected so that tests can run
// the CLI in-process.
type Options struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Environ        func() []string // every variable, to find a mistyped PRENV_ one (default os.Environ)
	Dir            string          // working directory
	Now            func() time.Time
	// Cloner and Runtime, when set, replace the providers named in the
	// configuration (tests; --dry-run).
	Cloner  dbclone.Cloner
	Runtime runtime.Runtime
}

// app is what every command shares.
type app struct {
	opts       Options
	configPath string
	home       string
	listen     string
	verbose    bool
	log        *slog.Logger
	logFormat  string
	// metrics, in prenv serve, counts runs and sweeps; remaining says
	// what is left of GitHub's rate limit.
	metrics   *metrics.Metrics
	remaining func() (int, bool)
	// poolWake, in prenv serve, wakes the warm pool's keeper after a
	// claim by any of its lifecycles (the CLI's, the webhook worker's).
	poolWake chan struct{}
}

// poolClaimed is told of a claim from the warm pool: it is counted, and
// the keeper (when this replica leads) replenishes the pool at once.
func (a *app) poolClaimed() {
	if a.metrics != nil {
		a.metrics.Claimed()
	}
	if a.poolWake != nil {
		select {
		case a.poolWake <- struct{}{}:
		default:
		}
	}
}

// config loads prenv.yaml with the environment over it and the flags over both.
func (a *app) config() (config.Config, error) {
	cfg, err := config.Load(a.configPath, a.opts.Dir, a.opts.Getenv)
	if err != nil {
		return cfg, err
	}
	if err := config.MistypedEnv(a.opts.Environ(), cfg.Referenced); err != nil {
		return cfg, err
	}
	if a.home != "" {
		// A relative --home is relative to the current directory, made
		// absolute once like PRENV_HOME.
		cfg.Home = a.home
		if !filepath.IsAbs(cfg.Home) {
			cfg.Home = filepath.Join(a.opts.Dir, cfg.Home)
		}
	}
	if a.listen != "" {
		cfg.Listen = a.listen
	}
	return cfg, cfg.Validate()
}

// Run runs the command line args and returns the exit code.
func Run(ctx context.Context, args []string, opts Options) int {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ
	}
	if opts.Dir == "" {
		opts.Dir, _ = os.Getwd()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &app{opts: opts}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(opts.Stdout)
	root.SetErr(opts.Stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && cobraUsage(err) {
		err = usageError{err}
	}
	if err != nil {
		fmt.Fprintln(opts.Stderr, "prenv: "+strings.TrimSpace(err.Error()))
	}
	return ExitCode(err)
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "prenv",
		Short: "Preview environments for pull requests",
		Long: `prenv gives every pull request its own disposable environment: a copy-on-write
clone of the golden database, the app migrated and served at its own URL behind
authentication, updated on every push and destroyed when the pull request closes.

Environment variables:
  PRENV_HOME      where prenv keeps its state, golden data and clones
  PRENV_LISTEN    address of 'prenv serve' (default 127.0.0.1:8080)
  PRENV_PASSWORD  basic-auth password of the environments (user prenv);
                  generated and kept under PRENV_HOME when unset
  PRENV_<FIELD>   any prenv.yaml field, such as PRENV_DATABASE_LOCALPG_PORTS

` + exitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.logFormat {
			case "", "text", "json":
			default:
				return usageError{fmt.Errorf("--log-format %q: want text or json", a.logFormat)}
			}
			level := slog.LevelInfo
			if a.verbose {
				level = slog.LevelDebug
			}
			switch {
			case a.logFormat == "json":
				// One JSON object per line, for a cluster's log collector.
				a.log = slog.New(slog.NewJSONHandler(a.opts.Stderr, &slog.HandlerOptions{Level: level}))
			case cmd.Name() == "serve" || a.logFormat == "text":
				a.log = slog.New(slog.NewTextHandler(a.opts.Stderr, &slog.HandlerOptions{Level: level}))
			default:
				a.log = slog.New(newNoteHandler(a.opts.Stderr, level))
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "path of prenv.yaml (default: ./prenv.yaml if it exists)")
	root.PersistentFlags().StringVar(&a.home, "home", "", "PRENV_HOME: where prenv keeps its state, golden data and clones")
	root.PersistentFlags().StringVar(&a.listen, "listen", "", "PRENV_LISTEN: address of prenv serve")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log debug details")
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "", "the log's format: text (key=value lines), or json (a JSON object per line, for a log collector); default: text for serve, short notes otherwise")
	root.AddCommand(a.goldenCmd(), a.upCmd(), a.downCmd(), a.lsCmd(), a.statusCmd(), a.logsCmd(), a.extendCmd(), a.sweepCmd(), a.poolCmd(), a.serveCmd(), a.initCmd(), a.migrationCmd(), a.versionCmd())
	root.Version = version.Get().String()
	root.SetVersionTemplate("{{.Version}}\n")
	root.Flags().Bool("version", false, "print prenv's version (as 'prenv version')")
	return root
}

// prFlag parses --pr.
type prFlag struct{ n int }

func (p *prFlag) String() string {
	if p.n == 0 {
		return ""
	}
	return fmt.Sprint(p.n)
}
func (p *prFlag) Set(s string) error {
	n, err := env.ParsePR(s)
	if err != nil {
		return err
	}
	p.n = n
	return nil
}
func (p *prFlag) Type() string { return "N" }

// group makes cmd, a command of subcommands only, refuse an unknown
// subcommand (exit 2) instead of printing its help and exiting 0.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], c.CommandPath(), c.CommandPath())}
		}
		return c.Help()
	}
	return cmd
}

// cobraUsage says whether err is cobra's own refusal of the command line
// (an unknown command, a wrong number of arguments): bad input, exit 2.
func cobraUsage(err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command ", "accepts ", "requires at least ", "requires at most ", "required flag(s) ", "invalid argument "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// envArg lets a command name its environment as an argument, pr-12 or 12,
// as well as with --pr 12.
func envArg(pr *prFlag) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch len(args) {
		case 0:
			return nil
		case 1:
		default:
			return usageError{fmt.Errorf("%s takes one environment, not %d arguments: %s", cmd.CommandPath(), len(args), strings.Join(args, " "))}
		}
		n, err := env.ParsePR(strings.TrimPrefix(strings.ToLower(args[0]), "pr-"))
		if err != nil {
			return usageError{fmt.Errorf("%q is not an environment: want pr-N or N, for example pr-12", args[0])}
		}
		if pr.n != 0 && pr.n != n {
			return usageError{fmt.Errorf("%s names pr-%d and --pr %d: give one", cmd.CommandPath(), n, pr.n)}
		}
		pr.n = n
		return nil
	}
}

// target loads the configuration and resolves --pr and --repo to a key.
func (a *app) target(pr prFlag, repo string) (config.Config, env.Key, error) {
	cfg, err := a.config()
	if err != nil {
		return cfg, env.Key{}, err
	}
	k, err := key(cfg, pr, repo)
	return cfg, k, err
}

// resolve finds the environment --pr N names when --repo is not given: the
// default repository's, else the one repository with a pull request N on
// record; with several, --repo is required.
func resolve(ctx context.Context, s store.Store, k env.Key, repoGiven bool) (env.Key, error) {
	if repoGiven || k.Repo != "" {
		return k, nil
	}
	if _, err := s.Get(ctx, k); err == nil || !errors.Is(err, store.ErrNotFound) {
		return k, nil
	}
	list, err := s.List(ctx)
	if err != nil {
		return k, err
	}
	var found []env.Key
	for _, e := range list {
		if e.Key.PR == k.PR {
			found = append(found, e.Key)
		}
	}
	switch len(found) {
	case 0:
		return k, nil
	case 1:
		return found[0], nil
	}
	var repos []string
	for _, f := range found {
		repos = append(repos, f.Repo)
	}
	return k, usageError{fmt.Errorf("pull request %d has environments in %s: say which with --repo owner/name", k.PR, strings.Join(repos, " and "))}
}

// key returns the environment key for --pr and --repo.
func key(cfg config.Config, pr prFlag, repo string) (env.Key, error) {
	if pr.n == 0 {
		return env.Key{}, usageError{fmt.Errorf("--pr is required: the pull request number, for example --pr 12")}
	}
	if strings.EqualFold(repo, cfg.Repository) {
		repo = "" // the default repository keeps the short names
	}
	k, err := env.NewKey(repo, pr.n)
	if err != nil {
		return k, usageError{err}
	}
	return k, nil
}

// outputFlag adds -o to cmd and checks its value before cmd runs.
func outputFlag(cmd *cobra.Command, out *string) {
	cmd.Flags().StringVarP(out, "output", "o", "text", "output format: text, json or yaml")
	cmd.PreRunE = func(*cobra.Command, []string) error { return checkOutput(*out) }
}
