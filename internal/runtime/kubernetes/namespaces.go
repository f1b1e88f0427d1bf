package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

// Names of the objects prenv makes in every environment's namespace.
const (
	QuotaName      = "prenv-quota"
	LimitRangeName = "prenv-limits"
	PolicyName     = "prenv-ingress"
	SecretName     = "prenv-database"
)

// Label and annotation keys on Kubernetes objects. Label values are
// restricted (63 characters, no '/' or ':'), so the environment's key, the
// repository and the times are annotations; the labels are what selectors
// need.
const (
	LabelOwner          = "prenv.dev/owner"
	LabelEnv            = "prenv.dev/env" // the environment's name, pr-12
	LabelPR             = "prenv.dev/pr"
	LabelEphemeral      = "prenv.dev/ephemeral"
	AnnotationKey       = "prenv.dev/env-key" // owner/name#12
	AnnotationRepo      = "prenv.dev/repository"
	AnnotationCreatedAt = "prenv.dev/created-at"
	AnnotationExpiresAt = "prenv.dev/expires-at"
	// LabelRole says what an object is for, where a namespace holds several
	// of a kind: RoleDatabase (the database Secret), migration (the pods of
	// prenv's migration Job).
	LabelRole    = "prenv.dev/role"
	RoleDatabase = "database"
)

// Options configure the environment's namespace.
type Options struct {
	Owner string
	// NamespaceTemplate renders the namespace's name from .PR, .Name and
	// .Repo (default "pr-{{ .PR }}").
	NamespaceTemplate string
	// Quota is the ResourceQuota's hard limits.
	Quota map[string]string
	// DefaultRequests and DefaultLimits are the LimitRange's container
	// defaults, so pods without requests still schedule under the quota.
	DefaultRequests map[string]string
	DefaultLimits   map[string]string
	// IngressNamespace is where the ingress controller runs; its pods may
	// reach the environment.
	IngressNamespace string
	// PodSecurity is the Pod Security admission level enforced.
	PodSecurity string
	// DeleteTimeout bounds the wait for a namespace to go away.
	DeleteTimeout time.Duration
	// BasicAuth, if set, makes a basic-auth Secret (AuthSecretName) in
	// each environment for the ingress controller to enforce.
	BasicAuth *BasicAuth
	// SecretTemplate renders the name of the Secret with the database
	// connection from .PR, .Name, .Repo, .Namespace and .Release (default
	// SecretName), so that a chart reading its own Secret deploys
	// unchanged.
	SecretTemplate string
	// SecretKeys maps each key of that Secret to what it holds: url, host,
	// port, database, user or password. Empty: DefaultSecretKeys.
	SecretKeys map[string]string
}

// SecretValues are what a key of the database Secret can hold.
var SecretValues = []string{"url", "host", "port", "database", "user", "password"}

// DefaultSecretKeys are the database Secret's keys unless
// runtime.kubernetes.secret.keys says otherwise.
func DefaultSecretKeys() map[string]string {
	return map[string]string{"DATABASE_URL": "url", "url": "url", "host": "host", "port": "port", "database": "database", "user": "user", "password": "password"}
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	secretKey    = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// SecretName renders the name of k's database Secret.
func (o Options) SecretName(k env.Key) (string, error) {
	tmpl := o.SecretTemplate
	if tmpl == "" {
		tmpl = SecretName
	}
	ns, err := o.namespace(k)
	if err != nil {
		return "", err
	}
	t, err := template.New("secret").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("runtime.kubernetes.secret.name: %q: %v", tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		PR                             int
		Name, Repo, Namespace, Release string
	}{k.PR, k.Name(), k.Repo, ns, releaseName(k)}); err != nil {
		return "", fmt.Errorf("runtime.kubernetes.secret.name: %q: %v (fields: .PR, .Name, .Repo, .Namespace, .Release)", tmpl, err)
	}
	name := b.String()
	switch {
	case len(name) > 253 || !dnsSubdomain.MatchString(name):
		return "", fmt.Errorf("runtime.kubernetes.secret.name: %q renders %q, not a Secret's name (lower-case letters, digits, '-' and '.', at most 253)", tmpl, name)
	case name == AuthSecretName:
		return "", fmt.Errorf("runtime.kubernetes.secret.name: %q renders %q, the basic-auth Secret's name: choose another", tmpl, name)
	}
	return name, nil
}

