package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/golden"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/rehearsal"
	"github.com/prenv/prenv/internal/runtime"
)

// The migration rehearsal bench (issue 12): the same migration on two
// fresh clones of one golden generation, one watched as prenv up watches
// it and one not, in alternating order; the overhead of the watching and
// how soon the report is ready after the migration ends.

const migrationPeople = 60_000 // and 300,000 orders

var migrationCases = []struct{ name, sql string }{
	{"backfill: ADD COLUMN, then UPDATE of every row", "ALTER TABLE orders ADD COLUMN total_eur numeric(12,2);\nUPDATE orders SET total_eur = total_cents / 100.0;\n"},
	{"change a column's type (rewrite)", "ALTER TABLE orders ALTER COLUMN quantity TYPE bigint;\n"},
	{"CREATE INDEX without CONCURRENTLY", "CREATE INDEX orders_item ON orders (item, ordered_at);\n"},
}

type migrationRow struct {
	name                       string
	unwatched, watched, report float64 // medians: seconds, seconds, milliseconds
	overhead                   float64 // median over the pairs, %
	warnings                   string
}

func migrationBench(ctx context.Context, work string, bin pgserver.Binaries, u pgserver.User, pairs int) {
	home := filepath.Join(work, "migration")
	os.MkdirAll(home, 0o755)
	defer os.RemoveAll(home)
	fmt.Fprintf(os.Stderr, "bench: migration: building a golden generation (%d people, %d orders)...\n", migrationPeople, 5*migrationPeople)
	g := buildGolden(ctx, home, bin, u, migrationPeople)
	c := localpg.New(home, "bench", nil)
	c.FirstPort, c.LastPort = 55800, 55899
	pr := 0
	clone := func() (env.Key, dbclone.Database) {
		pr++
		k := env.Key{PR: pr}
		db, err := c.Clone(ctx, dbclone.Request{Key: k, Name: k.Name(), Labels: map[string]string{}})
		check(err)
		return k, db
	}
	migrate := func(db dbclone.Database, sql string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, bin.Path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.URL, "-c", sql)
		cmd.Env = append(os.Environ(), "PGAPPNAME="+runtime.MigrationApplicationName)
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		return time.Since(t0), err
	}
	opts := rehearsal.DefaultOptions()
	opts.ApplicationName = runtime.MigrationApplicationName
	var rows []migrationRow
	for _, mc := range migrationCases {
		fmt.Fprintf(os.Stderr, "bench: migration: %s, %d pairs...\n", mc.name, pairs)
		var unwatched, watched, report, overhead []float64
		var warnings []string
		for i := 0; i < pairs; i++ {
			// Both clones first, in alternating order: the last one made
			// is the warmest in the page cache.
			kp, plain := clone()
			ko, observed := clone()
			if i%2 != 0 {
				plain, observed = observed, plain
			}
			var pair [2]float64
			for _, watch := range []bool{i%2 == 0, i%2 != 0} {
				if !watch {
					d, err := migrate(plain, mc.sql)
					check(err)
					pair[0] = d.Seconds()
					continue
				}
				w, err := rehearsal.Begin(ctx, observed.URL, opts)
				check(err)
				d, migErr := migrate(observed, mc.sql)
				check(migErr)
				pair[1] = d.Seconds()
				t0 := time.Now()
				rep, err := w.Finish(ctx, migErr)
				check(err)
				report = append(report, float64(time.Since(t0).Microseconds())/1000)
				if i == 0 {
					for _, wn := range rep.Warnings {
						warnings = append(warnings, string(wn.Code))
					}
				}
			}
			unwatched, watched = append(unwatched, pair[0]), append(watched, pair[1])
			overhead = append(overhead, 100*(pair[1]-pair[0])/pair[0])
			check(c.Delete(ctx, kp))
			check(c.Delete(ctx, ko))
		}
		rows = append(rows, migrationRow{name: mc.name, unwatched: med(unwatched), watched: med(watched), report: med(report),
			overhead: med(overhead), warnings: strings.Join(warnings, ", ")})
	}
	os.RemoveAll(golden.Root(home))

	fmt.Printf("Migration rehearsal: each migration by psql (PGAPPNAME=prenv-migrate) on a fresh clone of a golden generation of %s\n", human(g.SizeBytes))
	fmt.Printf("(%d orders), watched as prenv up watches it (samples every %v) and not, in alternating order; medians of %d pairs:\n", 5*migrationPeople, opts.Interval, pairs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "migration\tunwatched\twatched\toverhead\treport ready after\twarnings")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.2f s\t%.2f s\t%+.1f%%\t%.0f ms\t%s\n", r.name, r.unwatched, r.watched, r.overhead, r.report, r.warnings)
	}
	tw.Flush()
	fmt.Println("(overhead: the median of each pair's (watched - unwatched) / unwatched; report ready: from the migration's exit to Finish's report)")
	fmt.Println()
	if len(rows) == 0 {
		log.Fatal("bench: migration: no case ran")
	}
}
