package config

import (
	"fmt"
	"strconv"

	"github.com/prenv/prenv/internal/rehearsal"

	"github.com/prenv/prenv/internal/dbclone/aurora"
	"github.com/prenv/prenv/internal/dbclone/localpg"
	kubert "github.com/prenv/prenv/internal/runtime/kubernetes"
)

// Each provider owns its defaults and its validation (its options type);
// this file maps prenv.yaml onto them, so that the file's defaults are the
// providers' own and a provider's rule is written once.

// AuroraOptions are database.aurora as the aurora cloner's options.
func (c Config) AuroraOptions() aurora.Options {
	a := c.Database.Aurora
	return aurora.Options{
		Owner: c.Owner, Source: a.SourceCluster, Golden: c.Golden.Source.Aurora != nil, InstanceClass: a.InstanceClass, ParameterGroup: a.ParameterGroup,
		SecurityGroups: a.SecurityGroups, RequireSecurityGroups: a.RequireSecurityGroups, SubnetGroup: a.SubnetGroup,
		Prefix: a.Prefix, DBName: c.Database.Name, Credentials: a.Credentials, ReadyCheck: a.ReadyCheck, SSLMode: a.SSLMode,
		Region: a.Region, WaitTimeout: a.WaitTimeout.D(),
		Pool: aurora.PoolOptions{Size: a.Pool.Size, MaxAge: a.Pool.MaxAge.D(), InstanceClass: a.Pool.InstanceClass},
	}
}

// KubernetesOptions are runtime.kubernetes as the kubernetes runtime's
// namespace options.
func (c Config) KubernetesOptions() kubert.Options {
	k := c.Runtime.Kubernetes
	o := kubert.Options{
		Owner: c.Owner, NamespaceTemplate: k.Namespace, Quota: k.Quota, DefaultRequests: k.DefaultRequests, DefaultLimits: k.DefaultLimits,
		IngressNamespace: k.IngressNamespace, PodSecurity: k.PodSecurity, DeleteTimeout: k.DeleteTimeout.D(),
		SecretTemplate: k.Secret.Name, SecretKeys: k.Secret.Keys,
	}
	if k.BasicAuth.Enabled {
		o.BasicAuth = &kubert.BasicAuth{User: k.BasicAuth.User, Password: k.BasicAuth.Password}
	}
	return o
}

// RehearsalOptions are migration as the rehearsal's options; nil when
// rehearsals are off.
func (c Config) RehearsalOptions() *rehearsal.Options {
	if !c.Migration.Rehearse {
		return nil
	}
	o := rehearsal.DefaultOptions()
	o.LockBudget, o.LargeTableRows, o.LongBackfill = c.Migration.LockBudget.D(), c.Migration.LargeTableRows, c.Migration.LongBackfill.D()
	return &o
}

// providerDefaults sets c's provider sections to the providers' defaults.
func providerDefaults(c *Config) {
	r := rehearsal.DefaultOptions()
	c.Migration = Migration{Rehearse: true, LockBudget: Duration(r.LockBudget), LargeTableRows: r.LargeTableRows, LongBackfill: Duration(r.LongBackfill)}
	a := aurora.DefaultOptions()
	c.Database.Aurora = Aurora{InstanceClass: a.InstanceClass, RequireSecurityGroups: a.RequireSecurityGroups, Prefix: a.Prefix,
		Credentials: a.Credentials, ReadyCheck: a.ReadyCheck, SSLMode: a.SSLMode, WaitTimeout: Duration(a.WaitTimeout)}
	l := localpg.New("", "", nil)
	c.Database.LocalPG = LocalPG{RunAs: l.RunAs, Ports: portRange(l.FirstPort, l.LastPort), SharedBuffers: l.Settings["shared_buffers"],
		MaxConnections: atoi(l.Settings["max_connections"]), StartTimeout: Duration(l.StartTimeout)}
	k := kubert.DefaultOptions("")
	c.Runtime.Kubernetes.Namespace, c.Runtime.Kubernetes.Quota = k.NamespaceTemplate, k.Quota
	c.Runtime.Kubernetes.DefaultRequests, c.Runtime.Kubernetes.DefaultLimits = k.DefaultRequests, k.DefaultLimits
	c.Runtime.Kubernetes.IngressNamespace, c.Runtime.Kubernetes.PodSecurity = k.IngressNamespace, k.PodSecurity
	c.Runtime.Kubernetes.DeleteTimeout = Duration(k.DeleteTimeout)
	c.Runtime.Kubernetes.Secret = KubeSecret{Name: kubert.SecretName, Keys: kubert.DefaultSecretKeys()}
	c.Runtime.Kubernetes.Timeout = Duration(kubert.DefaultTimeout)
}

func portRange(first, last int) string { return fmt.Sprintf("%d-%d", first, last) }

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
