package main

import (
	"context"
	"fmt"
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
		api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Retryer: aurora.Retryer(),
			Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""),
			HTTPClient:  &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) { sent.Add(1); return http.DefaultTransport.RoundTrip(r) })}})
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
