package local_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/config"
	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/dbclone/dbclonetest"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/runtime/local"
	"github.com/prenv/prenv/internal/runtime/runtimetest"
	"github.com/prenv/prenv/internal/server"
	"github.com/prenv/prenv/internal/testenv"
)

// rig is a home with a golden source, a cloner and prenv serve's HTTP side
// running in this process.
type rig struct {
	home, listen, password string
	cloner                 *localpg.Cloner
	app                    config.App
	sup                    *local.Supervisor
	cancel                 context.CancelFunc
}

func newRig(t *testing.T) *rig {
	testenv.Postgres(t)
	home := testenv.Home(t)
	testenv.Golden(t, home, testenv.DemoSQL(50))
	bin := testenv.Build(t, "./examples/demo/app")
	c := localpg.New(home, "suite", nil)
	c.FirstPort, c.LastPort = testenv.PortRange(t, 12)
	// The suite's bad commits: a migration that fails, an app that exits.
	app := config.App{
		Migrate:       fmt.Sprintf(`if [ "$PRENV_SHA" = %s ]; then echo 'ERROR: relation "nope" does not exist'; exit 1; fi; exec %s migrate`, runtimetest.BadMigration, bin),
		Start:         fmt.Sprintf(`if [ "$PRENV_SHA" = %s ]; then echo 'panic: cannot load config'; exit 2; fi; exec %s serve`, runtimetest.BadDeploy, bin),
		Health:        "/healthz",
		HealthTimeout: config.Duration(20 * time.Second),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{home: home, listen: l.Addr().String(), password: "s3cret", cloner: c, app: app, cancel: cancel}
	tok, _ := local.Token(home)
	srv := &server.Server{Listen: r.listen, Password: r.password, Token: tok}
	r.sup = local.NewSupervisor(ctx, home, "suite", nil)
	r.sup.Isolate = os.Geteuid() == 0
	r.sup.URL = srv.EnvURL
	srv.Supervisor = r.sup
	go srv.Run(ctx, l)
	t.Cleanup(func() {
		for _, n := range r.sup.Names() {
			r.sup.Stop(n)
		}
		cancel()
	})
	return r
}

func (r *rig) runtime() *local.Runtime {
	rt := &local.Runtime{Home: r.home, Owner: "suite", App: r.app, Dir: r.home, Listen: r.listen}
	if os.Geteuid() == 0 {
		// As prenv runs on a server: a user of its own per environment.
		rt.Users = &local.Users{First: 600000, Last: 699999, ClaimDir: "/run/prenv/uids"}
	}
	return rt
}

func (r *rig) spec(t *testing.T, k env.Key, commit string) runtime.Spec {
	db, err := r.cloner.Clone(context.Background(), dbclonetest.Request(k))
	if err != nil {
		t.Fatal(err)
	}
	return runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Database: db, Labels: env.Labels("suite", k, time.Now(), time.Hour)}
}

func TestRuntime_Conformance(t *testing.T) {
	rigs := map[runtime.Runtime]*rig{}
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T) runtime.Runtime {
			r := newRig(t)
			rt := r.runtime()
			rigs[rt] = r
			return rt
		},
		Spec: func(t *testing.T, rt runtime.Runtime, k env.Key, commit string) runtime.Spec {
			return rigs[rt].spec(t, k, commit)
		},
		Fetch: func(t *testing.T, url string) (string, error) {
			code, _, body, err := testenv.Get(url, "s3cret")
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			return body, err
		},
		Foreign: func(t *testing.T, rt runtime.Runtime, k env.Key) {
			dir := filepath.Join(local.EnvsDir(rigs[rt].home), k.Name())
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
			t.Cleanup(func() {
				if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
					t.Errorf("a directory not ours was touched: %v", err)
				}
			})
		},
	})
}

func TestProxy_AsksForCredentialsAndTellsRobotsToStayAway(t *testing.T) {
	r := newRig(t)
	k := env.Key{PR: 1}
	rel, err := runtimetest.Roll(context.Background(), r.runtime(), r.spec(t, k, "abc123"))
	if err != nil {
		t.Fatal(err)
	}
	code, h, _, err := testenv.Get(rel.URL, "")
	if err != nil || code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("without credentials: %d %v %v", code, h, err)
	}
	if code, _, _, _ := testenv.Get(rel.URL, "wrong"); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	code, h, body, err := testenv.Get(rel.URL, r.password)
	if err != nil || code != 200 || h.Get("X-Robots-Tag") == "" {
		t.Fatalf("with credentials: %d %v %v", code, h, err)
	}
	if !strings.Contains(body, "50 customers") || !strings.Contains(body, "0002_order_status") {
		t.Fatalf("page does not show the clone's data and migration:\n%s", body)
	}
}

