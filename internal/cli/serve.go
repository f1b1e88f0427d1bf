package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/leader"
	"github.com/prenv/prenv/internal/metrics"
	"github.com/prenv/prenv/internal/runtime/local"
	"github.com/prenv/prenv/internal/server"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/postgres"
	"github.com/prenv/prenv/internal/webhook"
)

var _ server.Apps = (*local.Supervisor)(nil)

func (a *app) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server: supervise the environments' apps behind the reverse proxy",
		Long: `Serve every environment at http://<name>.<serve.domain>:<port> (by default
http://pr-N.localhost:8080) behind basic auth (user prenv), supervise their app
processes (restarting crashed ones with backoff) and, at start, bring every
environment back to its recorded state. prenv's own pages, API and webhooks
answer at the listen address and at public_url's host. Delivered webhooks and
finished runs older than serve.retention are removed, at start and hourly.
'prenv up' starts it in the background when none answers at PRENV_LISTEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := a.store(ctx, cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			// Runs of every lifecycle made from here on are counted, and
			// their claims from the warm pool wake its keeper.
			a.poolWake = make(chan struct{}, 1)
			q, _ := s.(store.Queue)
			a.metrics = metrics.New(metrics.Source{Store: s, Queue: q, Remaining: func() (int, bool) {
				if a.remaining == nil {
					return 0, false
				}
				return a.remaining()
			}})
			password, err := local.Password(cfg.Home, cfg.Password)
			if err != nil {
				return err
			}
			token, err := local.Token(cfg.Home)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (is another prenv serve running? set PRENV_LISTEN to use another address)", cfg.Listen, err)
			}
			// Restores and sweeps go through the lifecycle, as the CLI's
			// up and down and the webhook worker's do.
			lc, err := a.lifecycle(ctx, cfg)
			if err != nil {
				return err
			}
			defer lc.Store.Close()
			reports, err := a.serveReporter(cfg)
			if err != nil {
				return err
			}
			lc.Reporter = nil
			if reports != nil {
				lc.Reporter = reports
				defer reports.Wait()
			}
			hooks, reconcile, err := a.webhooks(ctx, cfg, s)
			if err != nil {
				return err
			}
			srv := &server.Server{Listen: cfg.Listen, PublicURL: cfg.PublicURL, Domain: cfg.Serve.Domain,
				Password: password, Token: token, Store: s, Log: a.log, Webhooks: hooks,
				LogFile: func(name string) string { return local.LogPath(cfg.Home, name) }}
			sup := local.NewSupervisor(ctx, cfg.Home, cfg.Owner, a.log)
			sup.Isolate = accessGroup(cfg) != 0 // as root, no app runs as root
			sup.URL = srv.EnvURL
			sup.EnsureDatabase = func(ctx context.Context, key string) (string, error) {
				k, err := env.ParseKey(key)
				if err != nil {
					return "", err
				}
				return lc.DatabaseURL(ctx, k) // brought back by lc.Restore first
			}
			srv.Supervisor = sup
			if p, ok := s.(store.Pinger); ok {
				srv.Ready = p.Ping
			}
			srv.Metrics = a.metrics.Handler()
			pidFile := filepath.Join(cfg.Home, "serve.pid")
			_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
			defer os.Remove(pidFile)
			if cfg.GitHub.WebhookSecret != "" && cfg.Runtime.Provider == "local" && cfg.HasApp() && !cfg.App.Checkout {
				a.log.Warn("app.checkout is off: every pull request's environment builds and runs the working tree at " + cfg.Dir + ", not its own commit; set app.checkout: true (prenv then fetches each commit from origin)")
			}
			a.log.Info("prenv serve listening", "addr", cfg.Listen, "home", cfg.Home, "environments", srv.EnvURL("pr-N"))
			go func() {
				if err := lc.Restore(ctx); err != nil {
					a.log.Error("restore", "err", err)
				}
				sup.Restore(ctx)
			}()
			// One replica (the leader) reconciles, prunes, sweeps, keeps the
			// warm pool and builds golden data; every replica takes
			// deliveries.
			var leadMu sync.Mutex
			leads := 0
			idle := sync.NewCond(&leadMu)
			lead := func(ctx context.Context) {
				leadMu.Lock()
				leads++
				leadMu.Unlock()
				defer func() { leadMu.Lock(); leads--; idle.Broadcast(); leadMu.Unlock() }()
				var duties sync.WaitGroup
				run := func(f func()) { duties.Add(1); go func() { defer duties.Done(); f() }() }
				run(func() { reconcile(ctx) })
				if p, ok := s.(store.Pruner); ok {
					run(func() { (&webhook.Retention{Store: p, Keep: cfg.Serve.Retention.D(), Log: a.log}).Run(ctx) })
				} else {
					a.log.Warn("this store cannot remove old deliveries and runs: it grows with every push")
				}
				if cfg.Sweep.Interval > 0 {
					run(func() { a.sweeping(ctx, cfg, lc, cfg.Sweep.Interval.D()) })
				} else {
					a.log.Info("sweeps are off (sweep.interval is 0): run 'prenv sweep --apply' on a schedule")
				}
				if cfg.Golden.Schedule != "" {
					run(func() { a.goldenScheduling(ctx, cfg) })
				}
				if ac, ok := lc.Cloner.(*aurora.Cloner); ok && cfg.Database.Aurora.Pool.Size > 0 {
					run(func() { a.pooling(ctx, ac, a.poolWake) })
				}
				duties.Wait()
			}
			electing := make(chan struct{})
			go func() { a.elector(cfg, s).Run(ctx, lead); close(electing) }()
			err = srv.Run(ctx, l)
			sup.Shutdown() // no preview keeps running unsupervised
			// A golden build cut short deletes what it made (bounded by
			// its own cleanup); serve does not exit from under it.
			<-electing
			leadMu.Lock()
			for leads > 0 {
				idle.Wait()
			}
			leadMu.Unlock()
			return err
		},
	}
	return cmd
}

// elector chooses how replicas of prenv serve elect their leader: alone
// with a store of its own; on a Lease in its namespace when it runs in a
// Kubernetes cluster (POD_NAMESPACE, which the chart sets) and shares a
// store; else on the shared store's lock.
func (a *app) elector(cfg config.Config, s store.Store) leader.Elector {
	locker, shared := s.(store.Locker)
	if !shared {
		return leader.Alone{}
	}
	if ns := a.opts.Getenv("POD_NAMESPACE"); ns != "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			if client, err := kubernetes.NewForConfig(rc); err == nil {
				return leader.Lease{Client: client, Namespace: ns, Identity: replicaID(), Log: a.log}
			}
		}
	}
	return leader.StoreLock{Locker: locker, Log: a.log, Grace: 2*postgres.LockCheck + time.Second}
}
