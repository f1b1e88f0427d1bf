package rehearsal_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/rehearsal"
)

// BenchmarkWatch_Overhead measures what watching costs the migration it
// watches (issue 12: at most 5%) and how soon the report is ready after
// the migration ends (at most 1 s). Each iteration runs the backfill case
// (ADD COLUMN, then an UPDATE of 300,000 rows) on two fresh copies of the
// fixture, one watched with the default options and one not, in
// alternating order, and reports:
//
//	unwatched-s/op, watched-s/op  the migration's wall time (psql start to exit)
//	median-overhead-%             median over the pairs of (watched - unwatched) / unwatched
//	begin-ms/op                   Begin: connect and read the database before
//	finish-ms/op                  Finish: from the migration's end to the report
//	samples/op                    samples taken while the migration ran
//	sampling-%                    time in sample queries / the watched migration's time
//	watcher-cpu-%                 the watcher's backend's CPU time / the same
//
// On a shared machine the wall-time difference is within the run-to-run
// noise of the migration itself; sampling-% and watcher-cpu-% are the
// watching's own cost, stable from run to run.
//
// Each iteration takes about 8 s; run it a few times:
//
//	go test -run '^$' -bench Overhead -benchtime 6x ./internal/rehearsal/
func BenchmarkWatch_Overhead(b *testing.B) {
	c := fixture(b)
	ctx := context.Background()
	const sql = "ALTER TABLE orders ADD COLUMN total_eur numeric(12,2);\nUPDATE orders SET total_eur = total_cents / 100.0;\n"
	opts := rehearsal.Options{ApplicationName: migrationApp}
	var unwatched, watched, begin, finish time.Duration
	var samples int
	var sampling, cpu time.Duration
	var ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Copies made in alternating order too: the last one made is the
		// warmest in the page cache.
		plain, observed := c.copyOf(b, "fixture"), c.copyOf(b, "fixture")
		if i%2 != 0 {
			observed, plain = plain, observed
		}
		b.StartTimer()
		var pair [2]time.Duration // unwatched, watched
		for _, watch := range []bool{i%2 == 0, i%2 != 0} {
			if !watch {
				start := time.Now()
				if err := c.migrate(ctx, plain, sql); err != nil {
					b.Fatal(err)
				}
				pair[0] = time.Since(start)
				unwatched += pair[0]
				continue
			}
			start := time.Now()
			w, err := rehearsal.Begin(ctx, c.dsn(observed), opts)
			if err != nil {
				b.Fatal(err)
			}
			begin += time.Since(start)
			start = time.Now()
			cpu0, err := processCPU(rehearsal.WatcherPID(w))
			if err != nil {
				b.Fatal(err)
			}
			migErr := c.migrate(ctx, observed, sql)
			pair[1] = time.Since(start)
			watched += pair[1]
			cpu1, err := processCPU(rehearsal.WatcherPID(w))
			if err != nil {
				b.Fatal(err)
			}
			cpu += cpu1 - cpu0
			samples += rehearsal.SamplesTaken(w)
			sampling += rehearsal.SamplingTime(w)
			start = time.Now()
			r, err := w.Finish(ctx, migErr)
			if err != nil {
				b.Fatal(err)
			}
			finish += time.Since(start)
			if len(r.Rows) != 1 || r.Rows[0].Updated != fixtureOrders {
				b.Fatalf("the watched migration's rows: %+v", r.Rows)
			}
		}
		ratios = append(ratios, 100*(pair[1].Seconds()-pair[0].Seconds())/pair[0].Seconds())
	}
	slices.Sort(ratios)
	n := float64(b.N)
	b.ReportMetric(unwatched.Seconds()/n, "unwatched-s/op")
	b.ReportMetric(watched.Seconds()/n, "watched-s/op")
	b.ReportMetric(ratios[len(ratios)/2], "median-overhead-%")
	b.ReportMetric(float64(begin.Milliseconds())/n, "begin-ms/op")
	b.ReportMetric(float64(finish.Milliseconds())/n, "finish-ms/op")
	b.ReportMetric(float64(samples)/n, "samples/op")
	b.ReportMetric(100*sampling.Seconds()/watched.Seconds(), "sampling-%")
	b.ReportMetric(100*cpu.Seconds()/watched.Seconds(), "watcher-cpu-%")
	b.Logf("overhead of each pair (%%): %.1f", ratios)
}

// processCPU is the user and system CPU time of a local process, from
// /proc (the benchmark's server runs on this machine).
func processCPU(pid uint32) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}