// secretData is the database Secret's data for db.
func (o Options) secretData(db dbclone.Database) map[string]string {
	keys := o.SecretKeys
	if len(keys) == 0 {
		keys = DefaultSecretKeys()
	}
	values := map[string]string{"url": db.URL, "host": db.Host, "port": strconv.Itoa(db.Port), "database": db.DBName, "user": db.User, "password": db.Password}
	data := map[string]string{}
	for k, v := range keys {
		data[k] = values[v]
	}
	if db.SecretRef != "" {
		data["password_secret"] = db.SecretRef // the password is in the provider's secret store
	}
	return data
}

// DefaultOptions are the defaults of the kubernetes runtime.
func DefaultOptions(owner string) Options {
	return Options{
		Owner: owner, NamespaceTemplate: "pr-{{ .PR }}",
		Quota:            map[string]string{"requests.cpu": "1", "requests.memory": "2Gi", "limits.cpu": "2", "limits.memory": "4Gi"},
		DefaultRequests:  map[string]string{"cpu": "100m", "memory": "128Mi"},
		DefaultLimits:    map[string]string{"cpu": "500m", "memory": "512Mi"},
		IngressNamespace: "ingress-nginx", PodSecurity: "baseline", DeleteTimeout: 2 * time.Minute,
		SecretTemplate: SecretName, SecretKeys: DefaultSecretKeys(),
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// Validate checks the options before anything touches a cluster; errors name
// the configuration field.
func (o Options) Validate() error {
	var errs []string
	if _, err := o.namespace(env.Key{Repo: "an-organisation/a-repository", PR: 123456}); err != nil {
		errs = append(errs, err.Error())
	}
	for field, m := range map[string]map[string]string{"quota": o.Quota, "default_requests": o.DefaultRequests, "default_limits": o.DefaultLimits} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, err := resource.ParseQuantity(m[k]); err != nil {
				errs = append(errs, fmt.Sprintf("runtime.kubernetes.%s.%s: %q is not a quantity (for example 500m, 2Gi)", field, k, m[k]))
			}
		}
	}
	switch o.PodSecurity {
	case "privileged", "baseline", "restricted":
	default:
		errs = append(errs, fmt.Sprintf("runtime.kubernetes.pod_security: %q: want privileged, baseline or restricted", o.PodSecurity))
	}
	if o.IngressNamespace != "" && !dnsLabel.MatchString(o.IngressNamespace) {
		errs = append(errs, fmt.Sprintf("runtime.kubernetes.ingress_namespace: %q is not a namespace name", o.IngressNamespace))
	}
	if _, err := o.SecretName(env.Key{Repo: "an-organisation/a-repository", PR: 123456}); err != nil {
		errs = append(errs, err.Error())
	}
	keys := make([]string, 0, len(o.SecretKeys))
	for k := range o.SecretKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(k) > 253 || !secretKey.MatchString(k) || k == "password_secret" {
			errs = append(errs, fmt.Sprintf("runtime.kubernetes.secret.keys: %q is not a key a Secret can have (letters, digits, '-', '_' and '.'; password_secret is prenv's)", k))
		}
		if v := o.SecretKeys[k]; !slices.Contains(SecretValues, v) {
			errs = append(errs, fmt.Sprintf("runtime.kubernetes.secret.keys.%s: %q: want one of %s", k, v, strings.Join(SecretValues, ", ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// namespace renders the namespace name of k.
func (o Options) namespace(k env.Key) (string, error) {
	t, err := template.New("namespace").Option("missingkey=error").Parse(o.NamespaceTemplate)
	if err != nil {
		return "", fmt.Errorf("runtime.kubernetes.namespace: %q: %v", o.NamespaceTemplate, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct {
		PR         int
		Name, Repo string
	}{k.PR, k.Name(), k.Repo}); err != nil {
		return "", fmt.Errorf("runtime.kubernetes.namespace: %q: %v (fields: .PR, .Name, .Repo)", o.NamespaceTemplate, err)
	}
	name := b.String()
	if len(name) > 63 || !dnsLabel.MatchString(name) {
		return "", fmt.Errorf("runtime.kubernetes.namespace: %q renders %q, not a DNS label (lower-case letters, digits and '-', at most 63): use {{ .Name }}, which always is", o.NamespaceTemplate, name)
	}
	return name, nil
}

// Namespaces makes and removes environments' namespaces.
type Namespaces struct {
	Client  kubernetes.Interface
	Options Options

	page int64 // objects per list request; 0 is listPage (tests page small)
}

func (n *Namespaces) meta(name string, k env.Key, labels map[string]string) metav1.ObjectMeta {
	created := time.Now().UTC()
	if t, err := time.Parse(time.RFC3339, labels[env.LabelCreatedAt]); err == nil {
		created = t
	}
	expires := labels[env.LabelExpiresAt]
	return metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			LabelOwner: n.Options.Owner, LabelEnv: k.Name(), LabelPR: strconv.Itoa(k.PR), LabelEphemeral: "true",
		},
		Annotations: map[string]string{
			AnnotationKey: k.String(), AnnotationRepo: k.Repo,
			AnnotationCreatedAt: created.Format(time.RFC3339), AnnotationExpiresAt: expires,
		},
	}
}

// ours returns ErrNotOurs unless obj carries our owner id and k's name.
func (n *Namespaces) ours(kind string, obj metav1.Object, k env.Key) error {
	l := obj.GetLabels()
	if l[LabelOwner] != n.Options.Owner {
		return fmt.Errorf("%s %s exists without prenv's owner label %s=%s: %w; it is left untouched", kind, obj.GetName(), LabelOwner, n.Options.Owner, runtime.ErrNotOurs)
	}
	if l[LabelEnv] != k.Name() {
		return fmt.Errorf("%s %s belongs to environment %s, not %s: %w", kind, obj.GetName(), l[LabelEnv], k.Name(), runtime.ErrNotOurs)
	}
	return nil
}

// Name returns the namespace of k.
func (n *Namespaces) Name(k env.Key) (string, error) { return n.Options.namespace(k) }

// existing returns k's namespace name and the namespace, nil if it does not
// exist, or ErrNotOurs if it exists without our owner label.
func (n *Namespaces) existing(ctx context.Context, k env.Key) (string, *corev1.Namespace, error) {
	name, err := n.Name(k)
	if err != nil {
		return "", nil, err
	}
	ns, err := n.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return name, nil, nil
	}
	if err != nil {
		return name, nil, describe(err, "get", "namespaces")
	}
	if err := n.ours("namespace", ns, k); err != nil {
		return name, nil, err
	}
	return name, ns, nil
}

// Check returns ErrNotOurs if k's namespace exists and is not ours, and
// names a namespace still terminating from an earlier teardown.
func (n *Namespaces) Check(ctx context.Context, k env.Key) error {
	name, ns, err := n.existing(ctx, k)
	if err != nil || ns == nil {
		return err
	}
	if ns.DeletionTimestamp != nil {
		return fmt.Errorf("namespace %s is still terminating from an earlier down (%s): try again when it is gone", name, stuckReason(ns))
	}
	return nil
}

// Prepare creates or adopts k's namespace and the objects in it: quota,
// limit range, network policy and the database Secret. Each carries the
// owner labels from creation; anything in the way without them is refused.
func (n *Namespaces) Prepare(ctx context.Context, spec runtime.Spec) error {
	k := spec.Key
	if err := n.Check(ctx, k); err != nil {
		return err
	}
	name, _ := n.Name(k)
	meta := n.meta(name, k, spec.Labels)
	nsMeta := meta
	nsMeta.Labels = merge(meta.Labels, map[string]string{
		"pod-security.kubernetes.io/enforce": n.Options.PodSecurity, "pod-security.kubernetes.io/enforce-version": "latest",
		"pod-security.kubernetes.io/warn": n.Options.PodSecurity, "pod-security.kubernetes.io/audit": n.Options.PodSecurity,
	})
	if _, err := n.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: nsMeta}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return describe(err, "create", "namespaces")
	}
	objMeta := func(objName string) metav1.ObjectMeta {
		m := meta
		m.Name, m.Namespace = objName, name
		return m
	}
	quota := &corev1.ResourceQuota{ObjectMeta: objMeta(QuotaName), Spec: corev1.ResourceQuotaSpec{Hard: quantities(n.Options.Quota)}}
	limits := &corev1.LimitRange{ObjectMeta: objMeta(LimitRangeName), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type: corev1.LimitTypeContainer, Default: quantities(n.Options.DefaultLimits), DefaultRequest: quantities(n.Options.DefaultRequests),
	}}}}
	policy := &networkingv1.NetworkPolicy{ObjectMeta: objMeta(PolicyName), Spec: n.policy()}
	secretName, err := n.Options.SecretName(k)
	if err != nil {
		return fmt.Errorf("%v: %w", err, runtime.ErrInvalid)
	}
	secretMeta := objMeta(secretName)
	secretMeta.Labels = merge(secretMeta.Labels, map[string]string{LabelRole: RoleDatabase})
	secret := &corev1.Secret{ObjectMeta: secretMeta, Type: corev1.SecretTypeOpaque, StringData: n.Options.secretData(spec.Database)}
	c := n.Client.CoreV1()
	steps := []struct {
		resource string
		upsert   func() error
	}{
		{"resourcequotas", func() error {
			return upsert(ctx, "resourcequota", quota, k, n, c.ResourceQuotas(name).Get, c.ResourceQuotas(name).Create, func(cur *corev1.ResourceQuota) (*corev1.ResourceQuota, error) {
				cur.Spec = quota.Spec
				return c.ResourceQuotas(name).Update(ctx, cur, metav1.UpdateOptions{})
			})
		}},
		{"limitranges", func() error {
			return upsert(ctx, "limitrange", limits, k, n, c.LimitRanges(name).Get, c.LimitRanges(name).Create, func(cur *corev1.LimitRange) (*corev1.LimitRange, error) {
				cur.Spec = limits.Spec
				return c.LimitRanges(name).Update(ctx, cur, metav1.UpdateOptions{})
			})
		}},
		{"networkpolicies", func() error {
			p := n.Client.NetworkingV1().NetworkPolicies(name)
			return upsert(ctx, "networkpolicy", policy, k, n, p.Get, p.Create, func(cur *networkingv1.NetworkPolicy) (*networkingv1.NetworkPolicy, error) {
				cur.Spec = policy.Spec
				return p.Update(ctx, cur, metav1.UpdateOptions{})
			})
		}},
		{"secrets", func() error {
			return upsert(ctx, "secret", secret, k, n, c.Secrets(name).Get, c.Secrets(name).Create, func(cur *corev1.Secret) (*corev1.Secret, error) {
				cur.Data, cur.StringData = nil, secret.StringData
				return c.Secrets(name).Update(ctx, cur, metav1.UpdateOptions{})
			})
		}},
	}
	if n.Options.BasicAuth != nil {
		steps = append(steps, struct {
			resource string
			upsert   func() error
		}{"secrets", func() error { return n.upsertAuth(ctx, k, name, objMeta(AuthSecretName)) }})
	}
	for _, s := range steps {
		if err := s.upsert(); err != nil {
			return describe(err, "create or update", s.resource)
		}
	}
	return n.removeStaleSecrets(ctx, k, name, secretName)
}

