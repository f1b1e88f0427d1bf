package cli_test

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/prenv/prenv/internal/cli"
	"github.com/prenv/prenv/internal/dbclone"
	dbmemory "github.com/prenv/prenv/internal/dbclone/memory"
	"github.com/prenv/prenv/internal/env"
)

// auroraLike is a memory cloner whose databases have URLs like Aurora's
// with credentials: password, a password with characters URLs escape.
type auroraLike struct{ *dbmemory.Cloner }

const auroraPassword = "p@ss/w0rd%50"

func (c auroraLike) withURL(db dbclone.Database, err error) (dbclone.Database, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", auroraPassword), Host: "prenv-" + db.Name + ".cluster-c1.eu-west-1.rds.amazonaws.com:5432", Path: "/app", RawQuery: "sslmode=require"}
	db.URL = u.String()
	return db, err
}

func (c auroraLike) Clone(ctx context.Context, req dbclone.Request) (dbclone.Database, error) {
	return c.withURL(c.Cloner.Clone(ctx, req))
}

func (c auroraLike) Get(ctx context.Context, k env.Key) (dbclone.Database, error) {
	return c.withURL(c.Cloner.Get(ctx, k))
}

// unescapeCommand reads a workflow command's value as the runner does.
func unescapeCommand(s string) string {
	return strings.NewReplacer("%0A", "\n", "%0D", "\r", "%25", "%").Replace(s)
}

func TestActions_AnAuroraPasswordIsMaskedAsWrittenAndAsInItsURL(t *testing.T) {
	world := dbmemory.NewWorld()
	world.SetGolden(1)
	cloner := auroraLike{&dbmemory.Cloner{World: world, Owner: "prenv"}}
	home, dir := t.TempDir(), t.TempDir()
	run := func(actions bool, args ...string) (string, string) {
		t.Helper()
		getenv := func(k string) string {
			switch k {
			case "PRENV_HOME":
				return home
			case "GITHUB_ACTIONS":
				if actions {
					return "true"
				}
			}
			return ""
		}
		var out, errb bytes.Buffer
		if code := cli.Run(context.Background(), args, cli.Options{Stdout: &out, Stderr: &errb, Getenv: getenv, Dir: dir, Cloner: cloner}); code != 0 {
			t.Fatalf("prenv %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String(), errb.String()
	}
	out, _ := run(true, "up", "--pr", "1")
	dbURL, _ := cloner.withURL(dbclone.Database{Name: "pr-1"}, nil)
	escaped := strings.TrimSuffix(strings.TrimPrefix(dbURL.URL, "postgres://app:"), "@prenv-pr-1.cluster-c1.eu-west-1.rds.amazonaws.com:5432/app?sslmode=require")
	if !strings.Contains(out, "DATABASE_URL="+dbURL.URL) || escaped == auroraPassword {
		t.Fatalf("up prints no Aurora-like URL with an escaped password:\n%s", out)
	}
	masks := map[string]int{}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, "::add-mask::"); ok {
			masks[unescapeCommand(v)] = i
		}
	}
	shown := len(lines)
	for i, l := range lines {
		if strings.Contains(l, "DATABASE_URL=") {
			shown = i
		}
	}
	for _, secret := range []string{auroraPassword, escaped, dbURL.URL} {
		if i, ok := masks[secret]; !ok || i > shown {
			t.Errorf("%q is not masked before the URL is shown:\n%s", secret, out)
		}
	}

	if out, _ := run(false, "status", "--pr", "1"); strings.Contains(out, "::add-mask::") {
		t.Fatalf("outside Actions status prints masks:\n%s", out)
	}
}
