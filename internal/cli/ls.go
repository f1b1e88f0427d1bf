package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/prenv/prenv/internal/env"
	"github.com/spf13/cobra"
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
			list, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			views := []envView{}
			auth := login(cfg)
			rt, _ := a.runtime(cfg) // only for logins: an unusable runtime shows none
			if repo != "" {
				if _, err := env.NewKey(repo, 1); err != nil {
					return usageError{fmt.Errorf("--repo %q: want owner/name", repo)}
				}
			}
			for _, e := range list {
				if e.State == "deleted" && !all {
					continue
				}
				if r := e.Key.Repo; repo != "" && !strings.EqualFold(r, repo) && !(r == "" && strings.EqualFold(cfg.Repository, repo)) {
					continue
				}
				views = append(views, view(cmd.Context(), s, cfg, e, envLogin(cmd.Context(), rt, e.Key, auth)))
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