func TestSupervisor_RestartsACrashedApp(t *testing.T) {
	r := newRig(t)
	k := env.Key{PR: 1}
	rel, err := runtimetest.Roll(context.Background(), r.runtime(), r.spec(t, k, "abc123"))
	if err != nil {
		t.Fatal(err)
	}
	var spec local.ReleaseSpec
	data, _ := os.ReadFile(filepath.Join(local.EnvsDir(r.home), k.Name(), "release.json"))
	fmt.Sscanf(strings.SplitN(strings.SplitN(string(data), `"pid": `, 2)[1], ",", 2)[0], "%d", &spec.PID)
	if err := killPID(spec.PID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _, body, _ := testenv.Get(rel.URL, r.password)
		if code == 200 && strings.Contains(body, "abc123") {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(local.LogPath(r.home, k.Name()))
			t.Fatalf("app not back after a crash (last status %d); log:\n%s", code, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(local.LogPath(r.home, k.Name()))
	if !strings.Contains(string(log), "restarting in") {
		t.Fatalf("log does not say the app was restarted:\n%s", log)
	}
}

func TestSupervisor_RestoreBringsEnvironmentsBackAfterARestart(t *testing.T) {
	r := newRig(t)
	k := env.Key{PR: 1}
	rel, err := runtimetest.Roll(context.Background(), r.runtime(), r.spec(t, k, "abc123"))
	if err != nil {
		t.Fatal(err)
	}
	// prenv serve and the machine go down: the app and the database stop.
	r.cancel()
	time.Sleep(200 * time.Millisecond)
	testenv.StopServers(r.home)
	if code, _, _, _ := testenv.Get(rel.URL, r.password); code == 200 {
		t.Fatal("still serving after the server stopped")
	}
	// A new prenv serve on the same address.
	l, err := net.Listen("tcp", r.listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tok, _ := local.Token(r.home)
	srv := &server.Server{Listen: r.listen, Password: r.password, Token: tok}
	sup := local.NewSupervisor(ctx, r.home, "suite", nil)
	sup.URL = srv.EnvURL
	sup.EnsureDatabase = func(ctx context.Context, key string) (string, error) {
		k, _ := env.ParseKey(key)
		db, err := r.cloner.Clone(ctx, dbclone.Request{Key: k, Name: k.Name()})
		return db.URL, err
	}
	srv.Supervisor = sup
	go srv.Run(ctx, l)
	sup.Restore(ctx)
	t.Cleanup(func() { sup.Stop(k.Name()) })
	code, _, body, err := testenv.Get(rel.URL, r.password)
	if err != nil || code != 200 || !strings.Contains(body, "abc123") || !strings.Contains(body, "50 customers") {
		t.Fatalf("after restore: %d %v\n%s", code, err, body)
	}
}

func TestSupervisor_ThePreviousVersionServesWhileTheNextOneStarts(t *testing.T) {
	r := newRig(t)
	bin := testenv.Build(t, "./examples/demo/app")
	// Commit "slow" takes two seconds to start listening.
	r.app.Start = fmt.Sprintf(`if [ "$PRENV_SHA" = slow ]; then sleep 2; fi; exec %s serve`, bin)
	k := env.Key{PR: 1}
	rel, err := runtimetest.Roll(context.Background(), r.runtime(), r.spec(t, k, "first"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := runtimetest.Roll(context.Background(), r.runtime(), r.spec(t, k, "slow"))
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the slow commit is starting
	t0 := time.Now()
	code, _, body, err := testenv.Get(rel.URL, r.password)
	if err != nil || code != 200 || !strings.Contains(body, "first") {
		t.Fatalf("during the rollout: %d %v\n%s", code, err, body)
	}
	if took := time.Since(t0); took > time.Second {
		t.Fatalf("the proxy waited %v for the rollout", took)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, _, body, _ := testenv.Get(rel.URL, r.password); !strings.Contains(body, "slow") {
		t.Fatalf("after the rollout:\n%s", body)
	}
}
