package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/local"
	"github.com/prenv/prenv/internal/store"
)

func (a *app) logsCmd() *cobra.Command {
	var pr prFlag
	var repo string
	var lines int
	var follow, database bool
	cmd := &cobra.Command{
		Use:   "logs [pr-N | --pr N] [-n LINES] [-f]",
		Short: "Show an environment's output: build, migrations and the app",
		Long:  "Show an environment's output: with the local runtime, the build, migrations and the app;\non Kubernetes, every container of every pod in its namespace (the app, its migration hooks).",
		Args:  envArg(&pr),
		RunE: func(cmd *cobra.Command, args []string) error {
			recorded := false
			cfg, k, err := a.target(pr, repo)
			if err != nil {
				return err
			}
			if s, serr := a.store(cmd.Context(), cfg); serr == nil {
				k, err = resolve(cmd.Context(), s, k, repo != "")
				if err == nil {
					// The log is where the providers it was made with keep it.
					cfg, err = a.madeWith(cmd.Context(), s, cfg, k)
				}
				if err == nil {
					// The app or a migration may print its DATABASE_URL.
					if e, gerr := s.Get(cmd.Context(), k); gerr == nil {
						recorded = true
						m := a.masker("text")
						m.url(e.Database.URL)
						if au := login(cfg); au != nil && e.URL != "" {
							m.secret(au.Password)
						}
					}
				}
				s.Close()
				if err != nil {
					return err
				}
			}
			if !database && cfg.HasApp() {
				rt, err := a.runtime(cfg)
				if err != nil {
					return err
				}
				if ls, ok := rt.(runtime.LogStreamer); ok {
					err := ls.Logs(cmd.Context(), k, a.opts.Stdout, runtime.LogOptions{Lines: lines, Follow: follow})
					if follow && cmd.Context().Err() != nil {
						return nil // -f stopped with ^C
					}
					return err
				}
			}
			path := local.LogPath(cfg.Home, k.Name())
			if database || !cfg.HasApp() {
				path = filepath.Join(cfg.Home, "clones", k.Name(), "postgres.log")
			}
			f, err := os.Open(path)
			if os.IsNotExist(err) && !recorded {
				return fmt.Errorf("no environment %s, and no log at %s: see 'prenv ls': %w", k.Name(), path, store.ErrNotFound)
			}
			if os.IsNotExist(err) {
				return fmt.Errorf("%s has no log at %s: %w", k.Name(), path, errNoLog)
			}
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tail(f, a.opts.Stdout, lines); err != nil {
				return err
			}
			for follow {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
				if _, err := io.Copy(a.opts.Stdout, f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().Var(&pr, "pr", "pull request number (a positive integer)")
	cmd.Flags().StringVar(&repo, "repo", "", "repository owner/name (default: prenv.yaml's repository)")
	cmd.Flags().IntVarP(&lines, "lines", "n", 200, "number of lines from the end (0 for all)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	cmd.Flags().BoolVar(&database, "database", false, "show the database server's log instead")
	return cmd
}

var errNoLog = fmt.Errorf("no log")

// tail copies the last n lines of f to w and leaves f at its end.
func tail(f *os.File, w io.Writer, n int) error {
	var ring []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if n > 0 && len(ring) > n {
			ring = ring[1:]
		}
	}
	for _, l := range ring {
		fmt.Fprintln(w, l)
	}
	return sc.Err()
}
