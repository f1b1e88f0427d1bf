package config

import (
	"reflect"
	"strings"
	"testing"

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
