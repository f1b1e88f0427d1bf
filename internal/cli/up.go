package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
)

func (a *app) upCmd() *cobra.Command {
	var pr prFlag
	var repo, sha, out string
	cmd := &cobra.Command{
		Use:   "up [pr-N | --pr N] [--sha S]",
		Short: "Create or update the environment of a pull request",
		Long: `Create the environment of pull request N, or bring it to a new commit: clone the
golden database (or adopt the clone), build the commit, run its migration and
roll it out. Running it again with the same commit changes nothing. Without an
app in prenv.yaml the environment is database-only and its DATABASE_URL is printed.`,
		Args: envArg(&pr),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, k, wf, err := a.ciTarget(pr, repo)
			if err != nil {
				return err
			}
			if sha == "" && wf != nil && pr.n == 0 {
				sha = wf.SHA // the pull request's head, not the merge commit Actions checks out
			}
			if sha == "" {
				if sha, err = defaultCommit(cfg); err != nil {
					return err
				}
			}
			lc, err := a.lifecycle(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer lc.Store.Close()
			w := a.opts.Stderr
			fmt.Fprintf(w, "%s: up at %s\n", k.Name(), short(sha))
			onStep := progress(w)
			t0 := time.Now()
			e, err := lc.Up(cmd.Context(), lifecycle.UpOptions{Key: k, Commit: sha, OnStep: onStep})
			if err != nil && e.Name == "" {
				return err
			}
			v := view(cmd.Context(), lc.Store, cfg, e, envLogin(cmd.Context(), lc.Runtime, k, login(cfg)))
			a.masker(out).view(v) // before the values reach the log, the outputs or the summary
			a.finishWorkflow(wf, v)
			if out != "text" {
				if jerr := printAs(a.opts.Stdout, out, v); jerr != nil {
					return jerr
				}
			}
			if err != nil {
				if v.LastRun != nil && v.LastRun.State == string(store.RunFailed) && v.LastRun.Output != "" {
					fmt.Fprintf(a.opts.Stderr, "output of the failed step:\n%s\n", indent(v.LastRun.Output))
				}
				return err
			}
			if out == "text" {
				fmt.Fprintf(a.opts.Stdout, "%s is ready in %.2fs\n", k.Name(), time.Since(t0).Seconds())
				if v.URL != "" {
					fmt.Fprintf(a.opts.Stdout, "  url:      %s\n", v.URL)
				}
				if v.Auth != nil {
					fmt.Fprintf(a.opts.Stdout, "  login:    %s / %s\n", v.Auth.User, v.Auth.Password)
				}
				fmt.Fprintf(a.opts.Stdout, "  DATABASE_URL=%s\n", v.Database.URL)
			}
			return nil
		},
	}
	cmd.Flags().Var(&pr, "pr", "pull request number (default in GitHub Actions: the event's pull request)")
	cmd.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository, in Actions the workflow's)")
	cmd.Flags().StringVar(&sha, "sha", "", "commit to deploy (default: the pull request's head in Actions, else HEAD of the repository)")
	outputFlag(cmd, &out)
	return cmd
}

// progress prints a line per finished step with its time.
func progress(w interface{ Write([]byte) (int, error) }) lifecycle.StepFunc {
	return func(step string, took time.Duration, err error) {
		if took < 0 {
			return
		}
		status := "ok"
		if err != nil {
			status = "failed"
		}
		fmt.Fprintf(w, "  %-16s %6.2fs  %s\n", step, took.Seconds(), status)
	}
}
