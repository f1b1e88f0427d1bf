package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/prenv/prenv/internal/golden/mask"
	"github.com/prenv/prenv/internal/rehearsal"
)

// FileName is the name prenv looks for in the current directory.
const FileName = "prenv.yaml"

// CurrentVersion is the only schema version this build reads.
const CurrentVersion = 1

// ErrInvalid is wrapped by every error about the content of the configuration.
var ErrInvalid = errors.New("invalid configuration")

// Config is the whole of prenv.yaml.
type Config struct {
	Version    int    `yaml:"version"`
	Home       string `yaml:"home"`       // PRENV_HOME: state, golden data, clones
	Listen     string `yaml:"listen"`     // PRENV_LISTEN: address of prenv serve
	Password   string `yaml:"password"`   // PRENV_PASSWORD: basic auth of the environments (user prenv)
	Owner      string `yaml:"owner"`      // owner id carried by every resource
	Repository string `yaml:"repository"` // owner/name of the default repository
	PublicURL  string `yaml:"public_url"` // where people reach prenv serve (for log links in GitHub), such as https://prenv.example.com
	// Store is where prenv keeps its records: empty for the SQLite file
	// PRENV_HOME/prenv.db, or postgres://... for a PostgreSQL database
	// that replicas of prenv serve share (PRENV_STORE).
	Store     string    `yaml:"store"`
	TTL       Duration  `yaml:"ttl"` // expires-at = created-at + ttl
	Database  Database  `yaml:"database"`
	Runtime   Runtime   `yaml:"runtime"`
	App       App       `yaml:"app"`
	GitHub    GitHub    `yaml:"github"`
	Serve     Serve     `yaml:"serve"`
	Sweep     Sweep     `yaml:"sweep"`
	Golden    Golden    `yaml:"golden"`
	Migration Migration `yaml:"migration"`

	// Dir is the directory of the file the config was read from (or the
	// current directory); relative paths in the file are relative to it.
	Dir string `yaml:"-"`
	// Source names where the config came from, for messages.
	Source string `yaml:"-"`
	// Referenced are the variables the file names as ${NAME}: the user's
	// own, never taken for a mistyped field (MistypedEnv).
	Referenced map[string]bool `yaml:"-"`
}

// Database configures how environments get their database.
type Database struct {
	Provider string  `yaml:"provider"` // localpg | memory
	Name     string  `yaml:"name"`     // the application's database
	User     string  `yaml:"user"`     // the application's role; gets a new password per environment
	LocalPG  LocalPG `yaml:"localpg"`
	Aurora   Aurora  `yaml:"aurora"`
}

// Aurora configures the aurora cloner: a copy-on-write clone of the golden
// cluster with its own writer per environment.
type Aurora struct {
	SourceCluster         string     `yaml:"source_cluster"`          // the golden cluster
	InstanceClass         string     `yaml:"instance_class"`          // of the writer; default db.t4g.medium
	ParameterGroup        string     `yaml:"parameter_group"`         // cluster parameter group; default the source's engine default
	SecurityGroups        []string   `yaml:"security_groups"`         // VPC security groups of the clones
	RequireSecurityGroups bool       `yaml:"require_security_groups"` // refuse to clone without security_groups (default true)
	SubnetGroup           string     `yaml:"subnet_group"`            // DB subnet group of the clones
	Region                string     `yaml:"region"`                  // default: AWS_REGION / the profile's region
	Endpoint              string     `yaml:"endpoint"`                // RDS API endpoint URL (an emulator); default AWS's
	Prefix                string     `yaml:"prefix"`                  // of cluster identifiers; default prenv-
	Credentials           string     `yaml:"credentials"`             // password (prenv sets one per environment) | managed (RDS keeps it in Secrets Manager)
	ReadyCheck            string     `yaml:"ready_check"`             // auto | sql | api
	SSLMode               string     `yaml:"sslmode"`                 // of the database URLs; default require
	WaitTimeout           Duration   `yaml:"wait_timeout"`            // bound on each wait for RDS
	Pool                  AuroraPool `yaml:"pool"`                    // a warm pool of ready clones
}

// AuroraPool is the warm pool: clones of the current golden generation
// kept ready (cluster and writer available, their own credentials) by
// prenv serve's leader or prenv pool fill; a new environment claims one
// instead of waiting minutes on RDS.
type AuroraPool struct {
	Size          int      `yaml:"size"`           // members kept ready; 0 (default): no pool
	MaxAge        Duration `yaml:"max_age"`        // an unclaimed member older than this is replaced; default 24h
	InstanceClass string   `yaml:"instance_class"` // of the members' writers; default database.aurora.instance_class
}

// LocalPG configures the embedded cloner: one postgres per environment.
type LocalPG struct {
	BinDir         string            `yaml:"bin_dir"`         // where postgres, initdb, pg_ctl live; found on PATH when empty
	RunAs          string            `yaml:"run_as"`          // unprivileged user for postgres when prenv runs as root
	Ports          string            `yaml:"ports"`           // pool of ports, "first-last"
	SharedBuffers  string            `yaml:"shared_buffers"`  // per clone
	MaxConnections int               `yaml:"max_connections"` // per clone
	Settings       map[string]string `yaml:"settings"`        // more postgresql.conf settings per clone
	Listen         string            `yaml:"listen"`          // listen_addresses of the clones; default 127.0.0.1
	Host           string            `yaml:"host"`            // host in the clones' URLs (what pods use); default the first of listen
	Allow          []string          `yaml:"allow"`           // networks (CIDR) besides loopback that may connect with the clone's password
	StartTimeout   Duration          `yaml:"start_timeout"`
}

