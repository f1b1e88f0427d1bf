package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/prenv/prenv/internal/github"
	"github.com/prenv/prenv/internal/pgserver"
	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/webhook"
)

// failoverBench measures what a replica's death costs: two prenv serve
// processes (bin/prenv) on one PostgreSQL store; a pull request's delivery
// is carried out by one of them, which is killed with SIGKILL while its
// run waits on RDS (the emulator's delays are RDS's scaled down 60×: a
// cluster's 4 minutes are 4 s, an instance's 6 minutes 6 s); the time from
// the kill to the other replica's first step on the orphaned environment,
// and to the environment ready; three times.
func failoverBench(ctx context.Context, work string, bin pgserver.Binaries, u pgserver.User) {
	root, _ := os.Getwd()
	prenv := filepath.Join(root, "bin", "prenv")
	if _, err := os.Stat(prenv); err != nil {
		log.Fatalf("bench: %s missing: run make build", prenv)
	}
	dir, err := os.MkdirTemp(work, "failover-")
	check(err)
	check(os.Chmod(dir, 0o755))
	port := 55900
	for ; port < 56000 && !pgserver.FreePort(port); port++ {
	}
	_, url, err := pgserver.StartEmpty(ctx, bin, u, filepath.Join(dir, "pg"), port, nil)
	check(err)
	emu := rdsemu.New(rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 4 * time.Second, InstanceCreate: 6 * time.Second,
		ClusterDelete: time.Second, InstanceDelete: time.Second})
	rds := httptest.NewServer(emu)
	defer rds.Close()
	conn, err := pgx.Connect(ctx, url)
	check(err)
	defer conn.Close(ctx)
	secret := "bench-secret"

	fmt.Println("Failover: two prenv serve replicas on one PostgreSQL store; the one carrying out a new pull request's run is killed with SIGKILL while the run waits on RDS (delays scaled down 60×); serve.claim_ttl at its default (30s):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "failover\tkill → the other replica's first step\tkill → environment ready\truns (interrupted, succeeded)")
	const ttl = 30 * time.Second
	for i := range 3 {
		pr := 100 + i
		var procs [2]*exec.Cmd
		var listens [2]string
		for r := range procs {
			home := filepath.Join(dir, fmt.Sprintf("replica-%d-%d", pr, r))
			check(os.MkdirAll(home, 0o700))
			listens[r] = fmt.Sprintf("127.0.0.1:%d", 18810+2*i+r)
			cmd := exec.Command(prenv, "serve")
			cmd.Dir = home
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the bench, however it ends
			cmd.Env = append(os.Environ(), "PRENV_HOME="+home, "PRENV_LISTEN="+listens[r], "PRENV_PASSWORD=", "PRENV_OWNER=bench",
				"PRENV_STORE="+url, "PRENV_REPOSITORY=acme/shop", "PRENV_GITHUB_WEBHOOK_SECRET="+secret, "PRENV_GITHUB_RECONCILE=0s",
				"PRENV_SERVE_CLAIM_TTL="+ttl.String(), "PRENV_RUNTIME_PROVIDER=memory",
				"PRENV_DATABASE_PROVIDER=aurora", "PRENV_DATABASE_AURORA_SOURCE_CLUSTER=golden", "PRENV_DATABASE_AURORA_ENDPOINT="+rds.URL,
				"PRENV_DATABASE_AURORA_REGION=us-east-1", "PRENV_DATABASE_AURORA_REQUIRE_SECURITY_GROUPS=false", "PRENV_DATABASE_AURORA_READY_CHECK=api",
				"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_EC2_METADATA_DISABLED=true",
				"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
			logf, err := os.Create(filepath.Join(home, "serve.log"))
			check(err)
			cmd.Stdout, cmd.Stderr = logf, logf
			check(cmd.Start())
			procs[r] = cmd
			defer logf.Close()
		}
		sha := fmt.Sprintf("%040d", pr)
		body, _ := json.Marshal(map[string]any{"action": "opened", "number": pr, "repository": map[string]any{"full_name": "acme/shop"},
			"pull_request": map[string]any{"number": pr, "state": "open", "updated_at": time.Now().UTC().Format(time.RFC3339),
				"head": map[string]any{"sha": sha, "repo": map[string]any{"full_name": "acme/shop"}}, "base": map[string]any{"repo": map[string]any{"full_name": "acme/shop"}}}})
		waitFor(fmt.Sprintf("replica 0 (%s) accepting the delivery", listens[0]), 30*time.Second, func() bool {
			req, _ := http.NewRequest(http.MethodPost, "http://"+listens[0]+webhook.Path, bytes.NewReader(body))
			req.Header.Set("X-GitHub-Event", "pull_request")
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("failover-%d", pr))
			req.Header.Set("X-Hub-Signature-256", github.Sign([]byte(secret), body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusAccepted
		})
		key := fmt.Sprintf("#%d", pr)
		var owner string
		waitFor("the delivery claimed and its run under way", 30*time.Second, func() bool {
			var running int
			_ = conn.QueryRow(ctx, `SELECT claimed_by, (SELECT count(*) FROM prenv_runs WHERE key = $1 AND state = 'running') FROM prenv_deliveries WHERE id = $2`,
				key, fmt.Sprintf("failover-%d", pr)).Scan(&owner, &running)
			return owner != "" && running == 1
		})
		time.Sleep(time.Second) // into the wait on the cluster
		victim := -1
		for r, p := range procs {
			if strings.Contains(owner, fmt.Sprintf("/%d/", p.Process.Pid)) {
				victim = r
			}
		}
		if victim < 0 {
			log.Fatalf("bench: the claim %q names neither replica", owner)
		}
		check(procs[victim].Process.Kill())
		killed := time.Now()
		procs[victim].Wait()
		var firstStep, ready time.Duration
		waitFor("the other replica's run", ttl+time.Minute, func() bool {
			var n int
			_ = conn.QueryRow(ctx, `SELECT count(*) FROM prenv_runs WHERE key = $1 AND started_at > $2`, key, killed).Scan(&n)
			return n > 0
		})
		firstStep = time.Since(killed)
		waitFor("the environment ready", 2*time.Minute, func() bool {
			var state string
			_ = conn.QueryRow(ctx, `SELECT state FROM prenv_envs WHERE key = $1`, key).Scan(&state)
			return state == "ready"
		})
		ready = time.Since(killed)
		procs[1-victim].Process.Signal(syscall.SIGTERM) // the next failover's replicas are new ones
		procs[1-victim].Wait()
		var interrupted, succeeded int
		check(conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'interrupted'), count(*) FILTER (WHERE state = 'succeeded') FROM prenv_runs WHERE key = $1`, key).Scan(&interrupted, &succeeded))
		fmt.Fprintf(tw, "%d\t%.1f s\t%.1f s\t%d, %d\n", i+1, firstStep.Seconds(), ready.Seconds(), interrupted, succeeded)
	}
	tw.Flush()
	fmt.Println("(A killed replica's claims and locks end with its PostgreSQL sessions, which the server closes when the process dies; the other replica looks at the queue every 2 s. A replica cut off from the database keeps them until its claims' time (serve.claim_ttl) runs out and its sessions' keepalives give up, about 25 s.)")
	fmt.Println()
}

// waitFor polls cond every 100 ms until it holds, or exits the bench
// saying what did not happen.
func waitFor(what string, d time.Duration, cond func() bool) {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("bench: not within %v: %s", d, what)
		}
	}
}
