package cli_test

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/testenv"
)

func TestServe_BringsEveryEnvironmentBackAfterAReboot(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	h.must("up", "--pr", "1", "--sha", c1)
	h.must("up", "--pr", "2", "--sha", c1)
	a, b := h.status(1), h.status(2)
	// The machine goes down: prenv serve, the apps and the databases stop.
	h.stopServe()
	if n := processesMatching(filepath.Join(h.home, "envs")); n != 0 {
		t.Fatalf("%d app processes outlived prenv serve", n)
	}
	if code, _, _, err := testenv.Get(a.URL, a.Auth.Password); err == nil && code == 200 {
		t.Fatal("still serving after the server stopped")
	}
	serve := h.command("serve")
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() })
	for _, st := range []status{a, b} {
		var code int
		var body string
		waitFor(t, 60*time.Second, func() bool {
			code, _, body, _ = testenv.Get(st.URL, st.Auth.Password)
			return code == 200
		})
		if !strings.Contains(body, c1) || !strings.Contains(body, "20 customers") {
			t.Fatalf("%s after the restart:\n%s", st.URL, body)
		}
	}
	// The database-only client sees the same data as before.
	if n := sql(t, a.Database.URL, "SELECT count(*) FROM people"); n != 20 {
		t.Fatalf("%d people", n)
	}
}

func TestUp_InterruptedStopsWithinSecondsAndTheNextRunConverges(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(20)
	// A slow build, so that the interrupt lands in the middle of it (an odd
	// duration: the check below must not count other tests' sleeps).
	h.extra = append(h.extra, `PRENV_APP_BUILD=sleep 29.71; go build -o "$PRENV_RELEASE_DIR/app" .`)
	cmd := h.command("up", "--pr", "1", "--sha", c1)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "prepare") })
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if took := time.Since(t0); took > 5*time.Second {
		t.Fatalf("up took %v to stop after SIGINT", took)
	}
	if cmd.ProcessState.ExitCode() != 130 {
		t.Fatalf("exit %d (%v), want 130\n%s", cmd.ProcessState.ExitCode(), err, out.String())
	}
	// SIGKILL is sent before up exits; the kernel tears the processes down
	// a moment later.
	deadline := time.Now().Add(3 * time.Second)
	for processesMatching("sleep 29.71") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d build processes outlived the interrupted up by 3s", processesMatching("sleep 29.71"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The state is the truth: nothing was deployed, nothing is at work.
	if st := h.status(1); st.State != "interrupted" {
		t.Fatalf("after SIGINT during the first build: state %q, want interrupted", st.State)
	}
	h.extra = h.extra[:len(h.extra)-1]
	h.must("up", "--pr", "1", "--sha", c1)
	if st := h.status(1); st.State != "ready" || st.Commit != c1 {
		t.Fatalf("after the interrupted run: %+v", st)
	}
}

func processesMatching(s string) int { return len(pidsMatching(s)) }

// With --log-format json each line prenv serve logs is one JSON object, as
// a cluster's log collector reads it.
func TestServe_LogsJSONLinesForALogCollector(t *testing.T) {
	h := newHarness(t)
	cmd := h.command("--log-format", "json", "serve")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var line struct{ Time, Level, Msg, Addr string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Time == "" || line.Level == "" {
			t.Fatalf("a log line that is not a JSON object with time and level: %q (%v)", sc.Text(), err)
		}
		if line.Msg == "prenv serve listening" {
			if line.Addr != h.listen {
				t.Fatalf("listening at %q, want %q", line.Addr, h.listen)
			}
			return
		}
	}
	t.Fatalf("prenv serve ended its log without saying it listens: %v", sc.Err())
}
