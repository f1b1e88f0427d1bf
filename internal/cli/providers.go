package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/runtime"
	kubert "github.com/prenv/prenv/internal/runtime/kubernetes"
	"github.com/prenv/prenv/internal/runtime/local"
	rtmemory "github.com/prenv/prenv/internal/runtime/memory"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/postgres"
)

// cloners maps database.provider to its constructor.
var cloners = map[string]func(cfg config.Config, log *slog.Logger) (dbclone.Cloner, error){
	"aurora": newAurora,
	"localpg": func(cfg config.Config, log *slog.Logger) (dbclone.Cloner, error) {
		p := cfg.Database.LocalPG
		c := localpg.New(cfg.Home, cfg.Owner, log)
		c.BinDir, c.RunAs, c.StartTimeout = p.BinDir, p.RunAs, p.StartTimeout.D()
		c.FirstPort, c.LastPort, _ = p.PortRange()
		c.Listen, c.Host, c.Allow = p.Listen, p.Host, p.Allow
		c.AccessGroup = accessGroup(cfg)
		c.Settings = map[string]string{"shared_buffers": p.SharedBuffers, "max_connections": fmt.Sprint(p.MaxConnections)}
		for k, v := range p.Settings {
			c.Settings[k] = v
		}
		return c, nil
	},
	"memory": func(cfg config.Config, log *slog.Logger) (dbclone.Cloner, error) {
		w := dbmemory.NewWorld()
		w.SetGolden(1)
		return &dbmemory.Cloner{World: w, Owner: cfg.Owner}, nil
	},
}

// runtimes maps runtime.provider to its constructor.
var runtimes = map[string]func(a *app, cfg config.Config) (runtime.Runtime, error){
	"local": func(a *app, cfg config.Config) (runtime.Runtime, error) {
		rt := &local.Runtime{
			Home: cfg.Home, Owner: cfg.Owner, App: cfg.App, Dir: cfg.Dir, Listen: cfg.Listen, Repository: cfg.Repository,
			StartServer: func(ctx context.Context) error { return a.startServer(cfg) },
		}
		if g := accessGroup(cfg); g != 0 {
			_, last, _ := cfg.Runtime.Local.UIDRange()
			rt.Users = &local.Users{First: g, Last: last, ClaimDir: uidClaims}
		} else {
			noteOnce(cfg.Home, ".not-isolated-noted", func() {
				a.log.Warn("prenv does not run as root: every environment's build, migrate and app run as your user, and environments are not isolated from each other; run prenv as root for a user per environment (runtime.local.uids). Said once.")
			})
		}
		if seed := cfg.Runtime.Local.HomeSeed; seed != "" {
			if !filepath.IsAbs(seed) {
				seed = filepath.Join(cfg.Dir, seed)
			}
			rt.HomeSeed = seed
		}
		return rt, nil
	},
	"kubernetes": func(a *app, cfg config.Config) (runtime.Runtime, error) {
		k := cfg.Runtime.Kubernetes
		kubeconfig := k.Kubeconfig
		if kubeconfig != "" && !filepath.IsAbs(kubeconfig) {
			kubeconfig = filepath.Join(cfg.Dir, kubeconfig)
		}
		chartPath := k.Chart
		if k.ChartRepo == "" && !strings.HasPrefix(chartPath, "oci://") && !filepath.IsAbs(chartPath) {
			chartPath = filepath.Join(cfg.Dir, chartPath)
		}
		// The default loading rules honour $KUBECONFIG and exec plugins
		// (aws eks update-kubeconfig), and fall back to in-cluster.
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = kubeconfig
		rest, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("runtime.kubernetes: no usable cluster credentials (%v): set runtime.kubernetes.kubeconfig or KUBECONFIG (for EKS: aws eks update-kubeconfig): %w", err, runtime.ErrInvalid)
		}
		client, err := kubernetes.NewForConfig(rest)
		if err != nil {
			return nil, err
		}
		return &kubert.Runtime{
			Namespaces: &kubert.Namespaces{Client: client, Options: cfg.KubernetesOptions()},
			Releases:   &kubert.Releases{Kubeconfig: kubeconfig, Context: k.Context, Client: client, Timeout: k.Timeout.D(), Log: a.log},
			Chart:      chartPath, Values: k.Values, URL: k.URL, Migration: k.Migration,
			ChartSource: kubert.ChartSource{Version: k.ChartVersion, Repo: k.ChartRepo, PlainHTTP: k.ChartPlainHTTP,
				Username: k.ChartUsername, Password: k.ChartPassword, CacheDir: filepath.Join(cfg.Home, "charts")},
		}, nil
	},
	"memory": func(a *app, cfg config.Config) (runtime.Runtime, error) { return rtmemory.New(cfg.Owner), nil },
}

