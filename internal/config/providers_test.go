package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	kubert "github.com/prenv/prenv/internal/runtime/kubernetes"
)

// prenv.yaml's defaults are the providers' own: one owner per default.
func TestDefault_TheProvidersSectionsAreTheProvidersOwnDefaults(t *testing.T) {
	c := Default()
	c.Owner = ""
	if got, want := c.AuroraOptions(), aurora.DefaultOptions(); got.InstanceClass != want.InstanceClass || got.Prefix != want.Prefix ||
		got.Credentials != want.Credentials || got.ReadyCheck != want.ReadyCheck || got.SSLMode != want.SSLMode ||
		got.WaitTimeout != want.WaitTimeout || got.RequireSecurityGroups != want.RequireSecurityGroups {
		t.Errorf("database.aurora defaults %+v, the cloner's %+v", got, want)
	}
	if got, want := c.KubernetesOptions(), kubert.DefaultOptions(""); !reflect.DeepEqual(got, want) {
		t.Errorf("runtime.kubernetes defaults %+v, the runtime's %+v", got, want)
	}
	if c.Runtime.Kubernetes.Timeout.D() != kubert.DefaultTimeout {
		t.Errorf("runtime.kubernetes.timeout %s, the runtime's %s", c.Runtime.Kubernetes.Timeout.D(), kubert.DefaultTimeout)
	}
	l := localpg.New("", "", nil)
	first, last, _ := c.Database.LocalPG.PortRange()
	if c.Database.LocalPG.RunAs != l.RunAs || first != l.FirstPort || last != l.LastPort || c.Database.LocalPG.StartTimeout.D() != l.StartTimeout ||
		c.Database.LocalPG.SharedBuffers != l.Settings["shared_buffers"] {
		t.Errorf("database.localpg defaults %+v, the cloner's %+v", c.Database.LocalPG, l)
	}
}

// What a provider refuses, prenv.yaml refuses when it is read, with the
// provider's own words: before anything is recorded.
func TestValidate_TheProvidersRulesApplyWhenTheFileIsRead(t *testing.T) {
	c := Default()
	c.Database.Provider = "aurora"
	c.Database.Aurora.SourceCluster = "golden"
	c.Database.Aurora.SecurityGroups = []string{"default"}
	c.Database.Aurora.Prefix = "Prenv_"
	err := c.Validate()
	for _, want := range []string{"database.aurora.security_groups: \"default\" is not a security group id", "database.aurora.prefix \"Prenv_\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to say %s", err, want)
		}
	}
	c = Default()
	c.Runtime.Provider = "kubernetes"
	c.Runtime.Kubernetes.Chart = "./chart"
	c.Runtime.Kubernetes.PodSecurity = "strict"
	c.Runtime.Kubernetes.Quota = map[string]string{"limits.cpu": "two"}
	err = c.Validate()
	for _, want := range []string{"runtime.kubernetes.pod_security", "runtime.kubernetes.quota.limits.cpu"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to name %s", err, want)
		}
	}
}

