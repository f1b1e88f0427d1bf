package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/store"
)

// errNoReport: the environment exists but no migration was rehearsed.
var errNoReport = errors.New("no migration report")

func (a *app) migrationCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "migration", Short: "Show what pull requests' migrations did on their full-size clones"}
	var pr prFlag
	var repo, out string
	report := &cobra.Command{
		Use:   "report [pr-N | --pr N] [-o markdown|json|yaml|text]",
		Short: "Print the rehearsal report of an environment's newest migration",
		Long: `Print what the environment's newest migration did on its full-size clone of
the golden data (docs/migration.md): its duration, schema diff, rows written,
locks held, tables rewritten and warnings, warnings first. -o markdown is
what a CI step posts (a pull request comment, a job summary); -o json the
report as 'prenv status -o json' shows it under migration. Exit 3 when the
environment has no report yet.`,
		Args: envArg(&pr),
		PreRunE: func(*cobra.Command, []string) error {
			return checkOutput(out, "text", "markdown", "json", "yaml")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, k, err := a.target(pr, repo)
			if err != nil {
				return err
			}
			s, err := a.store(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			if k, err = resolve(cmd.Context(), s, k, repo != ""); err != nil {
				return err
			}
			r, err := s.LastMigration(cmd.Context(), k)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s has no migration report: no up has migrated it yet (or migration.rehearse is off, or its database did not answer from here): %w", k.Name(), errNoReport)
			}
			if err != nil {
				return err
			}
			var rep rehearsal.Report
			if err := json.Unmarshal(r.Migration, &rep); err != nil {
				return fmt.Errorf("the migration report of %s does not read: %w", k.Name(), err)
			}
			switch out {
			case "json", "yaml":
				return printAs(a.opts.Stdout, out, migrationView{Commit: r.Commit, Report: rep})
			case "markdown":
				md := strings.Replace(rep.Markdown(), "### Migration rehearsal: ", fmt.Sprintf("### Migration rehearsal of %s (commit %s): ", k.Name(), short(r.Commit)), 1)
				fmt.Fprintln(a.opts.Stdout, md)
			default:
				fmt.Fprintf(a.opts.Stdout, "migration rehearsal of %s (commit %s):\n%s\n", k.Name(), short(r.Commit), rep.Text())
			}
			return nil
		},
	}
	report.Flags().Var(&pr, "pr", "pull request number (a positive integer)")
	report.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository)")
	report.Flags().StringVarP(&out, "output", "o", "text", "output format: text, markdown, json or yaml")
	cmd.AddCommand(report)
	return group(cmd)
}