// removeStaleSecrets deletes the database Secrets of k that prenv made
// under another name (runtime.kubernetes.secret.name changed since): the
// password must not stay readable where nothing uses it. Only Secrets with
// prenv's labels for k are deleted.
func (n *Namespaces) removeStaleSecrets(ctx context.Context, k env.Key, ns, current string) error {
	c := n.Client.CoreV1().Secrets(ns)
	list, err := c.List(ctx, metav1.ListOptions{LabelSelector: LabelOwner + "=" + n.Options.Owner})
	if err != nil {
		return describe(err, "list", "secrets")
	}
	for _, s := range list.Items {
		stale := s.Labels[LabelRole] == RoleDatabase || s.Name == SecretName // prenv-database: made before the role label
		if !stale || s.Name == current || n.ours("secret", &s, k) != nil {
			continue
		}
		pre := metav1.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion}
		if err := c.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &pre}); err != nil && !apierrors.IsNotFound(err) {
			return describe(err, "delete", "secrets")
		}
	}
	return nil
}

// upsert creates obj, or updates it if it exists and is ours.
func upsert[T metav1.Object](ctx context.Context, kind string, obj T, k env.Key, n *Namespaces,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	update func(T) (T, error)) error {
	cur, err := get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = create(ctx, obj, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if err := n.ours(kind, cur, k); err != nil {
		return err
	}
	_, err = update(cur)
	return err
}

func (n *Namespaces) policy() networkingv1.NetworkPolicySpec {
	from := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}
	if n.Options.IngressNamespace != "" {
		from = append(from, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": n.Options.IngressNamespace}}})
	}
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: from}},
	}
}

