package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/lifecycle"
)

func (a *app) downCmd() *cobra.Command {
	var pr prFlag
	var repo, out string
	cmd := &cobra.Command{
		Use:   "down [pr-N | --pr N] [-o text|json|yaml]",
		Short: "Destroy the environment of a pull request",
		Long: `Destroy the environment of pull request N: stop its app, remove its home and
delete its database. What is already gone is success. Nothing that does not
carry prenv's owner id is deleted.`,
		Args: envArg(&pr),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, k, wf, err := a.ciTarget(pr, repo)
			if err != nil {
				return err
			}
			// The environment is torn down with the providers it was made
			// with, whatever the current directory's prenv.yaml says.
			if cfg, k, err = a.madeWithKey(cmd.Context(), cfg, k, repo != "" || wf != nil); err != nil {
				return err
			}
			lc, err := a.lifecycle(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer lc.Store.Close()
			fmt.Fprintf(a.opts.Stderr, "%s: down\n", k.Name())
			e, err := lc.Down(cmd.Context(), lifecycle.DownOptions{Key: k, OnStep: progress(a.opts.Stderr)})
			if err != nil {
				return err
			}
			v := view(cmd.Context(), lc.Store, cfg, e, nil)
			v.Name = k.Name()
			a.masker(out).view(v)
			a.finishWorkflow(wf, v)
			if out != "text" {
				return printAs(a.opts.Stdout, out, v)
			}
			fmt.Fprintf(a.opts.Stdout, "%s is gone\n", k.Name())
			return nil
		},
	}
	cmd.Flags().Var(&pr, "pr", "pull request number (default in GitHub Actions: the event's pull request)")
	cmd.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository, in Actions the workflow's)")
	outputFlag(cmd, &out)
	return cmd
}