// Runtime configures where the application runs.
type Runtime struct {
	Provider   string     `yaml:"provider"` // local | kubernetes | memory
	Local      Local      `yaml:"local"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
}

// Local configures the local runtime: the app's commands as processes on
// this machine, supervised by prenv serve.
type Local struct {
	// UIDs is the range ("first-last") of user ids the environments' build,
	// migrate and app commands run as when prenv runs as root: one per
	// environment, like systemd's DynamicUser (outside its range, so the two
	// never hand out the same id). Ids of accounts, of running processes and
	// in /etc/subuid ranges are skipped.
	UIDs string `yaml:"uids"`
	// HomeSeed is a directory copied into each new environment's home
	// (HOME of its commands) before its first build: a build cache the
	// team trusts, so that a new pull request builds warm. Relative to
	// prenv.yaml. Copied, never shared: no environment can write what
	// another reads.
	HomeSeed string `yaml:"home_seed"`
}

// UIDRange parses UIDs.
func (l Local) UIDRange() (first, last int, err error) {
	return parseRange(l.UIDs, 1000, 2147483646, "of unused user ids of 1000 or more", "600000-699999")
}

// Serve configures prenv serve.
type Serve struct {
	// Domain is the parent of the environments' host names: pr-12.<domain>.
	Domain string `yaml:"domain"`
	// Retention bounds how long delivered webhooks and finished runs are
	// kept.
	Retention Duration `yaml:"retention"`
	// ClaimTTL is how long a replica's claim on a webhook delivery lasts
	// unless renewed (store: postgres): a replica that dies lets its
	// deliveries go to another after it. Default 30s.
	ClaimTTL Duration `yaml:"claim_ttl"`
}

// Migration configures the rehearsal of each pull request's migration on
// its environment's database (docs/migration.md).
type Migration struct {
	// Rehearse watches each migration and records its report (default
	// true).
	Rehearse       bool     `yaml:"rehearse"`
	LockBudget     Duration `yaml:"lock_budget"`      // ACCESS EXCLUSIVE held longer on a large table warns; default 1s
	LargeTableRows int64    `yaml:"large_table_rows"` // a table with more rows is large; default 100000
	LongBackfill   Duration `yaml:"long_backfill"`    // a writing transaction longer than this warns; default 5s
	// Check posts the GitHub check run "migration rehearsal" on each
	// commit whose migration was rehearsed: a failure when the migration
	// failed or warned of a code in FailOn.
	Check  bool     `yaml:"check"`
	FailOn []string `yaml:"fail_on"` // warning codes that fail the check run, or "all"
}

// FailOnCodes are FailOn's codes ("all" is every code).
func (m Migration) FailOnCodes() []rehearsal.Code {
	var out []rehearsal.Code
	for _, c := range m.FailOn {
		if c == "all" {
			return rehearsal.Codes()
		}
		out = append(out, rehearsal.Code(c))
	}
	return out
}

// KubeSecret is the Secret prenv writes with an environment's database
// connection, named and keyed as the chart reads it.
type KubeSecret struct {
	// Name is a template (.PR .Name .Repo .Namespace .Release); default
	// prenv-database.
	Name string `yaml:"name"`
	// Keys maps each key the chart reads to url, host, port, database,
	// user or password; default DATABASE_URL and url (url), host, port,
	// database, user, password.
	Keys map[string]string `yaml:"keys"`
}

// Golden configures where the golden data comes from, when it is rebuilt,
// how many generations are kept and how it is made safe to clone.
type Golden struct {
	// Source is what 'prenv golden build' without flags, and prenv serve
	// on Schedule, build from.
	Source GoldenSource `yaml:"source"`
	// Schedule is a cron expression (five fields, UTC; or @daily, @hourly)
	// on which prenv serve rebuilds the golden data from Source; empty
	// builds only when asked.
	Schedule string `yaml:"schedule"`
	// Keep is how many generations are kept (the newest); older ones are
	// deleted after each build. At least 2: a clone being made from the
	// previous generation finishes.
	Keep    int     `yaml:"keep"`
	Masking Masking `yaml:"masking"`
}

// GoldenSource is golden.source: exactly one of its fields.
type GoldenSource struct {
	SQL    string        `yaml:"sql"`  // plain SQL file, relative to prenv.yaml
	Dump   string        `yaml:"dump"` // pg_dump archive, relative to prenv.yaml
	URL    string        `yaml:"url"`  // live database: postgres://..., usually ${PRENV_GOLDEN_SOURCE_URL}
	Aurora *AuroraSource `yaml:"aurora"`
}

// AuroraSource is golden.source.aurora: the production cluster the nightly
// golden cluster is restored from (database.provider aurora).
type AuroraSource struct {
	Cluster string `yaml:"cluster"`
	// From is snapshot (its newest automated snapshot; the default) or
	// clone (a copy-on-write clone of the cluster as it is now).
	From string `yaml:"from"`
	// BuildTimeout bounds a build; a staging cluster left by a build
	// killed outright is deleted by the next build (or the sweeper) once
	// it is this old.
	BuildTimeout Duration `yaml:"build_timeout"`
}

// Set reports whether any source is given.
func (s GoldenSource) Set() bool {
	return s.SQL != "" || s.Dump != "" || s.URL != "" || s.Aurora != nil
}

// Masking is golden.masking: rules applied while the golden source is
// built, before it is promoted (docs/masking.md).
type Masking struct {
	// Salt keys every transformer (same input, same output, in every
	// table and every night); required once any rule exists. Give it from
	// a secret: salt: ${PRENV_MASKING_SALT}. It is never written into the
	// golden data.
	Salt string `yaml:"salt"`
	// Tables maps table -> column -> rule: a transformer's name (email),
	// or {json: {...}}, {transformer: hash, where: ...}, {sql: ...}.
	Tables map[string]map[string]mask.Rule `yaml:"tables"`
	// Keep lists "table.column" reviewed as not personal: the scanner
	// leaves them.
	Keep []string `yaml:"keep"`
}

// Rules are m as the masking engine takes them.
func (m Masking) Rules() mask.Rules {
	return mask.Rules{Salt: m.Salt, Tables: m.Tables, Keep: m.Keep}
}

// Sweep configures the sweeper: 'prenv sweep', prenv serve's sweeps and
// the nightly workflow 'prenv init github' writes.
type Sweep struct {
	// Interval is how often prenv serve sweeps (with apply); 0 turns its
	// sweeps off (run 'prenv sweep --apply' on a schedule instead).
	Interval Duration `yaml:"interval"`
	// Grace: an orphaned or half-made resource younger than this is kept,
	// since a run on another machine may be making it.
	Grace Duration `yaml:"grace"`
	// MaxDeletions bounds one run's deletions (an environment, or a
	// resource of none, counts one), the oldest first; 0 reports only.
	MaxDeletions int `yaml:"max_deletions"`
	// KeepLabel: an open pull request carrying it keeps its environment
	// whatever its expiry.
	KeepLabel string `yaml:"keep_label"`
	// Legacy selects resources prenv did not make, for teams moving from
	// scripts; they are deleted only with 'prenv sweep --apply --legacy'.
	Legacy SweepLegacy `yaml:"legacy"`
}

// SweepLegacy selects what a team's scripts made before prenv.
type SweepLegacy struct {
	// Tags: Aurora clusters and instances carrying all of them
	// (Ephemeral: "true").
	Tags map[string]string `yaml:"tags"`
	// NamespacePattern: Kubernetes namespaces whose name matches this
	// regular expression in full, and carry all NamespaceLabels.
	NamespacePattern string            `yaml:"namespace_pattern"`
	NamespaceLabels  map[string]string `yaml:"namespace_labels"`
	// OlderThan: only what is older is deleted (48h).
	OlderThan Duration `yaml:"older_than"`
}

// Enabled reports whether l selects anything.
func (l SweepLegacy) Enabled() bool {
	return len(l.Tags) > 0 || l.NamespacePattern != "" || len(l.NamespaceLabels) > 0
}

// Kubernetes configures the kubernetes runtime: a namespace and a Helm
// release of the team's chart per environment.
type Kubernetes struct {
	Kubeconfig       string            `yaml:"kubeconfig"`        // default: $KUBECONFIG, ~/.kube/config, or in-cluster
	Context          string            `yaml:"context"`           // kubeconfig context; default the current one
	Namespace        string            `yaml:"namespace"`         // template: .PR .Name .Repo
	Chart            string            `yaml:"chart"`             // path of the chart (directory or .tgz, relative to prenv.yaml), a chart name in chart_repo, or oci://host/path/name
	ChartVersion     string            `yaml:"chart_version"`     // version or semver range of a remote chart; default the latest
	ChartRepo        string            `yaml:"chart_repo"`        // URL of the chart repository that holds chart
	ChartPlainHTTP   bool              `yaml:"chart_plain_http"`  // reach an OCI registry over http
	ChartUsername    string            `yaml:"chart_username"`    // credentials of the repository or registry (default: helm registry login)
	ChartPassword    string            `yaml:"chart_password"`    // use ${VAR} rather than the secret itself
	Values           string            `yaml:"values"`            // template of the release's values (YAML)
	Migration        string            `yaml:"migration"`         // template of a migration Job prenv runs before the upgrade (charts without a hook)
	URL              string            `yaml:"url"`               // template of the environment's address
	Quota            map[string]string `yaml:"quota"`             // ResourceQuota hard limits
	DefaultRequests  map[string]string `yaml:"default_requests"`  // LimitRange defaults
	DefaultLimits    map[string]string `yaml:"default_limits"`    // LimitRange defaults
	IngressNamespace string            `yaml:"ingress_namespace"` // may reach the environment's pods
	PodSecurity      string            `yaml:"pod_security"`      // privileged | baseline | restricted
	Timeout          Duration          `yaml:"timeout"`           // bound on a release's rollout
	DeleteTimeout    Duration          `yaml:"delete_timeout"`    // bound on a namespace's deletion
	BasicAuth        BasicAuth         `yaml:"basic_auth"`        // a basic-auth Secret per environment for the ingress controller
	Secret           KubeSecret        `yaml:"secret"`            // the Secret with the database connection: its name and keys
}

// BasicAuth asks the kubernetes runtime for a basic-auth Secret
// (prenv-basic-auth) in each environment's namespace.
type BasicAuth struct {
	Enabled  bool   `yaml:"enabled"`
	User     string `yaml:"user"`     // default prenv
	Password string `yaml:"password"` // shared by every environment (use ${VAR}); empty: one generated per environment
}

// GitHub configures how environments follow pull requests: webhooks to
// prenv serve, reporting (deployments, the sticky comment) and
// reconciliation.
type GitHub struct {
	APIURL        string   `yaml:"api_url"`        // PRENV_GITHUB_API_URL; GitHub Enterprise Server: https://HOST/api/v3
	WebhookSecret string   `yaml:"webhook_secret"` // PRENV_GITHUB_WEBHOOK_SECRET; without it /webhooks/github is off
	AppID         int64    `yaml:"app_id"`         // authenticate prenv serve as this GitHub App
	AppKeyFile    string   `yaml:"app_key_file"`   // the App's private key (.pem), relative to prenv.yaml
	Repositories  []string `yaml:"repositories"`   // accept deliveries for these only; empty: any correctly signed
	Label         string   `yaml:"label"`          // opt-in: only pull requests with this label get an environment
	OptOutLabel   string   `yaml:"opt_out_label"`  // pull requests with this label get none
	Forks         string   `yaml:"forks"`          // off (default) | label: fork pull requests need fork_label
	ForkLabel     string   `yaml:"fork_label"`     // the label a maintainer sets to preview a fork's pull request
	Report        bool     `yaml:"report"`         // deployments and the sticky comment (default true)
	Reconcile     Duration `yaml:"reconcile"`      // how often prenv serve compares environments with open pull requests
	Concurrency   int      `yaml:"concurrency"`    // environments prenv serve works on at once
}

// App describes the application under preview. With no Start command an
// environment is database-only.
type App struct {
	Dir           string            `yaml:"dir"`            // working directory of the commands, relative to prenv.yaml
	Checkout      bool              `yaml:"checkout"`       // materialize each commit with git before building
	Build         string            `yaml:"build"`          // shell command run once per commit; $PRENV_RELEASE_DIR is where to put the result
	Migrate       string            `yaml:"migrate"`        // shell command run against the environment's database before a rollout
	Start         string            `yaml:"start"`          // shell command that serves HTTP on $PORT
	Health        string            `yaml:"health"`         // HTTP path that answers 2xx when ready
	HealthTimeout Duration          `yaml:"health_timeout"` // bound on waiting for health
	Env           map[string]string `yaml:"env"`            // extra environment for every command
}

// Default returns the configuration used when no prenv.yaml exists.
func Default() Config {
	c := Config{
		Version: CurrentVersion,
		Listen:  "127.0.0.1:8080",
		Owner:   "prenv",
		TTL:     Duration(7 * 24 * time.Hour),
		Database: Database{
			Provider: "localpg",
			Name:     "app",
			User:     "app",
		},
		Serve:   Serve{Domain: "localhost", Retention: Duration(14 * 24 * time.Hour), ClaimTTL: Duration(30 * time.Second)},
		Golden:  Golden{Keep: 2},
		Sweep:   Sweep{Interval: Duration(time.Hour), Grace: Duration(time.Hour), MaxDeletions: 10, KeepLabel: "prenv:keep"},
		Runtime: Runtime{Provider: "local", Local: Local{UIDs: "600000-699999"}, Kubernetes: Kubernetes{BasicAuth: BasicAuth{User: "prenv"}}},
		GitHub:  GitHub{Forks: "off", Report: true, Reconcile: Duration(10 * time.Minute), Concurrency: 4},
		App: App{
			Health:        "/healthz",
			HealthTimeout: Duration(60 * time.Second),
		},
	}
	providerDefaults(&c)
	return c
}

// Load reads the configuration: path if given, else prenv.yaml in dir (the
// current directory) if it exists, else the defaults. PRENV_* variables from
// getenv override the file. Home is always absolute: a relative home in the
// file is relative to the file's directory, a relative PRENV_HOME to dir.
func Load(path, dir string, getenv func(string) string) (Config, error) {
	c := Default()
	c.Dir, c.Source = dir, "defaults"
	if path == "" {
		candidate := filepath.Join(dir, FileName)
		if _, err := os.Stat(candidate); err == nil {
			path = candidate
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		referenced := map[string]bool{}
		recording := func(name string) string { referenced[name] = true; return getenv(name) }
		if err := Parse(data, path, recording, &c); err != nil {
			return Config{}, err
		}
		c.Referenced = referenced
		abs, err := filepath.Abs(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		c.Dir, c.Source = filepath.Dir(abs), abs
		// Like every path in the file, home is relative to the file's
		// directory, wherever prenv runs from.
		if c.Home != "" && !filepath.IsAbs(c.Home) {
			c.Home = filepath.Join(c.Dir, c.Home)
		}
	}
	if err := applyEnv(&c, getenv); err != nil {
		return Config{}, err
	}
	if c.Home == "" {
		c.Home = defaultHome(getenv)
	}
	// Home is made absolute once, here: a relative PRENV_HOME is relative
	// to the current directory (dir), and every later use (the socket
	// directories, the app's working directory, a child that changes
	// directory) sees the same place.
	home, err := absUnder(dir, c.Home)
	if err != nil {
		return Config{}, fmt.Errorf("home %q: %w", c.Home, err)
	}
	c.Home = home
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// absUnder returns path made absolute: relative to dir, itself relative to
// the process's working directory when not absolute.
func absUnder(dir, path string) (string, error) {
	if filepath.IsAbs(path) {
		return filepath.Clean(path), nil
	}
	return filepath.Abs(filepath.Join(dir, path))
}

func defaultHome(getenv func(string) string) string {
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "prenv")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if isDarwin() {
		return filepath.Join(home, "Library", "Application Support", "prenv")
	}
	return filepath.Join(home, ".local", "share", "prenv")
}

// Parse decodes data (named name in messages) over c. Unknown fields are
// rejected with their path. ${VAR} is expanded from getenv in the parsed
// values, never in the text, so a variable's value cannot add keys, end a
// value early at " #" or break a quote: it is taken literally. An unset
// variable without a default is an error naming its line.
func Parse(data []byte, name string, getenv func(string) string, c *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	doc := root.Content[0]
	if err := checkFields(doc, reflect.TypeOf(*c), ""); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if err := expandNode(doc, getenv); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	if err := doc.Decode(c); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrInvalid, err)
	}
	return nil
}

// expandNode expands the variables of every scalar value under n; mapping
// keys are left as written. An alias is skipped: the node it points to is
// expanded where it is defined, and only once.
func expandNode(n *yaml.Node, getenv func(string) string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := expandNode(c, getenv); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			if err := expandNode(n.Content[i], getenv); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		v, err := expand(n.Value, getenv)
		if err != nil {
			line := n.Line
			if n.Style&yaml.LiteralStyle != 0 {
				// A literal block's text starts on the line after its "|",
				// and keeps its line breaks.
				line += 1 + err.(*expandError).newlines
			}
			return fmt.Errorf("line %d: %v", line, err)
		}
		if v == n.Value {
			return nil
		}
		n.Value = v
		// A plain value was typed by YAML from what was written (${PORT}
		// is a string); once expanded, it is typed again from its value,
		// so ports, booleans and durations can come from variables. A value
		// that would read as null stays the text it is. Quoted values and
		// values with an explicit tag keep their type.
		if n.Style&(yaml.TaggedStyle|yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
			if n.ShortTag() == "!!null" {
				n.Tag = "!!str"
			}
		}
	}
	return nil
}

// expandError is an unset or malformed variable in a value; newlines counts
// the line breaks of the value before it.
type expandError struct {
	msg      string
	newlines int
}

func (e *expandError) Error() string { return e.msg }

// expand replaces ${VAR} (and ${VAR:-default}) in s; $$ is a literal $.
func expand(s string, getenv func(string) string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", &expandError{fmt.Sprintf("unterminated ${ in %q: close it with } (or write $$ for a literal $)", s), strings.Count(s[:i], "\n")}
			}
			expr := s[i+2 : i+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			v := getenv(name)
			if v == "" && hasDef {
				v = def
			} else if v == "" {
				return "", &expandError{fmt.Sprintf("${%s} is not set: export it, or write ${%s:-default}", name, name), strings.Count(s[:i], "\n")}
			}
			b.WriteString(v)
			i += end
			continue
		}
		b.WriteByte('$')
	}
	return b.String(), nil
}

// checkFields walks a mapping node against a struct type and reports the
// first key that matches no field, with its path and line.
func checkFields(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		for i := 1; i < len(n.Content); i += 2 {
			k := n.Content[i-1].Value
			if err := checkFields(n.Content[i], t.Elem(), join(path, k)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		fields[tag] = f.Type
	}
	for i := 1; i < len(n.Content); i += 2 {
		key := n.Content[i-1]
		ft, ok := fields[key.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for k := range fields {
				names = append(names, k)
			}
			sort.Strings(names)
			hint := "known fields here: " + strings.Join(names, ", ")
			if near := nearest(key.Value, names); near != "" {
				hint = fmt.Sprintf("did you mean %q?", join(path, near))
			}
			return fmt.Errorf("line %d: unknown field %q (%s)", key.Line, join(path, key.Value), hint)
		}
		if err := checkFields(n.Content[i], ft, join(path, key.Value)); err != nil {
			return err
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// nearest returns the candidate within edit distance 2 of s, if any.
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// applyEnv overrides leaf fields from PRENV_<PATH> variables, the path's
// dots turned to underscores: PRENV_HOME, PRENV_DATABASE_LOCALPG_PORTS.
func applyEnv(c *Config, getenv func(string) string) error {
	return walkLeaves(reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) error {
		name := "PRENV_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
		s := getenv(name)
		if s == "" {
			return nil
		}
		if err := setString(v, s); err != nil {
			return fmt.Errorf("%s=%q: %w: %v", name, s, ErrInvalid, err)
		}
		return nil
	})
}

func walkLeaves(v reflect.Value, path string, fn func(string, reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		p := join(path, tag)
		if fv.Kind() == reflect.Struct {
			if err := walkLeaves(fv, p, fn); err != nil {
				return err
			}
			continue
		}
		if fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct {
			// An optional section (golden.source.aurora): walked in a
			// fresh value when absent, and kept only if something was set.
			target := fv
			if fv.IsNil() {
				target = reflect.New(fv.Type().Elem())
			}
			if err := walkLeaves(target.Elem(), p, fn); err != nil {
				return err
			}
			if fv.IsNil() && !target.Elem().IsZero() {
				fv.Set(target)
			}
			continue
		}
		if err := fn(p, fv); err != nil {
			return err
		}
	}
	return nil
}

func setString(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeOf(Duration(0)) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot be set from the environment")
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Map:
		return fmt.Errorf("a map cannot be set from the environment: write it in prenv.yaml, where its values may reference variables (${NAME})")
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// Validate checks the configuration; errors name the field's path.
func (c *Config) Validate() error {
	var errs []string
	bad := func(path, format string, args ...any) {
		errs = append(errs, path+": "+fmt.Sprintf(format, args...))
	}
	if c.Version != CurrentVersion {
		bad("version", "%d is not supported by this prenv (want %d)", c.Version, CurrentVersion)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		bad("store", "want empty (the SQLite file under home) or postgres://user:password@host:5432/database (a database replicas share)")
	}
	if c.Owner == "" || strings.ContainsAny(c.Owner, " \t\n/") || len(c.Owner) > 63 {
		bad("owner", "%q: want a short identifier without spaces or slashes", c.Owner)
	}
	if c.Repository != "" {
		o, n, ok := strings.Cut(c.Repository, "/")
		if !ok || o == "" || n == "" {
			bad("repository", "%q: want owner/name", c.Repository)
		}
	}
	if c.TTL <= 0 {
		bad("ttl", "must be positive, for example 168h")
	}
	if _, _, err := splitHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v (for example 127.0.0.1:8080)", c.Listen, err)
	}
	switch c.Database.Provider {
	case "localpg", "memory":
	case "aurora":
		a := c.Database.Aurora
		// The cloner's own rules, written once in its options.
		if err := c.AuroraOptions().Validate(); err != nil {
			errs = append(errs, strings.Split(err.Error(), "; ")...)
		}
		if a.Endpoint != "" {
			if u, err := url.Parse(a.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("database.aurora.endpoint", "%q: want an http(s) URL", a.Endpoint)
			}
		}
	default:
		bad("database.provider", "%q is not a known provider (localpg, aurora, memory)", c.Database.Provider)
	}
	if !identifier(c.Database.Name) {
		bad("database.name", "%q: want a lower-case SQL identifier", c.Database.Name)
	}
	if !identifier(c.Database.User) {
		bad("database.user", "%q: want a lower-case SQL identifier", c.Database.User)
	}
	if _, _, err := c.Database.LocalPG.PortRange(); err != nil {
		bad("database.localpg.ports", "%v", err)
	}
	for i, cidr := range c.Database.LocalPG.Allow {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			bad(fmt.Sprintf("database.localpg.allow[%d]", i), "%q is not a network: want a CIDR such as 10.0.0.0/8", cidr)
		}
	}
	if l := c.Database.LocalPG.Listen; l != "" && l != "127.0.0.1" && l != "localhost" && len(c.Database.LocalPG.Allow) == 0 {
		bad("database.localpg.allow", "is empty but listen is %q: only loopback could connect; list the networks that may (for a cluster, its pod CIDR)", l)
	}
	if c.Database.LocalPG.MaxConnections < 5 {
		bad("database.localpg.max_connections", "%d: at least 5", c.Database.LocalPG.MaxConnections)
	}
	if first, last, err := c.Runtime.Local.UIDRange(); err != nil {
		bad("runtime.local.uids", "%v", err)
	} else if last-first < 1 {
		bad("runtime.local.uids", "%q: want at least two ids (the first is the group that may enter PRENV_HOME)", c.Runtime.Local.UIDs)
	}
	if d := c.Serve.Domain; d == "" || strings.ContainsAny(d, " /:\t\n") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		bad("serve.domain", "%q: want a DNS name such as preview.example.com (environments answer at pr-N.<domain>)", d)
	}
	if c.Serve.ClaimTTL.D() < time.Second {
		bad("serve.claim_ttl", "%s: at least 1s, for example 30s", c.Serve.ClaimTTL.D())
	}
	if c.Serve.Retention <= 0 {
		bad("serve.retention", "must be positive, for example 336h")
	}
	nrules := 0
	for table, cols := range c.Golden.Masking.Tables {
		if strings.TrimSpace(table) == "" {
			bad("golden.masking.tables", "a table with no name")
		}
		nrules += len(cols)
	}
	if nrules > 0 && c.Golden.Masking.Salt == "" {
		bad("golden.masking.salt", "is required once any rule exists: the rules are keyed by it (the same input gives the same output every night); give it from a secret, for example salt: ${PRENV_MASKING_SALT}")
	}
	if s := c.Golden.Masking.Salt; s != "" && len(s) < 16 {
		bad("golden.masking.salt", "is %d characters: want at least 16 random ones (openssl rand -hex 32), or masked values can be guessed back", len(s))
	}
	for i, k := range c.Golden.Masking.Keep {
		if t, col, ok := strings.Cut(k, "."); !ok || t == "" || col == "" {
			bad(fmt.Sprintf("golden.masking.keep[%d]", i), "%q: want table.column", k)
		}
	}
	c.validateGolden(bad)
	if o := c.RehearsalOptions(); o != nil {
		if err := o.Validate(); err != nil {
			bad("migration", "%v", err)
		}
	}
	for i, code := range c.Migration.FailOn {
		if code != "all" && !slices.Contains(rehearsal.Codes(), rehearsal.Code(code)) {
			bad(fmt.Sprintf("migration.fail_on[%d]", i), "%q is not a warning's code: want all, or some of %s", code, joinCodes(rehearsal.Codes()))
		}
	}
	if len(c.Migration.FailOn) > 0 && !c.Migration.Check {
		bad("migration.fail_on", "fails the check run, which is off: set migration.check: true as well")
	}
	if c.Migration.Check && !c.Migration.Rehearse {
		bad("migration.check", "needs the rehearsal: migration.rehearse is false")
	}
	if c.Sweep.Interval < 0 {
		bad("sweep.interval", "%s: must not be negative (0 turns prenv serve's sweeps off, for example 1h)", c.Sweep.Interval.D())
	}
	if c.Sweep.Grace < 0 {
		bad("sweep.grace", "%s: must not be negative, for example 1h", c.Sweep.Grace.D())
	}
	if c.Sweep.MaxDeletions < 0 {
		bad("sweep.max_deletions", "%d: must not be negative (0 reports only, for example 10)", c.Sweep.MaxDeletions)
	}
	if strings.ContainsAny(c.Sweep.KeepLabel, "\n,") {
		bad("sweep.keep_label", "%q: want one GitHub label name", c.Sweep.KeepLabel)
	}
	if l := c.Sweep.Legacy; l.Enabled() || l.OlderThan != 0 {
		if l.OlderThan <= 0 {
			bad("sweep.legacy.older_than", "is required with sweep.legacy and must be positive, for example 48h: only what is older is deleted")
		}
		if !l.Enabled() {
			bad("sweep.legacy", "selects nothing: set tags (Aurora) or namespace_pattern / namespace_labels (Kubernetes)")
		}
		if l.NamespacePattern != "" {
			if _, err := regexp.Compile("^(?:" + l.NamespacePattern + ")$"); err != nil {
				bad("sweep.legacy.namespace_pattern", "%q is not a regular expression: %v", l.NamespacePattern, err)
			}
		}
	}
	switch c.Runtime.Provider {
	case "local", "memory":
	case "kubernetes":
		k := c.Runtime.Kubernetes
		if err := c.KubernetesOptions().Validate(); err != nil {
			errs = append(errs, strings.Split(err.Error(), "; ")...)
		}
		if k.Chart == "" {
			bad("runtime.kubernetes.chart", "is required: the path of the chart to install per environment, a chart name with chart_repo, or an oci:// reference")
		}
		if k.ChartRepo != "" {
			if u, err := url.Parse(k.ChartRepo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("runtime.kubernetes.chart_repo", "%q: want the http(s) URL of a chart repository (the one 'helm repo add' takes)", k.ChartRepo)
			}
			if strings.HasPrefix(k.Chart, "oci://") {
				bad("runtime.kubernetes.chart_repo", "is set but chart is an oci:// reference: remove one of them")
			}
		}
		if k.BasicAuth.Enabled && (k.BasicAuth.User == "" || strings.ContainsAny(k.BasicAuth.User, ":\n")) {
			bad("runtime.kubernetes.basic_auth.user", "%q: want a user name without ':'", k.BasicAuth.User)
		}
		if k.ChartVersion != "" && k.ChartRepo == "" && !strings.HasPrefix(k.Chart, "oci://") {
			bad("runtime.kubernetes.chart_version", "is for a remote chart (chart_repo or oci://); a local chart has the version in its Chart.yaml")
		}
		if c.App.Start != "" {
			bad("app.start", "is for the local runtime; with runtime.provider kubernetes the chart runs the app")
		}
	default:
		bad("runtime.provider", "%q is not a known provider (local, kubernetes, memory)", c.Runtime.Provider)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("public_url", "%q: want the http(s) address of prenv serve, such as https://prenv.example.com", c.PublicURL)
		}
	}
	switch c.GitHub.Forks {
	case "off":
	case "label":
		if c.GitHub.ForkLabel == "" {
			bad("github.fork_label", "is required with forks: label: the label only maintainers can set")
		}
	default:
		bad("github.forks", "%q: want off or label", c.GitHub.Forks)
	}
	if c.GitHub.APIURL != "" {
		if u, err := url.Parse(c.GitHub.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("github.api_url", "%q: want the API's URL, such as https://github.example.com/api/v3", c.GitHub.APIURL)
		}
	}
	if (c.GitHub.AppID != 0) != (c.GitHub.AppKeyFile != "") {
		bad("github.app_id", "and github.app_key_file go together: the GitHub App's id and its private key")
	}
	for i, r := range c.GitHub.Repositories {
		if o, n, ok := strings.Cut(r, "/"); !ok || o == "" || n == "" || strings.Contains(n, "/") {
			bad(fmt.Sprintf("github.repositories[%d]", i), "%q: want owner/name", r)
		}
	}
	if c.GitHub.Concurrency < 1 {
		bad("github.concurrency", "%d: at least 1", c.GitHub.Concurrency)
	}
	if c.App.Start != "" && !strings.HasPrefix(c.App.Health, "/") {
		bad("app.health", "%q: want an HTTP path such as /healthz", c.App.Health)
	}
	if c.App.Start == "" && (c.App.Migrate != "" || c.App.Build != "") {
		bad("app.start", "is empty but app.build or app.migrate is set: say how to start the app, or remove them for a database-only environment")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %w:\n  %s", c.Source, ErrInvalid, strings.Join(errs, "\n  "))
	}
	return nil
}

// HasApp reports whether environments run an application, or are database-only.
func (c *Config) HasApp() bool { return c.App.Start != "" || c.Runtime.Provider == "kubernetes" }

// PortRange parses Ports.
func (l LocalPG) PortRange() (first, last int, err error) {
	return parseRange(l.Ports, 1024, 65535, "between 1024 and 65535", "54400-54499")
}

// parseRange parses "first-last" with lo <= first <= last <= hi; what and
// example say what is wanted in the error.
func parseRange(s string, lo, hi int, what, example string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want first-last, for example %s", s, example)
	}
	first, err1 := strconv.Atoi(strings.TrimSpace(a))
	last, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || first < lo || last > hi || first > last {
		return 0, 0, fmt.Errorf("%q: want first-last %s, for example %s", s, what, example)
	}
	return first, last, nil
}

func identifier(s string) bool {
	if s == "" || len(s) > 63 || !(s[0] >= 'a' && s[0] <= 'z' || s[0] == '_') {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

func splitHostPort(s string) (string, int, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, errors.New("missing port")
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return "", 0, errors.New("bad port")
	}
	return s[:i], p, nil
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads "90s", "2h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (for example 30s, 2h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Aurora golden sources: how a nightly build gets production's data.
const (
	AuroraFromSnapshot = "snapshot"
	AuroraFromClone    = "clone"
)

// validateGolden checks golden.source, golden.schedule and golden.keep.
func (c *Config) validateGolden(bad func(path, format string, args ...any)) {
	g := c.Golden
	n := 0
	for _, v := range []bool{g.Source.SQL != "", g.Source.Dump != "", g.Source.URL != "", g.Source.Aurora != nil} {
		if v {
			n++
		}
	}
	if n > 1 {
		bad("golden.source", "gives %d sources: want exactly one of sql, dump, url, aurora", n)
	}
	if u := g.Source.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		bad("golden.source.url", "is not a postgres:// URL (give it from a secret: url: ${PRENV_GOLDEN_SOURCE_URL})")
	}
	if a := g.Source.Aurora; a != nil {
		if c.Database.Provider != "aurora" {
			bad("golden.source.aurora", "builds a golden cluster on Aurora, but database.provider is %q: use sql, dump or url for a local golden source, or set database.provider: aurora", c.Database.Provider)
		}
		if a.Cluster == "" {
			bad("golden.source.aurora.cluster", "is required: the production cluster the golden data is restored from")
		}
		switch a.From {
		case "", AuroraFromSnapshot, AuroraFromClone:
		default:
			bad("golden.source.aurora.from", "%q: want snapshot (its newest automated snapshot) or clone (a copy-on-write clone of it now)", a.From)
		}
		if a.BuildTimeout != 0 && a.BuildTimeout.D() < time.Hour {
			bad("golden.source.aurora.build_timeout", "%s: at least 1h (a restore and its writer take tens of minutes; a build past it is stopped and its cluster deleted), for example 6h", a.BuildTimeout.D())
		}
	} else if c.Database.Provider == "aurora" && g.Source.Set() {
		bad("golden.source", "on Aurora the golden data is a cluster: give golden.source.aurora (the production cluster), or maintain the golden cluster yourself and name it in database.aurora.source_cluster")
	}
	if g.Schedule != "" {
		if s, err := ParseSchedule(g.Schedule); err == nil {
			if t := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); s.Next(t).Sub(t) < time.Hour && !strings.HasPrefix(g.Schedule, "@every ") {
				bad("golden.schedule", "%q builds more than once an hour: golden data is rebuilt nightly, for example \"17 2 * * *\"", g.Schedule)
			}
		}
		if _, err := ParseSchedule(g.Schedule); err != nil {
			bad("golden.schedule", "%q: %v (five fields, minute hour day-of-month month day-of-week, in UTC, such as \"0 3 * * *\"; or @daily)", g.Schedule, err)
		} else if !g.Source.Set() {
			bad("golden.schedule", "is set but golden.source is empty: say what the scheduled build restores from")
		}
	}
	if g.Keep < 2 {
		bad("golden.keep", "%d: keep at least 2 generations, so that a clone being made from the previous one can finish", g.Keep)
	}
}

// ParseSchedule parses a cron expression: five fields (minute, hour, day of
// month, month, day of week) or a descriptor (@daily, @hourly, @weekly,
// @every 6h); times are UTC.
func ParseSchedule(expr string) (cron.Schedule, error) {
	return cron.ParseStandard(expr)
}

func joinCodes(codes []rehearsal.Code) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}