func (a *app) cloner(cfg config.Config) (dbclone.Cloner, error) {
	if a.opts.Cloner != nil {
		return a.opts.Cloner, nil
	}
	return cloners[cfg.Database.Provider](cfg, a.log)
}

// runtime returns nil for database-only environments.
func (a *app) runtime(cfg config.Config) (runtime.Runtime, error) {
	if !cfg.HasApp() {
		return nil, nil
	}
	if a.opts.Runtime != nil {
		return a.opts.Runtime, nil
	}
	return runtimes[cfg.Runtime.Provider](a, cfg)
}

func (a *app) store(ctx context.Context, cfg config.Config) (store.Store, error) {
	if err := secureHome(cfg); err != nil {
		return nil, err
	}
	if cfg.Store != "" {
		return postgres.Open(ctx, cfg.Store)
	}
	return openStore(ctx, filepath.Join(cfg.Home, "prenv.db"))
}

func (a *app) lifecycle(ctx context.Context, cfg config.Config) (*lifecycle.Lifecycle, error) {
	rt, cl, err := a.providers(cfg)
	if err != nil {
		return nil, err
	}
	s, err := a.store(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if ac, ok := cl.(*aurora.Cloner); ok && ac.PoolLock == nil {
		ac.Claimed = a.poolClaimed
		lk, shared := s.(store.Locker)
		if !shared && os.Getenv("CI") != "" && cfg.Database.Aurora.Pool.Size > 0 {
			// A CI runner's home is its own: a file lock there keeps no
			// other runner, nor prenv serve, from claiming the same member.
			ac.NoClaims = "on a CI runner the warm pool needs a store that every runner and prenv serve share (store: postgres://..., docs/cluster.md); without it environments clone"
		}
		if shared {
			// Replicas, and runners sharing the store, take turns on the
			// warm pool.
			ac.PoolLock = func(ctx context.Context) (func(), error) {
				l, err := lk.Lock(ctx, "aurora-pool")
				if err != nil {
					return nil, err
				}
				return l.Release, nil
			}
		}
	}
	lc := &lifecycle.Lifecycle{
		Store: s, Cloner: cl, Runtime: rt, Providers: providersOf(cfg),
		LockDir: filepath.Join(cfg.Home, "locks"), Owner: cfg.Owner, TTL: cfg.TTL.D(), Log: a.log, Now: a.opts.Now,
		Rehearsal: cfg.RehearsalOptions(),
	}
	if a.metrics != nil {
		lc.OnRun = a.metrics.Run
	}
	// Reports from the CLI are tried once, and a failure is a warning,
	// never the command's failure; prenv serve retries its own.
	if rep := a.reporter(cfg); rep != nil {
		d := &github.Deployments{Reporter: rep, Repo: func(k env.Key) string { return reportRepo(cfg, k) },
			Check: cfg.Migration.Check, FailOn: cfg.Migration.FailOnCodes(),
			Warn: func(what string, err error) {
				fmt.Fprintf(a.opts.Stderr, "warning: %s: %v (the environment is not affected)\n", what, err)
			}}
		if wf, err := a.workflow(); err == nil && wf != nil && wf.LogURL != "" {
			d.LogURL = func(env.Key) string { return wf.LogURL }
		}
		lc.Reporter = d
	} else if cfg.Migration.Check {
		a.log.Warn("migration.check is on, but prenv has no GitHub token here (PRENV_GITHUB_TOKEN or GITHUB_TOKEN): no check run is posted")
	}
	return lc, nil
}

// keep lets an Aurora cloner read its master passwords back from where
// the runtime keeps them (the Kubernetes runtime's database Secret), so
// that an up on a fresh runner does not set a new one.
func keep(cl dbclone.Cloner, rt runtime.Runtime) {
	ac, ok := cl.(*aurora.Cloner)
	if !ok {
		return
	}
	if pk, ok := rt.(dbclone.PasswordKeeper); ok {
		ac.Keeper = pk
	}
}

// providers are cfg's runtime (nil for database-only environments) and
// cloner, the cloner reading passwords back from the runtime (keep).
func (a *app) providers(cfg config.Config) (runtime.Runtime, dbclone.Cloner, error) {
	rt, err := a.runtime(cfg)
	if err != nil {
		return nil, nil, err
	}
	cl, err := a.cloner(cfg)
	if err != nil {
		return nil, nil, err
	}
	keep(cl, rt)
	return rt, cl, nil
}

// reader is a Lifecycle that reads: s and cfg's providers, for ls and
// status to merge what the resources say with the records.
func (a *app) reader(cfg config.Config, s store.Store) (*lifecycle.Lifecycle, error) {
	rt, cl, err := a.providers(cfg)
	if err != nil {
		return nil, err
	}
	return &lifecycle.Lifecycle{Store: s, Cloner: cl, Runtime: rt, Providers: providersOf(cfg),
		LockDir: filepath.Join(cfg.Home, "locks"), Owner: cfg.Owner, TTL: cfg.TTL.D(), Log: a.log, Now: a.opts.Now}, nil
}

// providersOf is what cfg chooses, as an environment made with it records
// it: the providers and the settings that say where their resources live.
func providersOf(cfg config.Config) store.Providers {
	p := store.Providers{Database: cfg.Database.Provider, Home: cfg.Home}
	if abs, err := filepath.Abs(cfg.Home); err == nil {
		p.Home = abs
	}
	if cfg.Source != "defaults" {
		p.Config = cfg.Source // Load makes it absolute
	}
	set := func(m *map[string]string, k, v string) {
		if v == "" {
			return
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
	}
	if cfg.Database.Provider == "aurora" {
		a := cfg.Database.Aurora
		set(&p.DatabaseSettings, "region", a.Region)
		set(&p.DatabaseSettings, "endpoint", a.Endpoint)
		set(&p.DatabaseSettings, "prefix", a.Prefix)
	}
	if !cfg.HasApp() {
		return p
	}
	p.Runtime = cfg.Runtime.Provider
	switch cfg.Runtime.Provider {
	case "local":
		set(&p.RuntimeSettings, "listen", cfg.Listen) // the prenv serve that runs and proxies the app
	case "kubernetes":
		k := cfg.Runtime.Kubernetes
		kubeconfig := k.Kubeconfig
		if kubeconfig != "" && !filepath.IsAbs(kubeconfig) {
			kubeconfig = filepath.Join(cfg.Dir, kubeconfig)
		}
		set(&p.RuntimeSettings, "kubeconfig", kubeconfig)
		set(&p.RuntimeSettings, "context", k.Context)
		set(&p.RuntimeSettings, "namespace", k.Namespace)
	}
	return p
}

// madeWith returns the configuration to act on k with (down, logs,
// status): cfg when k was made with cfg's providers or nothing says how it
// was made, else the configuration file k was made from, loaded again (said
// on stderr). It refuses, changing nothing, when that file cannot be loaded
// or no longer chooses the providers k was made with.
func (a *app) madeWith(ctx context.Context, s store.Store, cfg config.Config, k env.Key) (config.Config, error) {
	rec, err := a.recordedProviders(ctx, s, cfg, k)
	if err != nil || !rec.Known() {
		return cfg, err
	}
	if sameProviders(rec, providersOf(cfg)) {
		return cfg, nil
	}
	name, from := k.Name(), "the defaults (no prenv.yaml)"
	if rec.Config != "" {
		from = rec.Config
	}
	loaded, err := a.configAt(rec.Config)
	if err != nil {
		return cfg, usageError{fmt.Errorf("%s was made with %s from %s, which cannot be loaded now (%v), and this configuration has %s: pass the configuration it was made with, --config %s (or a copy of it); nothing was changed",
			name, rec, from, err, providersOf(cfg), orPlaceholder(rec.Config))}
	}
	// The environment's record is in this PRENV_HOME, whatever the file says.
	loaded.Home = cfg.Home
	if loaded.Repository == "" {
		loaded.Repository = cfg.Repository
	}
	if now := providersOf(loaded); !sameProviders(rec, now) {
		return cfg, usageError{fmt.Errorf("%s was made with %s from %s, but that file now chooses %s: pass the configuration it was made with, --config FILE; nothing was changed",
			name, rec, from, now)}
	}
	fmt.Fprintf(a.opts.Stderr, "%s was made with %s: using %s, not %s\n", name, rec, from, describeSource(cfg))
	return loaded, nil
}

// madeWithKey resolves k (see resolve) and returns the configuration it
// was made with (see madeWith).
func (a *app) madeWithKey(ctx context.Context, cfg config.Config, k env.Key, repoGiven bool) (config.Config, env.Key, error) {
	s, err := a.store(ctx, cfg)
	if err != nil {
		return cfg, k, err
	}
	defer s.Close()
	if k, err = resolve(ctx, s, k, repoGiven); err != nil {
		return cfg, k, err
	}
	cfg, err = a.madeWith(ctx, s, cfg, k)
	return cfg, k, err
}

// recordedProviders are the providers k's record names, else those its
// database's labels name (a record made before prenv recorded providers,
// or none at all); zero when neither says.
func (a *app) recordedProviders(ctx context.Context, s store.Store, cfg config.Config, k env.Key) (store.Providers, error) {
	e, err := s.Get(ctx, k)
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return store.Providers{}, fmt.Errorf("read the record of %s: %w", k.Name(), err)
	case err == nil && e.State == env.StateDeleted:
		return store.Providers{}, nil // gone: any configuration will do
	case err == nil && e.Providers.Known():
		return e.Providers, nil
	}
	cl, err := a.cloner(cfg)
	if err != nil {
		return store.Providers{}, nil // the current configuration's own error comes when it is used
	}
	db, err := cl.Get(ctx, k)
	if err != nil {
		return store.Providers{}, nil
	}
	p, _ := lifecycle.ProvidersFromLabels(db.Labels)
	return p, nil
}

// sameProviders compares the providers; a record read from labels has no
// settings, and is compared by the providers' names.
func sameProviders(rec, cur store.Providers) bool {
	if rec.DatabaseSettings == nil && rec.RuntimeSettings == nil {
		return rec.Database == cur.Database && rec.Runtime == cur.Runtime
	}
	return rec.Same(cur)
}

// configAt loads the configuration at path (the defaults when empty) with
// the environment and the flags over it, as --config path would.
func (a *app) configAt(path string) (config.Config, error) {
	saved := a.configPath
	defer func() { a.configPath = saved }()
	a.configPath = path
	if path == "" {
		a.configPath = os.DevNull // the defaults, whatever is in the current directory
	}
	cfg, err := a.config()
	if err == nil && path == "" {
		cfg.Source, cfg.Dir = "defaults", a.opts.Dir
	}
	return cfg, err
}

func describeSource(cfg config.Config) string {
	if cfg.Source == "defaults" {
		return "the defaults"
	}
	return cfg.Source
}

func orPlaceholder(path string) string {
	if path == "" {
		return os.DevNull
	}
	return path
}

// startServer starts 'prenv serve' in the background, in its own session,
// logging to PRENV_HOME/serve.log.
func (a *app) startServer(cfg config.Config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve"}
	if cfg.Source != "defaults" {
		args = append(args, "--config", cfg.Source)
	}
	logf, err := os.OpenFile(filepath.Join(cfg.Home, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, args...)
	cmd.Dir = cfg.Dir
	cmd.Env = append(os.Environ(), "PRENV_HOME="+cfg.Home, "PRENV_LISTEN="+cfg.Listen)
	if a.verbose {
		cmd.Args = append(cmd.Args, "--verbose")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Fprintf(a.opts.Stderr, "started prenv serve in the background on %s (pid %d, log %s)\n", cfg.Listen, cmd.Process.Pid, filepath.Join(cfg.Home, "serve.log"))
	return cmd.Process.Release()
}

// defaultCommit is the commit of the working tree's HEAD.
func defaultCommit(cfg config.Config) (string, error) {
	out, err := exec.Command("git", "-C", cfg.Dir, "rev-parse", "HEAD").Output()
	if err != nil {
		if !cfg.HasApp() {
			return "none", nil
		}
		return "", usageError{fmt.Errorf("no --sha given and %s is not a git repository: give the commit to deploy with --sha", cfg.Dir)}
	}
	return strings.TrimSpace(string(out)), nil
}
