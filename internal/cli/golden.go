package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
)

func (a *app) goldenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "golden",
		Short: "Build and list the golden data that environments are cloned from",
	}
	cmd.AddCommand(a.goldenBuildCmd(), a.goldenCheckCmd(), a.goldenLsCmd())
	return cmd
}

func (a *app) goldenBuildCmd() *cobra.Command {
	var src golden.Source
	var allowEmpty, allowPII bool
	cmd := &cobra.Command{
		Use:   "build (--from-sql FILE | --from-dump FILE | --from-url URL)",
		Short: "Build a new golden generation from a SQL file, a pg_dump archive or a live database",
		Long: `Restore the source into a fresh PostgreSQL data directory owned by prenv, shut it
down cleanly and promote it as the next numbered generation. New clones use the
newest generation; clones made from older ones keep working.

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
			if err := src.Check(); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			b, err := a.goldenBuilder(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			w := a.opts.Stderr
			fmt.Fprintf(w, "building golden data from %s with %s\n", src, b.Bin.Version)
			t0 := time.Now()
			b.AllowEmpty, b.AllowPII = allowEmpty, allowPII
			g, err := b.Build(cmd.Context(), src)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.opts.Stdout, "golden generation %d is ready (%s) in %.1fs\n", g.Number, humanBytes(g.SizeBytes), time.Since(t0).Seconds())
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
	w := a.opts.Stderr
	return &golden.Builder{
		Home: cfg.Home, Bin: bin, User: u, Database: cfg.Database.Name, AppUser: cfg.Database.User, Log: a.log,
		Masking: cfg.Golden.Masking.Rules(),
		OnStep:  func(step string, took time.Duration) { fmt.Fprintf(w, "  %-16s %6.2fs  ok\n", step, took.Seconds()) },
	}, nil
}

func (a *app) goldenCheckCmd() *cobra.Command {
	var src golden.Source
	cmd := &cobra.Command{
		Use:   "check (--from-sql FILE | --from-dump FILE | --from-url URL)",
		Short: "Restore, mask and scan a source as golden build would, and promote nothing",
		Long: `Restore the source into a throwaway PostgreSQL, check golden.masking's rules
against it, apply them, and scan every column no rule covers and no keep lists
for personal data, as 'prenv golden build' does; then throw it all away. It
prints what was masked and exits 0 when the scan is clean; a finding prints a
report per column (detector, match rate, masked sample, the rule to add) and
exits 1. Run it in CI when the schema changes, or before the nightly build.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := src.Check(); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			b, err := a.goldenBuilder(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			b.DryRun, b.AllowEmpty = true, true
			fmt.Fprintf(a.opts.Stderr, "checking golden data from %s with %s\n", src, b.Bin.Version)
			g, err := b.Build(cmd.Context(), src)
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
		Short: "List golden generations with their size and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			gens, err := golden.List(cfg.Home)
			if err != nil {
				return err
			}
			if out == "json" {
				if gens == nil {
					gens = []golden.Generation{}
				}
				return printJSON(a.opts.Stdout, gens)
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
