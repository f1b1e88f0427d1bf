package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPassword_FromPRENV_PASSWORDGuardsTheEnvironmentAndStatusShowsIt(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(10)
	h.extra = append(h.extra, "PRENV_PASSWORD=correct-horse")
	h.must("up", "--pr", "3", "--sha", c1)
	st := h.status(3)
	if st.Auth.User != "prenv" || st.Auth.Password != "correct-horse" {
		t.Fatalf("status auth = %+v", st.Auth)
	}
	if code, _ := h.get(st.URL, "correct-horse"); code != 200 {
		t.Fatalf("with PRENV_PASSWORD: %d", code)
	}
	if code, _ := h.get(st.URL, "battery-staple"); code != 401 {
		t.Fatalf("with another password: %d", code)
	}
	if _, err := os.Stat(filepath.Join(h.home, "password")); !os.IsNotExist(err) {
		t.Fatal("a password was generated although PRENV_PASSWORD is set")
	}
}

func TestHomeFlag_OverridesPRENV_HOME(t *testing.T) {
	h := newHarness(t)
	h.golden(10)
	other := filepath.Join(h.home, "elsewhere")
	if out, errs, code := h.run("--home", other, "up", "--pr", "1"); code != 3 || !strings.Contains(errs, "golden source not built") {
		t.Fatalf("up in an empty --home: exit %d\n%s%s", code, out, errs)
	}
	h.must("up", "--pr", "1") // PRENV_HOME has the golden source
}

func TestLogs_FollowPrintsNewOutput(t *testing.T) {
	h := newHarness(t)
	c1, _, _ := h.demoRepo()
	h.golden(10)
	h.must("up", "--pr", "1", "--sha", c1)
	cmd := h.command("logs", "--pr", "1", "-n", "1", "-f")
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	f, err := os.OpenFile(filepath.Join(h.home, "envs", "pr-1", "app.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("a line written later\n")
	f.Close()
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(out.String(), "a line written later") })
	if strings.Count(out.String(), "\n") > 3 {
		t.Fatalf("-n 1 printed more than the last line before following:\n%s", out.String())
	}
}