// Teardown deletes k's namespace and waits, within DeleteTimeout, until it
// is gone. Gone already is success; not ours is refused. If it is stuck
// terminating, the error names the finalizers or the unavailable APIs that
// hold it; finalizers are never stripped.
func (n *Namespaces) Teardown(ctx context.Context, k env.Key) error {
	_, ns, err := n.existing(ctx, k)
	if err != nil || ns == nil {
		return err
	}
	return n.remove(ctx, ns, metav1.Preconditions{UID: &ns.UID})
}

// remove deletes ns, the namespace as its caller read and checked it, and
// waits within DeleteTimeout until it is gone. pre makes the API server
// refuse the deletion if the namespace is no longer the one checked (a
// namespace made again under the same name, or one relabelled since); it
// is not sent when ns is already terminating. Gone already is success.
func (n *Namespaces) remove(ctx context.Context, ns *corev1.Namespace, pre metav1.Preconditions) error {
	name := ns.Name
	if ns.DeletionTimestamp == nil {
		err := n.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &pre})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsConflict(err) {
			return fmt.Errorf("namespace %s changed after prenv checked it (%v): it is left; run again to check it anew", name, err)
		}
		if err != nil {
			return describe(err, "delete", "namespaces")
		}
	}
	timeout := n.Options.DeleteTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		ns, err := n.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return describe(err, "get", "namespaces")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s is still terminating after %v: %s; prenv does not remove finalizers, resolve what holds them and run down again", name, timeout, stuckReason(ns))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// stuckReason reads why a namespace is not gone from its conditions.
