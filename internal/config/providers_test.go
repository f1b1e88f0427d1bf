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
