package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/rdsemu"
	"github.com/prenv/prenv/internal/testenv"
)

type poolStatus struct {
	Size    int `json:"size"`
	Ready   int `json:"ready"`
	Filling int `json:"filling"`
	Members []struct {
		Cluster     string `json:"cluster"`
		State       string `json:"state"`
		Environment string `json:"environment"`
	} `json:"members"`
}

// Two prenv serve replicas on one PostgreSQL store keep a warm pool of
// five Aurora clones (the RDS emulator with RDS's delays scaled down):
// the leader fills it; twenty pull requests opened at once, their
// deliveries split between the replicas, all end ready, at least five of
// them on claimed members and the rest on clones of their own, no member
// claimed twice; prenv ls says which came from the pool; the pool refills
// to five ready.
func TestPool_TwentyPullRequestsAtOnceAgainstAPoolOfFiveOnTwoReplicas(t *testing.T) {
	first := newHarness(t)
	emu := rdsemu.New(rdsemu.Options{Sources: []string{"golden"}, ClusterCreate: 2 * time.Second, InstanceCreate: 3 * time.Second,
		Modify: 500 * time.Millisecond, ClusterDelete: 500 * time.Millisecond, InstanceDelete: 500 * time.Millisecond})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	api := rds.New(rds.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example", "")})
	const secret = "webhook-secret"
	first.extra = append(first.extra, "PRENV_OWNER=team", "PRENV_REPOSITORY=acme/shop", "PRENV_STORE="+testenv.Server(t),
		"PRENV_GITHUB_WEBHOOK_SECRET="+secret, "PRENV_GITHUB_RECONCILE=0s", "PRENV_GITHUB_CONCURRENCY=4",
		"PRENV_DATABASE_PROVIDER=aurora", "PRENV_DATABASE_AURORA_SOURCE_CLUSTER=golden", "PRENV_DATABASE_AURORA_ENDPOINT="+srv.URL,
		"PRENV_DATABASE_AURORA_REGION=us-east-1", "PRENV_DATABASE_AURORA_REQUIRE_SECURITY_GROUPS=false", "PRENV_DATABASE_AURORA_READY_CHECK=api",
		"PRENV_DATABASE_AURORA_POOL_SIZE=5",
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=example", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent")
	second := first.anotherMachine()
	replicas := []*harness{first, second}
	var logs []*bytes.Buffer
	for _, h := range replicas {
		cmd := h.command("serve")
		b := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = b, b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logs = append(logs, b)
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, b := range logs {
				t.Logf("replica %d's log:\n%s", i, b.String())
			}
		}
	})
	until := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !cond(); time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within %v: %s", d, what)
			}
		}
	}
	pool := func() poolStatus {
		out, errs, code := first.run("pool", "-o", "json")
		var p poolStatus
		if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
			t.Fatalf("prenv pool: exit %d\n%s%s", code, out, errs)
		}
		return p
	}
	until("the leader filled the pool: five ready", time.Minute, func() bool { return pool().Ready == 5 })

	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for pr := 1; pr <= 20; pr++ {
		replicas[pr%2].deliver(secret, fmt.Sprintf("d-%d", pr), pr, "opened", fmt.Sprintf("c%d", pr), "open", at)
	}
	until("twenty environments ready", 2*time.Minute, func() bool {
		for pr := 1; pr <= 20; pr++ {
			out, _, code := first.run("status", fmt.Sprintf("pr-%d", pr), "-o", "json")
			var st status
			if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != "ready" {
				return false
			}
		}
		return true
	})

	// From RDS: each environment has one cluster; a claimed member is one
	// environment's.
	out, err := api.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	byEnv := map[string][]string{}
	claimed := 0
	for _, cl := range out.DBClusters {
		id := aws.ToString(cl.DBClusterIdentifier)
		tags := map[string]string{}
		for _, tg := range cl.TagList {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		if k := tags[env.LabelKey]; k != "" {
			byEnv[k] = append(byEnv[k], id)
			if strings.HasPrefix(id, "prenv-pool-") {
				claimed++
			}
		}
	}
	if len(byEnv) != 20 {
		t.Errorf("clusters of %d environments, want 20: %v", len(byEnv), byEnv)
	}
	for k, ids := range byEnv {
		if len(ids) != 1 {
			t.Errorf("environment %s has %d clusters: %v", k, len(ids), ids)
		}
	}
	if claimed < 5 || claimed > 20 {
		t.Errorf("%d environments on pool members, want at least the five ready", claimed)
	}
	t.Logf("twenty pull requests at once against a pool of five: %d claimed a member, %d cloned", claimed, 20-claimed)

	// prenv ls says which environments came from the pool.
	ls := first.must("ls")
	if got := strings.Count(ls, "pool"); got != claimed {
		t.Errorf("prenv ls names the pool %d times, want %d:\n%s", got, claimed, ls)
	}

	until("the pool refilled: five ready", time.Minute, func() bool { return pool().Ready == 5 })

	// /metrics: the claims each replica made add up to those RDS shows;
	// the leader's keeper says the pool is full.
	scrape := func(h *harness) string {
		resp, err := http.Get("http://" + h.listen + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	claims := 0
	for _, h := range replicas {
		for _, l := range strings.Split(scrape(h), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "prenv_pool_claims_total %d", &n); err == nil {
				claims += n
			}
		}
	}
	if claims != claimed {
		t.Errorf("/metrics counts %d claims across the replicas, RDS shows %d", claims, claimed)
	}
	until("the keeper's gauge at five ready", 30*time.Second, func() bool {
		for _, h := range replicas {
			if strings.Contains(scrape(h), `prenv_pool_members{state="ready"} 5`+"\n") {
				return true
			}
		}
		return false
	})
	for _, m := range pool().Members {
		if m.State == "claimed" && m.Environment == "" {
			t.Errorf("a claimed member names no environment: %+v", m)
		}
	}
}

// The warm pool's commands on an installation whose databases are not on
// Aurora say so, and change nothing.
func TestPool_RefusedWithoutAurora(t *testing.T) {
	h := newHarness(t)
	h.refused(2, "the warm pool is Aurora's: database.provider is localpg", "pool")
	h.refused(2, "the warm pool is Aurora's", "pool", "fill")
}