func stuckReason(ns *corev1.Namespace) string {
	var parts []string
	for _, c := range ns.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case corev1.NamespaceFinalizersRemaining, corev1.NamespaceContentRemaining,
			corev1.NamespaceDeletionDiscoveryFailure, corev1.NamespaceDeletionContentFailure, corev1.NamespaceDeletionGVParsingFailure:
			parts = append(parts, c.Message)
		}
	}
	if len(ns.Spec.Finalizers) > 0 && len(parts) == 0 {
		var f []string
		for _, x := range ns.Spec.Finalizers {
			f = append(f, string(x))
		}
		parts = append(parts, "the namespace controller has not finished deleting its content (namespace finalizers: "+strings.Join(f, ", ")+"; no condition reported yet)")
	}
	if len(parts) == 0 {
		return "no reason reported yet"
	}
	return strings.Join(parts, "; ")
}

// List returns the namespaces carrying prenv's owner label.
func (n *Namespaces) List(ctx context.Context) ([]runtime.Instance, error) {
	list, err := n.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: LabelOwner + "=" + n.Options.Owner})
	if err != nil {
		return nil, describe(err, "list", "namespaces")
	}
	var out []runtime.Instance
	for _, ns := range list.Items {
		k, err := env.ParseKey(ns.Annotations[AnnotationKey])
		if err != nil {
			continue // ours by label but unreadable: skipped, never guessed
		}
		out = append(out, runtime.Instance{Key: k, Name: ns.Name, Labels: record(&ns, k)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// record is what prenv wrote on ns, in prenv's own vocabulary
// (env.Labels): Kubernetes labels cannot hold the key, the repository or
// the times, so those are read from the annotations.
func record(ns *corev1.Namespace, k env.Key) map[string]string {
	return map[string]string{
		env.LabelOwner: ns.Labels[LabelOwner], env.LabelKey: k.String(), env.LabelPR: ns.Labels[LabelPR],
		env.LabelRepo: ns.Annotations[AnnotationRepo], env.LabelCreatedAt: ns.Annotations[AnnotationCreatedAt],
		env.LabelExpiresAt: ns.Annotations[AnnotationExpiresAt], env.LabelEphemeral: ns.Labels[LabelEphemeral],
	}
}

// describe turns API errors into what to do about them; a refused request
// names the verb and resource the credentials lack.
func describe(err error, verb, resource string) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("the cluster refused to %s %s for prenv's credentials (%v): grant the verb on the resource in prenv's Role or ClusterRole", verb, resource, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the cluster does not accept prenv's credentials (%v): check the kubeconfig (for EKS, aws eks update-kubeconfig)", err)
	case isUnreachable(err):
		return fmt.Errorf("cannot reach the cluster (%v): check runtime.kubernetes.kubeconfig and context, and the network to the API server", err)
	}
	return fmt.Errorf("%s %s: %w", verb, resource, err)
}

func quantities(m map[string]string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for k, v := range m {
		out[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	return out
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func isUnreachable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout")
}
