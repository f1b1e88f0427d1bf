package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
)

// rdsClient is the RDS SDK client of an emulator at url (prenv's
// retryer), counting the requests it sends in sent.
func rdsClient(url string, sent *atomic.Int64) *rds.Client {
	return rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Retryer: aurora.Retryer(),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		HTTPClient:  &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) { sent.Add(1); return http.DefaultTransport.RoundTrip(r) })}})
}

// auroraBench measures the aurora cloner against the RDS emulator through
// the real SDK: prenv's own time and RDS requests per clone and per delete
// with zero delays, and 20 clones at once under a sustained rate limit.
func auroraBench(ctx context.Context, work string) {
	type world struct {
		emu  *rdsemu.Server
		c    *aurora.Cloner
		sent *atomic.Int64
	}
	newWorld := func(opts rdsemu.Options) (world, func()) {
		emu := rdsemu.New(opts)
		srv := httptest.NewServer(emu)
		var sent atomic.Int64
		api := rdsClient(srv.URL, &sent)
		home, err := os.MkdirTemp(work, "aurora-")
		check(err)
		c := &aurora.Cloner{API: api, Home: home, Options: aurora.Options{Owner: "bench", Source: "golden", DBName: "app",
			ReadyCheck: aurora.ReadyAPI, Poll: 200 * time.Millisecond, WaitTimeout: 10 * time.Minute}}
		return world{emu, c, &sent}, srv.Close
	}
	req := func(pr int) dbclone.Request {
		k := env.Key{PR: pr}
		return dbclone.Request{Key: k, Name: k.Name(), Labels: env.Labels("bench", k, time.Now(), time.Hour), ExpiresAt: time.Now().Add(time.Hour)}
	}

	w, stop := newWorld(rdsemu.Options{Sources: []string{"golden"}})
	var cloneSecs, deleteSecs []float64
	var cloneReqs, deleteReqs int64
	for pr := 1; pr <= 5; pr++ {
		w.sent.Store(0)
		t0 := time.Now()
		_, err := w.c.Clone(ctx, req(pr))
		check(err)
		cloneSecs = append(cloneSecs, time.Since(t0).Seconds())
		cloneReqs += w.sent.Load()
		w.sent.Store(0)
		t0 = time.Now()
		check(w.c.Delete(ctx, req(pr).Key))
		deleteSecs = append(deleteSecs, time.Since(t0).Seconds())
		deleteReqs += w.sent.Load()
	}
	stop()

	w, stop = newWorld(rdsemu.Options{Sources: []string{"golden"}, RateLimit: 12})
	defer stop()
	t0 := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for pr := 101; pr <= 120; pr++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.c.Clone(ctx, req(pr)); err != nil {
				failed.Add(1)
				fmt.Fprintln(os.Stderr, "bench: aurora clone under throttling:", err)
			}
		}()
	}
	wg.Wait()
	all := time.Since(t0).Seconds()
	st := w.emu.Stats()

	fmt.Println("Aurora cloner through the AWS SDK against rdsemu (zero RDS delays: prenv's own time and requests; a real clone adds AWS's minutes):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tseconds\tRDS requests\tthrottled\tfailed")
	fmt.Fprintf(tw, "clone: cluster + writer + password (median of 5)\t%.3f\t%.0f\t\t\n", med(cloneSecs), float64(cloneReqs)/5)
	fmt.Fprintf(tw, "delete: writer, then cluster (median of 5)\t%.3f\t%.0f\t\t\n", med(deleteSecs), float64(deleteReqs)/5)
	fmt.Fprintf(tw, "20 clones at once, RDS limited to 12 requests/s\t%.2f\t%d (%.1f per clone, retries included)\t%d\t%d\n",
		all, st.Requests, float64(st.Requests)/20, st.Throttled, failed.Load())
	tw.Flush()
	fmt.Println()
}

// poolBench measures the warm pool against cloning: rdsemu with RDS's
// delays scaled down 60× (a cluster's 4 minutes are 4 s, an instance's 6
// minutes 6 s, a modification's 30 s 0.5 s), the time from Clone (prenv
// up's database step) to a database ready, and the RDS requests, five
// times each: without a pool, and claiming from a pool of five kept full.
func poolBench(ctx context.Context, work string) {
	const scale = 60
	opts := rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 4 * time.Second, InstanceCreate: 6 * time.Second,
		Modify: 500 * time.Millisecond, ClusterDelete: time.Second, InstanceDelete: time.Second}
	type row struct {
		name       string
		secs, reqs []float64
	}
	measure := func(size int) row {
		emu := rdsemu.New(opts)
		srv := httptest.NewServer(emu)
		defer srv.Close()
		var sent atomic.Int64
		api := rdsClient(srv.URL, &sent)
		home, err := os.MkdirTemp(work, "pool-")
		check(err)
		c := &aurora.Cloner{API: api, Home: home, Options: aurora.Options{Owner: "bench", Source: "golden", DBName: "app",
			ReadyCheck: aurora.ReadyAPI, Poll: 200 * time.Millisecond, WaitTimeout: 10 * time.Minute,
			Pool: aurora.PoolOptions{Size: size}}}
		fill := func() {
			for {
				rep, err := c.Fill(ctx)
				check(err)
				if rep.Ready == size {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		r := row{name: "clone (no pool)"}
		if size > 0 {
			r.name = fmt.Sprintf("claim from a pool of %d", size)
		}
		for pr := 1; pr <= 5; pr++ {
			if size > 0 {
				fill() // the keeper has replenished it since the last claim
			}
			k := env.Key{PR: pr}
			sent.Store(0)
			t0 := time.Now()
			db, err := c.Clone(ctx, dbclone.Request{Key: k, Name: k.Name(), Labels: env.Labels("bench", k, time.Now(), time.Hour), ExpiresAt: time.Now().Add(time.Hour)})
			check(err)
			r.secs = append(r.secs, time.Since(t0).Seconds())
			r.reqs = append(r.reqs, float64(sent.Load()))
			if size > 0 && db.FromPool == "" {
				log.Fatalf("bench: pr-%d was cloned, not claimed, from a full pool", pr)
			}
		}
		return r
	}
	rows := []row{measure(0), measure(5)}
	fmt.Println("Warm pool: prenv up's database step, from the call to a database ready (cluster and writer available, own password), through the AWS SDK against rdsemu with RDS's delays scaled down 60× (cluster 4 min → 4 s, writer 6 min → 6 s, a modification 30 s → 0.5 s); five environments each (median):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "case\tseconds (scaled)\tat RDS's pace (×60; at most, for a claim)\tRDS requests")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.3f\t%s\t%.0f\n", r.name, med(r.secs), shortDur(time.Duration(med(r.secs)*scale*float64(time.Second))), med(r.reqs))
	}
	tw.Flush()
	fmt.Println("(A claim waits on nothing in RDS: its time is prenv's own requests, so it does not scale with RDS's delays; a clone's is almost all RDS's.)")
	fmt.Println()
}

func shortDur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f min", d.Minutes())
}
