package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
)

func (a *app) lsCmd() *cobra.Command {
	var out, repo string
	var all bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List environments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			s, err := a.store(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			if repo != "" {
				if _, err := env.NewKey(repo, 1); err != nil {
					return usageError{fmt.Errorf("--repo %q: want owner/name", repo)}
				}
			}
			list, err := a.known(cmd.Context(), cfg, s)
			if err != nil {
				return err
			}
			views := []envView{}
			auth := login(cfg)
			rt, _ := a.runtime(cfg) // only for logins: an unusable runtime shows none
			for _, e := range list {
				if e.State == "deleted" && !all {
					continue
				}
				if r := e.Key.Repo; repo != "" && !strings.EqualFold(r, repo) && !(r == "" && strings.EqualFold(cfg.Repository, repo)) {
					continue
				}
				v := view(cmd.Context(), s, cfg, e.Env, envLogin(cmd.Context(), rt, e.Key, auth))
				v.Resources = e.Resources
				views = append(views, v)
			}
			m := a.masker(out)
			for _, v := range views {
				m.view(v)
			}
			if out != "text" {
				return printAs(a.opts.Stdout, out, views)
			}
			if len(views) == 0 {
				fmt.Fprintln(a.opts.Stdout, "no environments: create one with 'prenv up --pr N'")
				return nil
			}
			tw := tabwriter.NewWriter(a.opts.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPR\tSTATE\tCOMMIT\tAGE\tGOLDEN\tURL")
			now := a.opts.Now()
			for _, v := range views {
				url := v.URL
				if url == "" {
					url = "- (database only)"
				}
				gen := "-"
				if v.Database.Generation > 0 {
					gen = fmt.Sprint(v.Database.Generation)
				}
				if v.Database.Pool != "" {
					gen += " (pool)" // claimed from the warm pool
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.PR, v.State, orDash(short(v.Commit)), age(now, v.CreatedAt), gen, url)
			}
			return tw.Flush()
		},
	}
	outputFlag(cmd, &out)
	cmd.Flags().BoolVar(&all, "all", false, "include deleted environments")
	cmd.Flags().StringVar(&repo, "repo", "", "only the environments of this repository (owner/name)")
	return cmd
}

// known is every environment of this installation: this store's records
// and, where the providers keep a status on their resources (Kubernetes,
// Aurora), those the resources show, merged (lifecycle.Merge). Resources
// that cannot be listed are said on stderr; the records are shown.
func (a *app) known(ctx context.Context, cfg config.Config, s store.Store) ([]lifecycle.Merged, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	lc, err := a.reader(cfg, s)
	var found map[env.Key]env.Status
	if err == nil {
		found, err = lc.Discover(ctx)
	}
	if err != nil {
		fmt.Fprintf(a.opts.Stderr, "warning: the environments' resources cannot be listed (%v): showing this machine's records only\n", err)
		lc, found = &lifecycle.Lifecycle{Owner: cfg.Owner}, nil
	}
	locks := lifecycle.LocksOf(s, filepath.Join(cfg.Home, "locks"))
	out := make([]lifecycle.Merged, 0, len(list)+len(found))
	for _, e := range list {
		st, ok := found[e.Key]
		delete(found, e.Key)
		out = append(out, lc.Merge(lifecycle.Observed(locks, e), true, st, ok, err == nil))
	}
	keys := make([]env.Key, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Repo != keys[j].Repo {
			return keys[i].Repo < keys[j].Repo
		}
		return keys[i].PR < keys[j].PR
	})
	for _, k := range keys {
		out = append(out, lc.Merge(store.Env{}, false, found[k], true, true))
	}
	return out, nil
}
