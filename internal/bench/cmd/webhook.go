package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/store"
	"github.com/prenv/prenv/internal/store/postgres"
	"github.com/prenv/prenv/internal/store/sqlite"
	"github.com/prenv/prenv/internal/webhook"
)

// webhookBench measures how fast prenv serve accepts GitHub deliveries:
// real HTTP, the signature check and the durable enqueue, at a steady 200
// deliveries a second, each about the size GitHub sends: one prenv serve
// on its SQLite file, and two replicas on one PostgreSQL store taking
// every other delivery (as a Service spreads them).
func webhookBench(ctx context.Context, work string, bin pgserver.Binaries, u pgserver.User) {
	dir, err := os.MkdirTemp(work, "webhook-")
	check(err)
	check(os.Chmod(dir, 0o755)) // the PostgreSQL server's user reaches its data directory through it
	secret := []byte("bench-secret")
	st, err := sqlite.Open(ctx, filepath.Join(dir, "prenv.db"))
	check(err)
	defer st.Close()
	one := httptest.NewServer(&webhook.Receiver{Secret: secret, Queue: st})
	defer one.Close()
	port := 55800
	for ; port < 55900 && !pgserver.FreePort(port); port++ {
	}
	_, url, err := pgserver.StartEmpty(ctx, bin, u, filepath.Join(dir, "pg"), port, nil)
	check(err)
	var replicas []string
	var pgs []*postgres.Store
	for i := 0; i < 2; i++ {
		ps, err := postgres.Open(ctx, url)
		check(err)
		defer ps.Close()
		pgs = append(pgs, ps)
		srv := httptest.NewServer(&webhook.Receiver{Secret: secret, Queue: ps})
		defer srv.Close()
		replicas = append(replicas, srv.URL)
	}
	const rate, total = 200, 2000
	fmt.Printf("Webhook acceptance: signature check and durable enqueue over real HTTP, %d deliveries of ~20 KB at %d/s (one run each):\n", total, rate)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "prenv serve\tp50 ms\tp99 ms\tmax ms\tqueued\tfailed\tachieved rate")
	for _, c := range []struct {
		name    string
		targets []string
		queue   interface {
			Queued(context.Context, int) ([]store.Delivery, error)
		}
	}{{"one, SQLite (WAL) store", []string{one.URL}, st}, {"two replicas, one PostgreSQL store", replicas, pgs[0]}} {
		lat, failed, took := accept(c.targets, secret, rate, total)
		q, _ := c.queue.Queued(ctx, total+1)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(total-1))].Microseconds()) / 1000 }
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.0f/s\n", c.name, pct(0.50), pct(0.99), float64(lat[total-1].Microseconds())/1000, len(q), failed, float64(total)/took.Seconds())
	}
	tw.Flush()
	fmt.Println()
}

// accept sends total signed deliveries at rate a second, each to the next
// of targets in turn, and returns their latencies (sorted), how many were
// not accepted, and how long it took.
func accept(targets []string, secret []byte, rate, total int) ([]time.Duration, int, time.Duration) {
	pad := make([]byte, 20_000) // GitHub's pull_request payloads are tens of KB
	for i := range pad {
		pad[i] = 'x'
	}
	body := func(i int) []byte {
		b, _ := json.Marshal(map[string]any{"action": "synchronize", "number": 1 + i%50, "repository": map[string]any{"full_name": "acme/shop"},
			"pull_request": map[string]any{"number": 1 + i%50, "state": "open", "body": string(pad), "head": map[string]any{"sha": fmt.Sprintf("%040d", i)}}})
		return b
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	failed := 0
	var mu sync.Mutex
	start := time.Now()
	for i := 0; i < total; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := body(i)
			req, _ := http.NewRequest(http.MethodPost, targets[i%len(targets)]+webhook.Path, bytes.NewReader(b))
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", i))
			req.Header.Set("X-Hub-Signature-256", github.Sign(secret, b))
			t0 := time.Now()
			resp, err := client.Do(req)
			lat[i] = time.Since(t0)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				mu.Lock()
				failed++
				mu.Unlock()
			}
			if resp != nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return lat, failed, took
}
