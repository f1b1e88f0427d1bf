package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func write(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad_WithoutAFileTheDefaultsApply(t *testing.T) {
	c, err := Load("", t.TempDir(), env(map[string]string{"HOME": "/home/u"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Provider != "localpg" || c.HasApp() || c.Listen != "127.0.0.1:8080" {
		t.Errorf("defaults: provider %q app %v listen %q", c.Database.Provider, c.HasApp(), c.Listen)
	}
	if c.Home != "/home/u/.local/share/prenv" && !strings.Contains(c.Home, "Application Support") {
		t.Errorf("home %q", c.Home)
	}
}

func TestLoad_RejectsUnknownFieldsWithTheirPath(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"top level":   {"version: 1\nlisten_on: x\n", `unknown field "listen_on"`},
		"nested":      {"version: 1\ndatabase:\n  localpg:\n    port: 5\n", `unknown field "database.localpg.port" (did you mean "database.localpg.ports"?)`},
		"typo in app": {"version: 1\napp:\n  strat: ./run\n", `did you mean "app.start"?`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load("", write(t, c.body), env(nil))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoad_ExpandsVariablesAndRefusesUnsetOnes(t *testing.T) {
	dir := write(t, "version: 1\nowner: ${TEAM}\nrepository: ${REPO:-acme/shop}\napp:\n  start: echo $$HOME\n")
	c, err := Load("", dir, env(map[string]string{"TEAM": "team-a"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "team-a" || c.Repository != "acme/shop" || c.App.Start != "echo $HOME" {
		t.Errorf("owner %q repository %q start %q", c.Owner, c.Repository, c.App.Start)
	}
	_, err = Load("", dir, env(nil))
	if err == nil || !strings.Contains(err.Error(), "${TEAM} is not set") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoad_EnvironmentOverridesTheFile(t *testing.T) {
	dir := write(t, "version: 1\nlisten: 127.0.0.1:9000\ndatabase:\n  localpg:\n    ports: 50000-50010\n")
	c, err := Load("", dir, env(map[string]string{
		"PRENV_LISTEN": "127.0.0.1:9100", "PRENV_HOME": "/x", "PRENV_DATABASE_LOCALPG_PORTS": "51000-51001",
		"PRENV_APP_HEALTH_TIMEOUT": "5s", "PRENV_GITHUB_REPOSITORIES": "acme/shop, acme/api", "PRENV_GITHUB_APP_ID": "12345",
		"PRENV_GITHUB_APP_KEY_FILE": "app.pem",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GitHub.Repositories) != 2 || c.GitHub.Repositories[1] != "acme/api" || c.GitHub.AppID != 12345 {
		t.Errorf("a list and an int64 from the environment: %v %d", c.GitHub.Repositories, c.GitHub.AppID)
	}
	if c.Listen != "127.0.0.1:9100" || c.Home != "/x" || c.Database.LocalPG.Ports != "51000-51001" || c.App.HealthTimeout.D() != 5*time.Second {
		t.Errorf("got listen %q home %q ports %q timeout %v", c.Listen, c.Home, c.Database.LocalPG.Ports, c.App.HealthTimeout)
	}
}

func TestValidate_NamesEveryBadField(t *testing.T) {
	cases := map[string]string{
		"version: 2\n": "version: 2 is not supported",
		"version: 1\ndatabase:\n  provider: oracle\n":         "database.provider: \"oracle\" is not a known provider",
		"version: 1\ndatabase:\n  localpg:\n    ports: 9-1\n": "database.localpg.ports",
		"version: 1\nrepository: shop\n":                      "repository: \"shop\": want owner/name",
		"version: 1\napp:\n  migrate: ./m\n":                  "app.start: is empty",
		"version: 1\nttl: soon\n":                             "not a duration",
		"version: 1\ndatabase:\n  user: App-User\n":           "database.user",
	}
	for body, want := range cases {
		_, err := Load("", write(t, body), env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
}
