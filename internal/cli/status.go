package cli

import (
	"github.com/spf13/cobra"
)

func (a *app) statusCmd() *cobra.Command {
	var pr prFlag
	var repo, out string
	cmd := &cobra.Command{
		Use:   "status [pr-N | --pr N]",
		Short: "Show an environment: state, URL, login, database and the last run's steps",
		Args:  envArg(&pr),
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
			e, err := s.Get(cmd.Context(), k)
			if err != nil {
				return notFound(err, k.Name())
			}
			// The login and the log are those of the providers it was made with.
			if cfg, err = a.madeWith(cmd.Context(), s, cfg, k); err != nil {
				return err
			}
			rt, _ := a.runtime(cfg) // only for the login: an unusable runtime shows none
			v := view(cmd.Context(), s, cfg, e, envLogin(cmd.Context(), rt, k, login(cfg)))
			a.masker(out).view(v)
			if out != "text" {
				return printAs(a.opts.Stdout, out, v)
			}
			printStatus(a.opts.Stdout, v)
			return nil
		},
	}
	cmd.Flags().Var(&pr, "pr", "pull request number (a positive integer)")
	cmd.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository)")
	outputFlag(cmd, &out)
	return cmd
}
