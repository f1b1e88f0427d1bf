package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
)

func (a *app) goldenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "golden",
		Short: "Build and list the golden data that environments are cloned from",
	}
	cmd.AddCommand(a.goldenBuildCmd(), a.goldenCheckCmd(), a.goldenLsCmd())
	return group(cmd)
}

func (a *app) goldenBuildCmd() *cobra.Command {
	var src golden.Source
	var allowEmpty, allowPII bool
	cmd := &cobra.Command{
		Use:   "build [--from-sql FILE | --from-dump FILE | --from-url URL]",
		Short: "Build a new golden generation from golden.source, a SQL file, a pg_dump archive or a live database",
		Long: `Restore the source into a fresh PostgreSQL data directory owned by prenv, shut it
down cleanly and promote it as the next numbered generation. New clones use the
newest generation; clones made from older ones keep working. Without a --from
flag the source is golden.source from prenv.yaml (what prenv serve builds on
golden.schedule). After a promotion, generations beyond golden.keep are deleted.

On Aurora (golden.source.aurora) the build restores the production cluster's
newest automated snapshot (or a copy-on-write clone of it) into a cluster of
its own named after the generation, masks it in place through SQL, scans it,
and promotes it by tag (prenv.dev/golden); new environments clone the newest
promoted generation. A failed or refused build is deleted.

A source that restores to no tables in database.name is refused (--allow-empty
promotes it anyway), and so is one that drops, renames, locks out or makes a
superuser of the application's role (database.user); the current generation
then stays current.

golden.masking's rules are applied before promotion (deterministic, keyed by
its salt; unique keys and foreign keys are checked afterwards), then every
column no rule covers and no keep lists is scanned for personal data: a
finding refuses the build, rules or none (exit 1, a report per column, the
current generation stays current), unless --allow-pii, which the generation
records. 'prenv golden check' does all of it without promoting. An interrupted build (Ctrl-C, SIGTERM: exit 130) leaves
nothing behind; one killed outright is cleaned up by the next build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			g, err := a.buildGolden(cmd.Context(), cfg, src, goldenRun{AllowEmpty: allowEmpty, AllowPII: allowPII})
			if err != nil {
				return err
			}
			if g.Cluster != "" {
				fmt.Fprintf(a.opts.Stdout, "golden generation %d is ready (cluster %s, %s) in %.1fs\n", g.Number, g.Cluster, humanBytes(g.SizeBytes), g.Seconds)
			} else {
				fmt.Fprintf(a.opts.Stdout, "golden generation %d is ready (%s) in %.1fs\n", g.Number, humanBytes(g.SizeBytes), g.Seconds)
			}
			return nil
		},
	}
	sourceFlags(cmd, &src)
	cmd.Flags().BoolVar(&allowEmpty, "allow-empty", false, "promote the generation even if the source has no tables")
	cmd.Flags().BoolVar(&allowPII, "allow-pii", false, "promote the generation even if columns no masking rule covers look personal (recorded on the generation)")
	return cmd
}

// sourceFlags binds where golden data comes from.
func sourceFlags(cmd *cobra.Command, src *golden.Source) {
	cmd.Flags().StringVar(&src.SQLFile, "from-sql", "", "plain SQL file (run with psql)")
	cmd.Flags().StringVar(&src.DumpFile, "from-dump", "", "pg_dump archive (custom, directory or tar format)")
	cmd.Flags().StringVar(&src.URL, "from-url", "", "postgres:// URL of a live database to dump with pg_dump")
}

// goldenRun is how one golden build runs.
type goldenRun struct {
	AllowEmpty, AllowPII, DryRun bool
}

// builtGolden is what a build made, local or on Aurora.
type builtGolden struct {
	Number    int
	Cluster   string // on Aurora
	SizeBytes int64
	Masking   *golden.Masking
	Seconds   float64
}

// buildGolden builds (or with DryRun checks) a golden generation from src,
// or from golden.source when src is empty: a local one, or on Aurora a
// golden cluster. The CLI and prenv serve's schedule build through here.
func (a *app) buildGolden(ctx context.Context, cfg config.Config, src golden.Source, run goldenRun) (builtGolden, error) {
	given := src != golden.Source{}
	verb := "building"
	if run.DryRun {
		verb = "checking"
	}
	t0 := time.Now()
	if cfg.Database.Provider == "aurora" {
		if given {
			return builtGolden{}, usageError{fmt.Errorf("on Aurora the golden data is a cluster restored from golden.source.aurora; --from-sql, --from-dump and --from-url build local golden data (database.provider localpg)")}
		}
		b, err := a.auroraGolden(cfg)
		if err != nil {
			return builtGolden{}, err
		}
		b.AllowEmpty, b.AllowPII, b.DryRun = run.AllowEmpty, run.AllowPII, run.DryRun
		how := "the newest automated snapshot"
		if b.From == aurora.FromClone {
			how = "a copy-on-write clone"
		}
		fmt.Fprintf(a.opts.Stderr, "%s golden data on Aurora from %s of cluster %s\n", verb, how, b.Production)
		g, err := b.Build(ctx)
		if err != nil {
			return builtGolden{}, err
		}
		return builtGolden{Number: g.Number, Cluster: g.Cluster, SizeBytes: g.SizeBytes, Masking: g.Masking, Seconds: time.Since(t0).Seconds()}, nil
	}
	if !given {
		if !cfg.Golden.Source.Set() {
			return builtGolden{}, usageError{fmt.Errorf("%w: no source: give --from-sql FILE, --from-dump FILE or --from-url URL, or set golden.source in prenv.yaml", golden.ErrSource)}
		}
		src = goldenSource(cfg)
	}
	if err := src.Check(); err != nil {
		return builtGolden{}, err
	}
	b, err := a.goldenBuilder(ctx, cfg)
	if err != nil {
		return builtGolden{}, err
	}
	b.AllowEmpty, b.AllowPII, b.DryRun = run.AllowEmpty, run.AllowPII, run.DryRun
	fmt.Fprintf(a.opts.Stderr, "%s golden data from %s with %s\n", verb, src, b.Bin.Version)
	g, err := b.Build(ctx, src)
	if err != nil {
		return builtGolden{}, err
	}
	return builtGolden{Number: g.Number, SizeBytes: g.SizeBytes, Masking: g.Masking, Seconds: time.Since(t0).Seconds()}, nil
}

// goldenScheduling builds the golden data from golden.source on
// golden.schedule (UTC) until ctx is done, as 'prenv golden build' does; a
// failed or refused build is logged and the current generation stays.
func (a *app) goldenScheduling(ctx context.Context, cfg config.Config) {
	sched, err := config.ParseSchedule(cfg.Golden.Schedule)
	if err != nil {
		a.log.Error("golden.schedule", "error", err) // Validate refused it already
		return
	}
	for {
		next := sched.Next(a.opts.Now().UTC())
		a.log.Info("next golden build", "at", next.Format(time.RFC3339), "schedule", cfg.Golden.Schedule)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		g, err := a.buildGolden(ctx, cfg, golden.Source{}, goldenRun{})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Error("the scheduled golden build failed: the current generation stays current", "error", err)
			continue
		}
		a.log.Info("the scheduled golden build promoted a generation", "generation", g.Number, "cluster", g.Cluster, "size", humanBytes(g.SizeBytes), "seconds", fmt.Sprintf("%.1f", g.Seconds))
	}
}

// goldenSource is golden.source as a local build's source, its files
// relative to prenv.yaml.
func goldenSource(cfg config.Config) golden.Source {
	s := cfg.Golden.Source
	rel := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(cfg.Dir, p)
		}
		return p
	}
	return golden.Source{SQLFile: rel(s.SQL), DumpFile: rel(s.Dump), URL: s.URL}
}

// goldenBuilder is a Builder of cfg's golden data with its masking rules,
// its steps shown on stderr.
func (a *app) goldenBuilder(ctx context.Context, cfg config.Config) (*golden.Builder, error) {
	if cfg.Database.Provider != "localpg" {
		return nil, usageError{fmt.Errorf("golden build makes a local golden source, but database.provider is %q", cfg.Database.Provider)}
	}
	bin, err := pgserver.FindBinaries(ctx, cfg.Database.LocalPG.BinDir)
	if err != nil {
		return nil, err
	}
	u, err := pgserver.ResolveUser(cfg.Database.LocalPG.RunAs)
	if err != nil {
		return nil, err
	}
	if u.Switched() {
		fmt.Fprintf(a.opts.Stderr, "prenv runs as root: PostgreSQL runs as user %s\n", u.Name)
		if g := accessGroup(cfg); g != 0 {
			u.Groups = []int{g} // to enter PRENV_HOME, closed to other users
		}
	}
	return &golden.Builder{
		Home: cfg.Home, Bin: bin, User: u, Database: cfg.Database.Name, AppUser: cfg.Database.User, Log: a.log,
		Masking: cfg.Golden.Masking.Rules(), Keep: cfg.Golden.Keep,
		OnStep: a.goldenStep,
	}, nil
}

func (a *app) goldenStep(step string, took time.Duration) {
	fmt.Fprintf(a.opts.Stderr, "  %-16s %6.2fs  ok\n", step, took.Seconds())
}

// auroraGolden is the builder of golden clusters from golden.source.aurora.
func (a *app) auroraGolden(cfg config.Config) (*aurora.GoldenBuilder, error) {
	src := cfg.Golden.Source.Aurora
	if src == nil {
		return nil, usageError{fmt.Errorf("%w: database.provider is aurora but golden.source.aurora is not set: name the production cluster there (or maintain the golden cluster yourself: database.aurora.source_cluster)", golden.ErrSource)}
	}
	c, err := a.cloner(cfg)
	if err != nil {
		return nil, err
	}
	ac, ok := c.(*aurora.Cloner)
	if !ok {
		return nil, fmt.Errorf("golden.source.aurora needs the aurora cloner, not %T", c)
	}
	snaps, ok := ac.API.(aurora.SnapshotAPI)
	if !ok {
		return nil, fmt.Errorf("the RDS client %T cannot list or restore snapshots", ac.API)
	}
	return &aurora.GoldenBuilder{
		Cloner: ac, Snapshots: snaps, Production: src.Cluster, From: src.From, BuildTimeout: src.BuildTimeout.D(),
		Keep: cfg.Golden.Keep, Masking: cfg.Golden.Masking.Rules(), OnStep: a.goldenStep,
	}, nil
}

func (a *app) goldenCheckCmd() *cobra.Command {
	var src golden.Source
	cmd := &cobra.Command{
		Use:   "check [--from-sql FILE | --from-dump FILE | --from-url URL]",
		Short: "Restore, mask and scan a source as golden build would, and promote nothing",
		Long: `Restore the source (golden.source without a --from flag) into a throwaway
PostgreSQL (on Aurora, a throwaway cluster), check golden.masking's rules
against it, apply them, and scan every column no rule covers and no keep lists
for personal data, as 'prenv golden build' does; then throw it all away. It
prints what was masked and exits 0 when the scan is clean; a finding prints a
report per column (detector, match rate, masked sample, the rule to add) and
exits 1. Run it in CI when the schema changes, or before the nightly build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			g, err := a.buildGolden(cmd.Context(), cfg, src, goldenRun{AllowEmpty: true, DryRun: true})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.opts.Stdout, "masked %d columns; scan: %s; nothing was promoted\n", len(g.Masking.Columns), g.Masking.Scan)
			return nil
		},
	}
	sourceFlags(cmd, &src)
	return cmd
}

