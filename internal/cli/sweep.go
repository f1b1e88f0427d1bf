package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/pgserver"
)

func (a *app) sweepCmd() *cobra.Command {
	var out, only string
	var apply, legacy, showForeign bool
	cmd := &cobra.Command{
		Use:   "sweep",
		Short: "Find what prenv made that nothing needs any more; --apply removes it",
		Long: `List every resource this installation's providers can see (clones, homes,
processes, namespaces, Aurora clusters and instances, golden build leftovers,
lock files) and give each one verdict with its reason:

  keep       wanted: its environment is open and not expired, its pull request is
             open, it is pinned by sweep.keep_label, a run is at work on it; or
             too young to judge (sweep.grace), or unreadable (kept: fail closed)
  expired    no up renewed it before its expiry (ttl; 'prenv extend' moves it)
  orphaned   no open pull request and no live environment, older than sweep.grace
  half-made  left by an interrupted run, wanted by nothing, older than sweep.grace
  foreign    not this installation's (no owner id, or another): never touched
  legacy     selected by sweep.legacy and older than its older_than

Without --apply nothing changes. With --apply, environments on record are
brought down like 'prenv down' (their pull request's comment says why), and
the rest is removed by its provider after checking the owner id again; at most
sweep.max_deletions per run, the oldest first. If the open pull requests
cannot be listed, or GitHub lists none while environments are open, nothing is
deleted as orphaned in that run. Deletion protection is reported, never forced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			opts, err := a.sweepOptions(cfg, apply, legacy, only)
			if err != nil {
				return err
			}
			lc, err := a.lifecycle(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer lc.Store.Close()
			plan, err := lc.Sweep(cmd.Context(), opts)
			shown := plan
			if !showForeign {
				shown.Items = nil
				for _, it := range plan.Items {
					if it.Verdict != lifecycle.VerdictForeign {
						shown.Items = append(shown.Items, it)
					}
				}
			}
			if out != "text" {
				if shown.Items == nil {
					shown.Items = []lifecycle.Item{}
				}
				if jerr := printAs(a.opts.Stdout, out, shown); jerr != nil {
					return jerr
				}
			} else {
				printPlan(a.opts.Stdout, shown, plan.Counts(), showForeign, a.opts.Now())
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&apply, "apply", false, "carry the plan out (without it nothing changes)")
	cmd.Flags().BoolVar(&legacy, "legacy", false, "with --apply, also delete what sweep.legacy selects and is older than its older_than")
	cmd.Flags().BoolVar(&showForeign, "show-foreign", false, "also list what is not this installation's")
	cmd.Flags().StringVar(&only, "only", "", "with --apply, carry out only these verdicts (comma-separated: expired, orphaned, half-made, legacy)")
	outputFlag(cmd, &out)
	return cmd
}

// sweepOptions are cfg's sweep settings, refused as bad input when they
// cannot be carried out safely.
func (a *app) sweepOptions(cfg config.Config, apply, legacy bool, only string) (lifecycle.SweepOptions, error) {
	s := cfg.Sweep
	opts := lifecycle.SweepOptions{Apply: apply, ApplyLegacy: apply && legacy, Grace: s.Grace.D(), MaxDeletions: s.MaxDeletions,
		KeepLabel: s.KeepLabel, DefaultRepo: cfg.Repository}
	if opts.DefaultRepo == "" && a.opts.Getenv("GITHUB_ACTIONS") == "true" {
		opts.DefaultRepo = a.opts.Getenv("GITHUB_REPOSITORY") // the nightly workflow's repository
	}
	for _, name := range strings.Split(only, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		v, err := lifecycle.ParseVerdict(name)
		if err != nil {
			return opts, usageError{fmt.Errorf("--only: %v", err)}
		}
		if !v.Deletes() {
			return opts, usageError{fmt.Errorf("--only %s: a sweep never deletes what it calls %s; want expired, orphaned, half-made or legacy", v, v)}
		}
		opts.Only = append(opts.Only, v)
	}
	if legacy && !cfg.Sweep.Legacy.Enabled() {
		return opts, usageError{fmt.Errorf("--legacy: sweep.legacy selects nothing: set sweep.legacy.tags (Aurora) or namespace_pattern and namespace_labels (Kubernetes), and older_than, in prenv.yaml")}
	}
	if legacy && !apply {
		return opts, usageError{fmt.Errorf("--legacy deletes, and goes with --apply; without --apply the plan lists the legacy resources already")}
	}
	if apply && sharedCloud(cfg) && cfg.Owner == config.Default().Owner {
		return opts, usageError{fmt.Errorf("sweep --apply on a shared %s needs this installation's own owner id, but owner is still the default %q that every installation shares: set owner in prenv.yaml (for example owner: acme-previews; environments made before keep %q and show as foreign, so bring them down first with prenv down); nothing was changed",
			sharedWhat(cfg), cfg.Owner, cfg.Owner)}
	}
	if l := cfg.Sweep.Legacy; l.Enabled() {
		opts.Legacy = &env.Legacy{Tags: l.Tags, NamePattern: l.NamespacePattern, Labels: l.NamespaceLabels, OlderThan: l.OlderThan.D()}
	}
	client, err := a.githubClient(cfg)
	if err != nil {
		return opts, err
	}
	if client != nil {
		opts.Pulls = github.PullLister{Client: client}
	}
	opts.Inventories = a.sweepInventories(cfg)
	return opts, nil
}

// sharedCloud reports whether cfg's resources live where other
// installations' do (an AWS account, a Kubernetes cluster): there, only
// the owner id tells them apart. What lies under PRENV_HOME is ours by
// location.
func sharedCloud(cfg config.Config) bool {
	return cfg.Database.Provider == "aurora" || cfg.HasApp() && cfg.Runtime.Provider == "kubernetes"
}

func sharedWhat(cfg config.Config) string {
	var parts []string
	if cfg.Database.Provider == "aurora" {
		parts = append(parts, "AWS account (Aurora)")
	}
	if cfg.HasApp() && cfg.Runtime.Provider == "kubernetes" {
		parts = append(parts, "Kubernetes cluster")
	}
	return strings.Join(parts, " and ")
}

// printPlan writes the plan as a table, the legacy resources apart, and a
// line of counts.
func printPlan(w io.Writer, p lifecycle.Plan, counts map[lifecycle.Verdict]int, showForeign bool, now time.Time) {
	var own, legacy []lifecycle.Item
	for _, it := range p.Items {
		if it.Legacy {
			legacy = append(legacy, it)
		} else {
			own = append(own, it)
		}
	}
	table := func(items []lifecycle.Item) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		header := "PROVIDER\tKIND\tRESOURCE\tENV\tAGE\tEXPIRES\tVERDICT\tREASON"
		if p.Applied {
			header += "\tOUTCOME"
		}
		fmt.Fprintln(tw, header)
		for _, it := range items {
			line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", it.Provider, it.Kind, it.ID, orDash(it.Environment),
				ageOf(time.Duration(it.Age)), expires(now, it.ExpiresAt), it.Verdict, it.Reason)
			if p.Applied {
				line += "\t" + orDash(it.Outcome)
			}
			fmt.Fprintln(tw, line)
		}
		tw.Flush()
	}
	if len(own) == 0 {
		fmt.Fprintln(w, "nothing of this installation's was found")
	} else {
		table(own)
	}
	if len(legacy) > 0 {
		fmt.Fprintln(w, "\nLegacy resources (selected by sweep.legacy; deleted only with --apply --legacy):")
		table(legacy)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	var parts []string
	for _, v := range lifecycle.Verdicts {
		if v == lifecycle.VerdictForeign && !showForeign && counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d foreign (not shown: --show-foreign lists them)", counts[v]))
			continue
		}
		parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
	}
	fmt.Fprintln(w, "\n"+strings.Join(parts, ", ")+".")
	if !p.Applied {
		fmt.Fprintln(w, "Dry run: nothing was changed. 'prenv sweep --apply' carries the plan out.")
	}
}

func ageOf(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return shortDuration(d)
}

func expires(now, at time.Time) string {
	if at.IsZero() {
		return "-"
	}
	if d := at.Sub(now); d >= 0 {
		return "in " + shortDuration(d)
	}
	return shortDuration(now.Sub(at)) + " ago"
}

func shortDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	}
	return fmt.Sprintf("%ds", int(d/time.Second))
}

func (a *app) extendCmd() *cobra.Command {
	var pr prFlag
	var repo, out string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "extend [pr-N | --pr N] [--ttl DURATION]",
		Short: "Keep an environment longer: its expiry becomes now + --ttl",
		Long: `Move an environment's expiry to now + --ttl (default: ttl from prenv.yaml), on
its record and on its resources, so that the sweeper keeps it. Each up renews
the expiry by itself; a pull request labelled sweep.keep_label (prenv:keep)
is kept whatever its expiry.`,
		Args: envArg(&pr),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out); err != nil {
				return err
			}
			cfg, k, err := a.target(pr, repo)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("ttl") {
				ttl = cfg.TTL.D()
			}
			if ttl <= 0 {
				return usageError{fmt.Errorf("--ttl %s: want a positive duration, for example 72h", ttl)}
			}
			if cfg, k, err = a.madeWithKey(cmd.Context(), cfg, k, repo != ""); err != nil {
				return err
			}
			lc, err := a.lifecycle(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer lc.Store.Close()
			e, err := lc.Extend(cmd.Context(), k, ttl)
			if err != nil && e.Name == "" {
				return err
			}
			if out != "text" {
				if jerr := printAs(a.opts.Stdout, out, map[string]any{"name": k.Name(), "expires_at": e.ExpiresAt}); jerr != nil {
					return jerr
				}
			} else if !e.ExpiresAt.IsZero() {
				fmt.Fprintf(a.opts.Stdout, "%s expires at %s (in %s)\n", k.Name(), e.ExpiresAt.Local().Format(time.RFC3339), shortDuration(time.Until(e.ExpiresAt)))
			}
			return err
		},
	}
	cmd.Flags().Var(&pr, "pr", "pull request number")
	cmd.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "how long from now (default: ttl from prenv.yaml)")
	outputFlag(cmd, &out)
	return cmd
}

// sweeping sweeps every interval with apply until ctx ends, logging each
// plan (prenv serve). On a shared cloud account with the default owner id
// it only plans, and says why.
func (a *app) sweeping(ctx context.Context, cfg config.Config, lc *lifecycle.Lifecycle, interval time.Duration) {
	apply := true
	if sharedCloud(cfg) && cfg.Owner == config.Default().Owner {
		apply = false
		a.log.Warn("sweeps only plan: owner is still the default " + fmt.Sprintf("%q", cfg.Owner) + " that every installation on this " + sharedWhat(cfg) + " shares; set owner in prenv.yaml to let prenv serve delete what it made")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		opts, err := a.sweepOptions(cfg, apply, false, "")
		if err != nil {
			a.log.Error("sweep", "error", err)
			continue
		}
		plan, err := lc.Sweep(ctx, opts)
		logPlan(a, plan, err)
		if a.metrics != nil && plan.Applied {
			a.metrics.Swept(plan)
		}
	}
}

func logPlan(a *app, p lifecycle.Plan, err error) {
	counts := p.Counts()
	keys := make([]string, 0, len(counts))
	for v := range counts {
		keys = append(keys, string(v))
	}
	sort.Strings(keys)
	attrs := []any{"applied", p.Applied}
	for _, k := range keys {
		attrs = append(attrs, k, counts[lifecycle.Verdict(k)])
	}
	if err != nil {
		attrs = append(attrs, "error", err)
	}
	a.log.Info("sweep", attrs...)
	for _, it := range p.Items {
		if it.Verdict == lifecycle.VerdictKeep || it.Verdict == lifecycle.VerdictForeign {
			continue
		}
		a.log.Info("sweep plan", "provider", it.Provider, "kind", it.Kind, "id", it.ID, "env", it.Environment,
			"verdict", it.Verdict, "reason", it.Reason, "outcome", it.Outcome)
	}
	for _, n := range p.Notes {
		a.log.Warn("sweep: " + n)
	}
}

// sweepInventories are what a sweep lists besides the providers: the
// leftovers of interrupted golden builds, where golden data is built here
// (localpg).
func (a *app) sweepInventories(cfg config.Config) []env.Inventory {
	if cfg.Database.Provider != "localpg" {
		return nil
	}
	l := golden.Leftovers{Home: cfg.Home, ServerUID: os.Geteuid()}
	if u, err := pgserver.ResolveUser(cfg.Database.LocalPG.RunAs); err == nil {
		l.ServerUID = u.UID
	}
	return []env.Inventory{l}
}
