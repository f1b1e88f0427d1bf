package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone/aurora"
)

// poolCloner is the configuration and its aurora cloner, for the warm
// pool's commands, and what closes them; an error when the database is
// not on Aurora.
func (a *app) poolCloner(ctx context.Context) (config.Config, *aurora.Cloner, func(), error) {
	cfg, err := a.config()
	if err != nil {
		return cfg, nil, nil, err
	}
	if cfg.Database.Provider != "aurora" {
		return cfg, nil, nil, usageError{fmt.Errorf("the warm pool is Aurora's: database.provider is %s; set database.aurora.pool on an Aurora installation (docs/aurora.md)", cfg.Database.Provider)}
	}
	lc, err := a.lifecycle(ctx, cfg) // the cloner with the store's pool lock
	if err != nil {
		return cfg, nil, nil, err
	}
	ac, ok := lc.Cloner.(*aurora.Cloner)
	if !ok {
		lc.Store.Close()
		return cfg, nil, nil, fmt.Errorf("the database provider is not the aurora cloner")
	}
	return cfg, ac, func() { lc.Store.Close() }, nil
}

type memberView struct {
	Cluster     string    `json:"cluster"`
	Generation  int       `json:"generation"`
	CreatedAt   time.Time `json:"created_at"`
	AgeHours    float64   `json:"age_hours"`
	State       string    `json:"state"`  // filling, ready, claimed, draining
	Status      string    `json:"status"` // RDS's, cluster/writer
	Environment string    `json:"environment,omitempty"`
}

type poolView struct {
	Size       int          `json:"size"`
	MaxAge     string       `json:"max_age"`
	Class      string       `json:"instance_class"`
	Ready      int          `json:"ready"`
	Filling    int          `json:"filling"`
	Members    []memberView `json:"members"`
	HoursSoFar float64      `json:"unclaimed_instance_hours"` // the unclaimed members' writers, since each was made
	HoursDay   float64      `json:"instance_hours_per_day"`   // a full pool's writers, a day
}

func (a *app) poolCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Show the warm pool of ready Aurora clones, and what it costs",
		Long: `Show the warm pool (database.aurora.pool): clones of the current golden
generation kept ready, cluster and writer available with their own
credentials, that a new environment claims instead of waiting minutes on
RDS. prenv serve's leader keeps the pool; without prenv serve, run
'prenv pool fill' on a schedule.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out != "" && out != "json" {
				return usageError{fmt.Errorf("-o %q: want json", out)}
			}
			cfg, c, done, err := a.poolCloner(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ms, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			o := cfg.AuroraOptions()
			v := poolView{Size: o.Pool.Size, MaxAge: cfg.Database.Aurora.Pool.MaxAge.D().String(), Class: o.Pool.InstanceClass, Members: []memberView{}}
			if v.Class == "" {
				v.Class = o.InstanceClass
			}
			if v.MaxAge == "0s" {
				v.MaxAge = "24h0m0s"
			}
			now := time.Now()
			for _, m := range ms {
				mv := memberView{Cluster: m.Cluster, Generation: m.Generation, CreatedAt: m.CreatedAt.UTC(), AgeHours: now.Sub(m.CreatedAt).Hours(), State: m.Pool, Status: m.Status}
				switch {
				case m.Draining:
					mv.State = "draining"
				case m.Claimed:
					mv.Environment = m.Key.Name()
				case m.Pool == aurora.PoolReady && m.Available():
					v.Ready++
				default:
					v.Filling++
				}
				if !m.Claimed {
					v.HoursSoFar += mv.AgeHours
				}
				v.Members = append(v.Members, mv)
			}
			v.HoursDay = float64(v.Size) * 24
			if out == "json" {
				enc := json.NewEncoder(a.opts.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			tw := tabwriter.NewWriter(a.opts.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CLUSTER\tGENERATION\tAGE\tSTATE\tRDS STATUS\tENVIRONMENT")
			for _, m := range v.Members {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", m.Cluster, m.Generation, age(now, m.CreatedAt), m.State, m.Status, orDash(m.Environment))
			}
			tw.Flush()
			if v.Size == 0 {
				fmt.Fprintln(a.opts.Stdout, "\nThe pool is off (database.aurora.pool.size is 0): new environments clone and wait on RDS.")
				return nil
			}
			fmt.Fprintf(a.opts.Stdout, "\nsize %d, %d ready, %d on their way; members older than %s are replaced.\n", v.Size, v.Ready, v.Filling, v.MaxAge)
			fmt.Fprintf(a.opts.Stdout, "cost: the unclaimed members' writers (%s) have run %.1f instance-hours; a full pool runs %.0f instance-hours a day.\n", v.Class, v.HoursSoFar, v.HoursDay)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "json")
	cmd.AddCommand(a.poolFillCmd())
	return cmd
}

func (a *app) poolFillCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "fill",
		Short: "One round of keeping the warm pool (for a scheduled workflow when prenv serve does not run)",
		Long: `One round of keeping the warm pool: members of an older golden generation,
older than database.aurora.pool.max_age, or that RDS cannot finish are
deleted; members whose cluster and writer became available get their own
credentials and become ready; new members are started up to
database.aurora.pool.size. It never waits on RDS: run it every few minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, c, done, err := a.poolCloner(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			rep, err := c.Fill(cmd.Context())
			if err != nil {
				return err
			}
			w := a.opts.Stdout
			fmt.Fprintf(w, "generation %d: %d ready, %d on their way (size %d)\n", rep.Generation, rep.Ready, rep.Filling, cfg.Database.Aurora.Pool.Size)
			for _, id := range rep.Created {
				fmt.Fprintf(w, "  started %s\n", id)
			}
			for _, id := range rep.Readied {
				fmt.Fprintf(w, "  made ready %s\n", id)
			}
			for _, d := range rep.Drained {
				fmt.Fprintf(w, "  deleting %s\n", d)
			}
			if len(rep.Problems) > 0 {
				fmt.Fprintf(a.opts.Stderr, "the round was held back (the next one tries again):\n  %s\n", strings.Join(rep.Problems, "\n  "))
			}
			return nil
		},
	}
}

// pooling keeps the warm pool on the leader: a round every 30 seconds
// when the pool is full, every 5 while members are on their way (a round
// is three listing requests), and right after a claim on this replica.
func (a *app) pooling(ctx context.Context, c *aurora.Cloner, claimed <-chan struct{}) {
	for {
		next := 30 * time.Second
		rep, err := c.Fill(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			a.log.Error("warm pool", "error", err)
		default:
			if len(rep.Created)+len(rep.Readied)+len(rep.Drained) > 0 {
				a.log.Info("warm pool", "generation", rep.Generation, "ready", rep.Ready, "filling", rep.Filling,
					"started", rep.Created, "made_ready", rep.Readied, "deleting", rep.Drained)
			}
			for _, p := range rep.Problems {
				a.log.Warn("warm pool: held back, tried again next round", "problem", p)
			}
			if a.metrics != nil {
				a.metrics.Pool(rep.Ready, rep.Filling, len(rep.Problems) > 0)
			}
			if rep.Filling > 0 || len(rep.Drained) > 0 {
				next = 5 * time.Second
			}
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-claimed:
			t.Stop()
		}
	}
}