func (a *app) goldenLsCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List golden generations: source, masking, scan verdict, rows, size, age",
		Long: `List the golden generations, oldest first; the last promoted one is current.
On Aurora (golden.source.aurora) they are read from the golden clusters' tags,
the same on any machine. -o json adds each build step's time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Database.Provider == "aurora" && cfg.Golden.Source.Aurora != nil {
				return a.auroraGoldenLs(cmd.Context(), cfg, out)
			}
			gens, err := golden.List(cfg.Home)
			if err != nil {
				return err
			}
			if out != "text" {
				if gens == nil {
					gens = []golden.Generation{}
				}
				return printAs(a.opts.Stdout, out, gens)
			}
			if len(gens) == 0 {
				fmt.Fprintln(a.opts.Stdout, "no golden generations: build one with 'prenv golden build --from-sql FILE'")
				return nil
			}
			tw := tabwriter.NewWriter(a.opts.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "GENERATION\tSIZE\tROWS\tAGE\tPOSTGRES\tMASKED\tSCAN\tSOURCE")
			for i, g := range gens {
				mark := ""
				if i == len(gens)-1 {
					mark = " (current)"
				}
				masked, scanned := "-", "not scanned"
				if m := g.Masking; m != nil {
					masked, scanned = fmt.Sprintf("%d columns", len(m.Columns)), m.Scan
				}
				rows := "-"
				if g.Rows > 0 {
					rows = fmt.Sprint(g.Rows)
				}
				fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", g.Number, mark, humanBytes(g.SizeBytes), rows, age(a.opts.Now(), g.CreatedAt), g.PGMajor, masked, scanned, g.Source)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &out)
	return cmd
}

// auroraGoldenLs lists the golden clusters.
func (a *app) auroraGoldenLs(ctx context.Context, cfg config.Config, out string) error {
	b, err := a.auroraGolden(cfg)
	if err != nil {
		return err
	}
	gens, err := b.Cloner.GoldenGenerations(ctx)
	if err != nil {
		return err
	}
	if out != "text" {
		if gens == nil {
			gens = []aurora.GoldenGeneration{}
		}
		return printAs(a.opts.Stdout, out, gens)
	}
	if len(gens) == 0 {
		fmt.Fprintln(a.opts.Stdout, "no golden generations: build one with 'prenv golden build' (from golden.source.aurora)")
		return nil
	}
	current := 0
	for _, g := range gens {
		if g.Promoted && g.Status == "available" {
			current = g.Number
		}
	}
	tw := tabwriter.NewWriter(a.opts.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GENERATION\tCLUSTER\tSTATE\tSIZE\tROWS\tAGE\tMASKED\tSCAN\tSOURCE")
	for _, g := range gens {
		mark, state := "", g.Status
		if g.Number == current {
			mark = " (current)"
		}
		if !g.Promoted {
			state = "building (" + g.Status + ")"
			if !g.ExpiresAt.IsZero() && a.opts.Now().After(g.ExpiresAt) {
				state = "interrupted (" + g.Status + ")"
			}
		}
		size, rows, masked, scan := "-", "-", "-", "-"
		if g.Promoted {
			size, rows, masked, scan = humanBytes(g.SizeBytes), fmt.Sprint(g.Rows), fmt.Sprintf("%d columns", g.MaskedColumns), g.Scan
		}
		fmt.Fprintf(tw, "%d%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Number, mark, g.Cluster, state, size, rows, age(a.opts.Now(), g.CreatedAt), masked, scan, g.Source)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