func TestLoad_MaskingRulesInEitherFormAndTheirSaltFromTheEnvironment(t *testing.T) {
	p := write(t, `version: 1
golden:
  masking:
    salt: ${SALT}
    tables:
      people:
        email: email
        profile: {json: {"$.address": address, "$.contacts[*].email": email}}
        notes: {transformer: redact, where: "id > 10"}
    keep: [orders.total]
`)
	c, err := Load("", p, env(map[string]string{"SALT": "0123456789abcdef0123"}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Golden.Masking.Rules()
	if r.Salt != "0123456789abcdef0123" || r.Tables["people"]["email"].Transformer != "email" ||
		r.Tables["people"]["profile"].JSON["$.contacts[*].email"] != "email" || r.Tables["people"]["notes"].Where != "id > 10" || r.Keep[0] != "orders.total" {
		t.Fatalf("rules %+v", r)
	}
	p = write(t, "version: 1\ngolden:\n  masking:\n    tables:\n      people: {email: email}\n")
	if _, err := Load("", p, env(nil)); err == nil || !strings.Contains(err.Error(), "golden.masking.salt: is required") {
		t.Fatalf("rules without a salt: %v", err)
	}
	p = write(t, "version: 1\ngolden:\n  masking:\n    salt: 0123456789abcdef0123\n    tables:\n      people: {email: {transformr: email}}\n")
	if _, err := Load("", p, env(nil)); err == nil || !strings.Contains(err.Error(), "transformr") {
		t.Fatalf("a misspelt field in a rule: %v", err)
	}
}

// Issue 11: golden.source, golden.schedule and golden.keep are checked
// before anything is built, each error naming its field.
func TestValidate_GoldenSourceScheduleAndKeep(t *testing.T) {
	aurora := "version: 1\ndatabase:\n  provider: aurora\n  aurora:\n    security_groups: [sg-1]\n"
	refused := map[string]string{
		"version: 1\ngolden:\n  source: {sql: a.sql, url: postgres://x/y}\n":         "golden.source: gives 2 sources",
		"version: 1\ngolden:\n  source: {url: mysql://x/y}\n":                        "golden.source.url: is not a postgres:// URL",
		"version: 1\ngolden:\n  source: {aurora: {cluster: prod}}\n":                 "golden.source.aurora: builds a golden cluster on Aurora, but database.provider is \"localpg\"",
		"version: 1\ngolden:\n  source: {sql: a.sql}\n  schedule: at three\n":        "golden.schedule: \"at three\"",
		"version: 1\ngolden:\n  schedule: \"0 3 * * *\"\n":                           "golden.schedule: is set but golden.source is empty",
		"version: 1\ngolden:\n  keep: 1\n":                                           "golden.keep: 1: keep at least 2",
		"version: 1\ngolden:\n  source: {sql: a.sql}\n  schedule: \"*/5 * * * *\"\n": "builds more than once an hour",
		aurora + "golden:\n  source: {aurora: {cluster: prod, build_timeout: 1m}}\n": "golden.source.aurora.build_timeout: 1m0s: at least 1h",
		aurora + "golden:\n  source: {aurora: {cluster: prod, from: backup}}\n":      "golden.source.aurora.from: \"backup\"",
		aurora + "golden:\n  source: {aurora: {from: clone}}\n":                      "golden.source.aurora.cluster: is required",
		aurora + "golden:\n  source: {sql: a.sql}\n":                                 "golden.source: on Aurora the golden data is a cluster",
		aurora: "database.aurora.source_cluster is required",
		aurora + "    source_cluster: golden\ngolden:\n  source: {aurora: {cluster: prod}}\n": "keep one of the two",
	}
	for body, want := range refused {
		if _, err := Load("", write(t, body), env(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
	c, err := Load("", write(t, aurora+"golden:\n  source: {aurora: {cluster: prod}}\n  schedule: \"@daily\"\n"), env(nil))
	if err != nil {
		t.Fatalf("an Aurora golden source without source_cluster: %v", err)
	}
	if o := c.AuroraOptions(); !o.Golden || o.Source != "" || c.Golden.Keep != 2 {
		t.Errorf("options %+v keep %d: want the cloner to clone the newest golden generation, 2 kept", o, c.Golden.Keep)
	}
	sched, _ := ParseSchedule("0 3 * * *")
	from := time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC)
	if next := sched.Next(from); !next.Equal(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)) {
		t.Errorf("0 3 * * * after %v: %v, want 03:00 UTC the next day", from, next)
	}
}

func TestValidate_TheMigrationChecksCodes(t *testing.T) {
	c := Default()
	c.Migration.FailOn = []string{"table-rewrite", "table_rewrite"}
	err := c.Validate()
	for _, want := range []string{`migration.fail_on[1]: "table_rewrite" is not a warning's code: want all, or some of access-exclusive-over-budget, table-rewrite,`,
		"migration.fail_on: fails the check run, which is off: set migration.check: true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to say %s", err, want)
		}
	}
	c = Default()
	c.Migration.Check, c.Migration.FailOn = true, []string{"all"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Migration.FailOnCodes(); len(got) != 6 {
		t.Errorf("fail_on: [all] = %v; want every code", got)
	}
	c.Migration.Rehearse = false
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "migration.check: needs the rehearsal") {
		t.Errorf("check without the rehearsal: %v", err)
	}
}
