package config

import (
	"errors"
	"fmt"
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
	if c.Golden.Source.Aurora != nil {
		t.Errorf("golden.source.aurora appeared without a variable: %+v", c.Golden.Source.Aurora)
	}
	// An optional section is reached too: before, these were ignored.
	dir = write(t, "version: 1\ndatabase:\n  provider: aurora\n  aurora: {region: eu-west-1, require_security_groups: false}\n")
	c, err = Load("", dir, env(map[string]string{"PRENV_GOLDEN_SOURCE_AURORA_CLUSTER": "prod", "PRENV_GOLDEN_SOURCE_AURORA_FROM": "clone"}))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Golden.Source.Aurora; a == nil || a.Cluster != "prod" || a.From != "clone" {
		t.Errorf("golden.source.aurora from the environment: %+v", a)
	}
	// A map is not set from a variable, and says so instead of ignoring it.
	_, err = Load("", dir, env(map[string]string{"PRENV_RUNTIME_KUBERNETES_QUOTA": "pods=10"}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "PRENV_RUNTIME_KUBERNETES_QUOTA") || !strings.Contains(err.Error(), "write it in prenv.yaml") {
		t.Errorf("a map from the environment: %v", err)
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
		"version: 1\ndatabase:\n  provider: aurora\n  aurora: {source_cluster: g, require_security_groups: false, pool: {size: -1}}\n":             "database.aurora.pool.size -1",
		"version: 1\ndatabase:\n  provider: aurora\n  aurora: {source_cluster: g, require_security_groups: false, pool: {size: 2, max_age: 1m}}\n": "database.aurora.pool.max_age 1m0s: at least 1h",
		"version: 1\ndatabase:\n  provider: aurora\n  aurora: {source_cluster: g, require_security_groups: false, pool: {instance_class: big}}\n":  "database.aurora.pool.instance_class \"big\"",
	}
	for body, want := range cases {
		_, err := Load("", write(t, body), env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
}

// Issue 9: a variable's value is data, never YAML. Before, ${VAR} was
// replaced in the text before parsing, so a newline added keys, " #" cut a
// password short and a quote broke the file.
func TestParse_VariablesNeverChangeTheStructure(t *testing.T) {
	cases := map[string]struct {
		body  string
		vars  map[string]string
		check func(c Config) string // what is wrong, or ""
	}{
		"a newline does not add a key": {
			body: "version: 1\npassword: ${P}\n",
			vars: map[string]string{"P": "x\nhome: /tmp/evil"},
			check: func(c Config) string {
				if c.Password != "x\nhome: /tmp/evil" || c.Home == "/tmp/evil" {
					return fmt.Sprintf("password %q home %q", c.Password, c.Home)
				}
				return ""
			},
		},
		"a newline in a quoted value does not add a key": {
			body: "version: 1\nowner: \"${O}\"\n",
			vars: map[string]string{"O": "team\nhome: /tmp/evil"},
			check: func(c Config) string {
				if c.Home == "/tmp/evil" {
					return "home was injected"
				}
				return ""
			},
		},
		"a double quote is kept": {
			body: "version: 1\npassword: \"${P}\"\n",
			vars: map[string]string{"P": `a"b\`},
			check: func(c Config) string {
				if c.Password != `a"b\` {
					return fmt.Sprintf("password %q", c.Password)
				}
				return ""
			},
		},
		"a leading quote in a plain value is kept": {
			body: "version: 1\npassword: ${P}\n",
			vars: map[string]string{"P": `'it''s`},
			check: func(c Config) string {
				if c.Password != `'it''s` {
					return fmt.Sprintf("password %q", c.Password)
				}
				return ""
			},
		},
		"a password with \" # \" is kept whole": {
			body: "version: 1\npassword: ${P}\n",
			vars: map[string]string{"P": "s3cret # not a comment"},
			check: func(c Config) string {
				if c.Password != "s3cret # not a comment" {
					return fmt.Sprintf("password %q", c.Password)
				}
				return ""
			},
		},
		"a colon and a space are kept": {
			body: "version: 1\npassword: ${P}\n",
			vars: map[string]string{"P": "a: b"},
			check: func(c Config) string {
				if c.Password != "a: b" {
					return fmt.Sprintf("password %q", c.Password)
				}
				return ""
			},
		},
		"a comma does not add list items": {
			body: "version: 1\ngithub:\n  repositories: [\"${R}\"]\n",
			vars: map[string]string{"R": `acme/shop", "evil/repo`},
			check: func(c Config) string {
				if len(c.GitHub.Repositories) != 1 {
					return fmt.Sprintf("repositories %q", c.GitHub.Repositories)
				}
				return ""
			},
		},
		"a value that reads as null stays the text": {
			body: "version: 1\npassword: ${P}\n",
			vars: map[string]string{"P": "~"},
			check: func(c Config) string {
				if c.Password != "~" {
					return fmt.Sprintf("password %q", c.Password)
				}
				return ""
			},
		},
		"a variable in a comment is not expanded": {
			body: "version: 1\n# password: ${OLD_PASSWORD}\nowner: a # ${NOT_EITHER}\n",
			check: func(c Config) string {
				if c.Owner != "a" {
					return fmt.Sprintf("owner %q", c.Owner)
				}
				return ""
			},
		},
		"a key is not expanded": {
			body: "version: 1\napp:\n  start: ./run\n  env:\n    ${NAME}: ${VALUE}\n",
			vars: map[string]string{"NAME": "X", "VALUE": "1"},
			check: func(c Config) string {
				if c.App.Env["${NAME}"] != "1" || len(c.App.Env) != 1 {
					return fmt.Sprintf("env %q", c.App.Env)
				}
				return ""
			},
		},
		"$$ is a dollar and is not expanded again": {
			body: "version: 1\napp:\n  start: echo $${HOME} $$$$\n",
			check: func(c Config) string {
				if c.App.Start != "echo ${HOME} $$" {
					return fmt.Sprintf("start %q", c.App.Start)
				}
				return ""
			},
		},
		"ints, booleans and durations come from variables": {
			body: "version: 1\nttl: ${TTL}\ndatabase:\n  localpg:\n    max_connections: ${MAX}\n    start_timeout: ${START:-45s}\n" +
				"github:\n  report: ${REPORT}\n  concurrency: ${CONC:-7}\n  app_id: ${APP_ID}\n  app_key_file: app.pem\n",
			vars: map[string]string{"TTL": "48h", "MAX": "33", "REPORT": "false", "APP_ID": "12345"},
			check: func(c Config) string {
				if c.TTL.D() != 48*time.Hour || c.Database.LocalPG.MaxConnections != 33 || c.Database.LocalPG.StartTimeout.D() != 45*time.Second ||
					c.GitHub.Report || c.GitHub.Concurrency != 7 || c.GitHub.AppID != 12345 {
					return fmt.Sprintf("ttl %v max %d start %v report %v concurrency %d app %d", c.TTL, c.Database.LocalPG.MaxConnections,
						c.Database.LocalPG.StartTimeout, c.GitHub.Report, c.GitHub.Concurrency, c.GitHub.AppID)
				}
				return ""
			},
		},
		"a quoted variable stays a string": {
			body: "version: 1\nowner: \"${O}\"\nrepository: ${R}\n",
			vars: map[string]string{"O": "123", "R": "acme/shop"},
			check: func(c Config) string {
				if c.Owner != "123" || c.Repository != "acme/shop" {
					return fmt.Sprintf("owner %q repository %q", c.Owner, c.Repository)
				}
				return ""
			},
		},
		"a literal block keeps its lines": {
			body: "version: 1\nruntime:\n  kubernetes:\n    values: |\n      image: ${IMAGE}\n      tag: x\n",
			vars: map[string]string{"IMAGE": "shop # latest"},
			check: func(c Config) string {
				if c.Runtime.Kubernetes.Values != "image: shop # latest\ntag: x\n" {
					return fmt.Sprintf("values %q", c.Runtime.Kubernetes.Values)
				}
				return ""
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			vars := map[string]string{"HOME": "/home/u"}
			for k, v := range tc.vars {
				vars[k] = v
			}
			c := Default()
			if err := Parse([]byte(tc.body), FileName, env(vars), &c); err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestParse_AnUnsetVariableNamesItsLineAndTheFix(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"plain value":                  {"version: 1\n\nowner: ${TEAM}\n", "line 3: ${TEAM} is not set: export it, or write ${TEAM:-default}"},
		"after a value with a newline": {"version: 1\npassword: ${MULTI}\nowner: ${TEAM}\n", "line 3: ${TEAM} is not set"},
		"in a sequence":                {"version: 1\ngithub:\n  repositories:\n    - acme/shop\n    - ${REPO}\n", "line 5: ${REPO} is not set"},
		"in a literal block":           {"version: 1\nruntime:\n  kubernetes:\n    values: |\n      a: 1\n      image: ${IMAGE}\n", "line 6: ${IMAGE} is not set"},
		"unterminated":                 {"version: 1\nowner: ${TEAM\n", "line 2: unterminated ${"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load("", write(t, tc.body), env(map[string]string{"MULTI": "a\nb\nc"}))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// Issue 9: a relative home is made absolute once, so that it names the same
// place for every process and every child that changes directory.
func TestLoad_ARelativeHomeIsMadeAbsolute(t *testing.T) {
	t.Run("home in the file is relative to the file", func(t *testing.T) {
		dir := write(t, "version: 1\nhome: state/prenv\n")
		elsewhere := t.TempDir()
		c, err := Load(filepath.Join(dir, FileName), elsewhere, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "state", "prenv"); c.Home != want {
			t.Errorf("home %q, want %q", c.Home, want)
		}
	})
	t.Run("PRENV_HOME is relative to the current directory", func(t *testing.T) {
		dir := write(t, "version: 1\nhome: from-file\n")
		cwd := t.TempDir()
		c, err := Load(filepath.Join(dir, FileName), cwd, env(map[string]string{"PRENV_HOME": "./state/../home"}))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(cwd, "home"); c.Home != want {
			t.Errorf("home %q, want %q", c.Home, want)
		}
	})
	t.Run("an absolute home is kept", func(t *testing.T) {
		c, err := Load("", write(t, "version: 1\nhome: /var/lib/prenv/\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.Home != "/var/lib/prenv" {
			t.Errorf("home %q", c.Home)
		}
	})
}
