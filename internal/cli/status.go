package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
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
			local := err == nil
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			// The login and the log are those of the providers it was made with.
			if cfg, err = a.madeWith(cmd.Context(), s, cfg, k); err != nil {
				return err
			}
			m, err := a.knownOne(cmd.Context(), cfg, s, k, e, local)
			if err != nil {
				return err
			}
			if !local && len(m.Resources) == 0 {
				return notFound(store.ErrNotFound, k.Name())
			}
			rt, _ := a.runtime(cfg) // only for the login: an unusable runtime shows none
			v := view(cmd.Context(), s, cfg, m.Env, envLogin(cmd.Context(), rt, k, login(cfg)))
			v.Resources = m.Resources
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

// knownOne is k as this store (e, when local) and its resources say
// (lifecycle.Merge), read with a request or two per provider; resources
// that cannot be read are said on stderr, and the record is shown.
func (a *app) knownOne(ctx context.Context, cfg config.Config, s store.Store, k env.Key, e store.Env, local bool) (lifecycle.Merged, error) {
	if local {
		e = lifecycle.Observed(lifecycle.LocksOf(s, filepath.Join(cfg.Home, "locks")), e)
	}
	lc, err := a.reader(cfg, s)
	var st env.Status
	found := false
	if err == nil {
		st, found, err = lc.Recorded(ctx, k)
	}
	if err != nil {
		fmt.Fprintf(a.opts.Stderr, "warning: %s's resources cannot be read (%v): showing this machine's record only\n", k.Name(), err)
		return lifecycle.Merged{Env: e, Local: local}, nil
	}
	return lc.Merge(e, local, st, found, true), nil
}
