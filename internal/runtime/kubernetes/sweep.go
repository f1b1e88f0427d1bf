package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/prenv/prenv/internal/env"
)

var (
	_ env.Inventory = (*Runtime)(nil)
	_ env.Renewer   = (*Runtime)(nil)
)

// AnnotationDeletionProtection, set to "true" on a namespace, keeps the
// sweeper from deleting it: it is reported as protected and never removed
// (prenv down still removes it; protection guards against the sweeper, not
// against a person). Any value but "false" protects, so a typo keeps the
// namespace rather than losing it.
const AnnotationDeletionProtection = "prenv.dev/deletion-protection"

// What a namespace is in the sweeper's words (env.Resource).
const (
	ResourceProvider = "kubernetes"
	ResourceKind     = "namespace"
)

// listPage is how many objects one list request asks for: a sweep over a
// thousand namespaces costs a few requests, never one per namespace.
const listPage = 500

// systemNamespaces are never listed as foreign or legacy, whatever a
// pattern says: the sweeper has no business near them.
var systemNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// Resources implements env.Inventory: one paginated list of namespaces and
// one paginated, cluster-wide list of Helm's release records, whatever the
// number of environments. It returns the namespaces carrying q.Owner, those
// carrying another owner id or named like prenv's namespaces
// (runtime.kubernetes.namespace) without an owner label (foreign), and,
// with q.Legacy, those it selects.
func (r *Runtime) Resources(ctx context.Context, q env.Query) ([]env.Resource, error) {
	n := r.Namespaces
	owner := n.owner(q)
	legacy, err := legacySelector(q.Legacy)
	if err != nil {
		return nil, err
	}
	ours, err := n.Options.pattern()
	if err != nil {
		return nil, err
	}
	var out []env.Resource
	half := map[int]string{} // index in out → its namespace, for the release check
	opts := metav1.ListOptions{Limit: n.limit()}
	for {
		list, err := n.Client.CoreV1().Namespaces().List(ctx, opts)
		if err != nil {
			return nil, describe(err, "list", "namespaces")
		}
		for i := range list.Items {
			ns := &list.Items[i]
			res, ok := n.resource(ns, owner, ours, legacy)
			if !ok {
				continue
			}
			if res.Owner() == owner && res.Problem == "" {
				half[len(out)] = ns.Name
			}
			out = append(out, res)
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if len(half) > 0 {
		releases, err := helmReleases(ctx, n)
		if err != nil {
			return nil, err
		}
		for i, ns := range half {
			out[i].HalfMade = releases.halfMade(ns, releaseName(out[i].Key))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// owner is the owner id a sweep works for: the query's, else the runtime's.
func (n *Namespaces) owner(q env.Query) string {
	if q.Owner != "" {
		return q.Owner
	}
	return n.Options.Owner
}

func (n *Namespaces) limit() int64 {
	if n.page > 0 {
		return n.page
	}
	return listPage
}

// resource is ns as the sweeper sees it, and whether it is listed at all:
// a namespace that is neither ours, another installation's, named like
// ours, nor selected as legacy is none of prenv's business.
func (n *Namespaces) resource(ns *corev1.Namespace, owner string, ours *regexp.Regexp, legacy *legacyMatch) (env.Resource, bool) {
	res := env.Resource{Provider: ResourceProvider, Kind: ResourceKind, ID: ns.Name, CreatedAt: ns.CreationTimestamp.Time, Shared: true}
	if v, ok := ns.Annotations[AnnotationDeletionProtection]; ok && !strings.EqualFold(v, "false") {
		res.Protected = fmt.Sprintf("annotation %s=%s", AnnotationDeletionProtection, v)
	}
	if ns.DeletionTimestamp != nil {
		// Reported as a Problem, not HalfMade: the sweeper keeps what has a
		// Problem and says why, so a namespace already being deleted (by an
		// earlier sweep or down) is neither deleted again nor counted
		// against max_deletions, and one stuck terminating is shown with
		// what holds it, run after run.
		res.Problem = fmt.Sprintf("namespace is terminating since %s: %s", ns.DeletionTimestamp.UTC().Format(time.RFC3339), stuckReason(ns))
	}
	got, labelled := ns.Labels[LabelOwner]
	switch {
	case labelled && got == owner:
		k, problem := readRecord(ns)
		res.Key = k
		res.Labels = merge(prenvMeta(ns), record(ns, k))
		if k == (env.Key{}) {
			delete(res.Labels, env.LabelKey)
		}
		if res.Problem == "" {
			res.Problem = problem
		}
		return res, true
	case labelled:
		// Another installation's (or an unreadable owner label): foreign.
		res.Labels = prenvMeta(ns)
		return res, true
	case systemNamespaces[ns.Name]:
		return res, false
	case legacy.matches(ns):
		res.Labels, res.Legacy = ns.Labels, true
		return res, true
	case ours != nil && ours.MatchString(ns.Name):
		// Where prenv would make an environment, without its owner label:
		// foreign, shown so that nobody wonders why it is never swept.
		res.Labels = ns.Labels
		return res, true
	}
	return res, false
}

// prenvMeta is ns's labels and, since prenv keeps the key, repository and
// times there, its prenv.dev/ annotations.
func prenvMeta(ns *corev1.Namespace) map[string]string {
	out := merge(ns.Labels, nil)
	for k, v := range ns.Annotations {
		if strings.HasPrefix(k, "prenv.dev/") {
			out[k] = v
		}
	}
	return out
}

// readRecord reads the environment's key from a namespace carrying our
// owner label, and says what cannot be trusted in its record: a missing or
// unreadable key, a key whose name is not the namespace's environment
// label, a missing or unreadable created-at or expires-at. The sweeper
// keeps such a namespace (fail closed) and shows the reason.
func readRecord(ns *corev1.Namespace) (env.Key, string) {
	var problems []string
	raw, ok := ns.Annotations[AnnotationKey]
	k, err := env.ParseKey(raw)
	switch {
	case !ok:
		problems = append(problems, fmt.Sprintf("annotation %s is missing", AnnotationKey))
	case err != nil:
		problems = append(problems, fmt.Sprintf("annotation %s=%q is not an environment key (%v)", AnnotationKey, raw, err))
		k = env.Key{}
	case ns.Labels[LabelEnv] != k.Name():
		problems = append(problems, fmt.Sprintf("annotation %s=%q names environment %s but label %s=%q", AnnotationKey, raw, k.Name(), LabelEnv, ns.Labels[LabelEnv]))
		k = env.Key{}
	}
	for _, a := range []string{AnnotationCreatedAt, AnnotationExpiresAt} {
		v, ok := ns.Annotations[a]
		if !ok {
			problems = append(problems, fmt.Sprintf("annotation %s is missing", a))
		} else if _, err := time.Parse(time.RFC3339, v); err != nil {
			problems = append(problems, fmt.Sprintf("annotation %s=%q is not an RFC 3339 time", a, v))
		}
	}
	if len(problems) == 0 {
		return k, ""
	}
	return k, "prenv's record on the namespace cannot be read: " + strings.Join(problems, "; ") + "; fix or remove the annotations, or delete the namespace by hand"
}

// pattern is a regular expression matching every name NamespaceTemplate
// can render, or nil when the template cannot be read that way (a template
// that formats its fields): then only the owner label tells.
func (o Options) pattern() (*regexp.Regexp, error) {
	t, err := template.New("namespace").Option("missingkey=error").Parse(o.NamespaceTemplate)
	if err != nil {
		return nil, fmt.Errorf("runtime.kubernetes.namespace: %q: %v", o.NamespaceTemplate, err)
	}
	// Each field renders as a marker that no name contains, then becomes
	// what that field can be.
	const pr, name, repo = "\x00pr\x00", "\x00name\x00", "\x00repo\x00"
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ PR, Name, Repo string }{pr, name, repo}); err != nil {
		return nil, nil
	}
	re := strings.NewReplacer(
		regexp.QuoteMeta(pr), `[1-9][0-9]*`,
		regexp.QuoteMeta(name), `pr-[1-9][0-9]*(-[a-z0-9-]+)?`,
		regexp.QuoteMeta(repo), `[a-z0-9-]+`,
	).Replace(regexp.QuoteMeta(b.String()))
	if strings.Contains(re, "\x00") {
		return nil, nil
	}
	return regexp.Compile("^(?:" + re + ")$")
}

// legacyMatch is sweep.legacy as it applies to namespaces.
type legacyMatch struct {
	name   *regexp.Regexp
	labels map[string]string
}

// legacySelector compiles l for namespaces; nil selects nothing, and so do
// criteria that name neither a pattern nor labels (selecting every
// namespace is never what a team means).
func legacySelector(l *env.Legacy) (*legacyMatch, error) {
	if l == nil || l.NamePattern == "" && len(l.Labels) == 0 {
		return nil, nil
	}
	m := &legacyMatch{labels: l.Labels}
	if l.NamePattern != "" {
		re, err := regexp.Compile("^(?:" + l.NamePattern + ")$")
		if err != nil {
			return nil, fmt.Errorf("sweep.legacy.namespace_pattern: %q is not a regular expression (%v): write it in Go's syntax, for example preview-[0-9]+", l.NamePattern, err)
		}
		m.name = re
	}
	return m, nil
}

// matches reports whether ns is selected: no owner label, not a system
// namespace, its whole name matching the pattern, and every label carried.
func (m *legacyMatch) matches(ns *corev1.Namespace) bool {
	if m == nil || systemNamespaces[ns.Name] {
		return false
	}
	if _, ok := ns.Labels[LabelOwner]; ok {
		return false
	}
	if m.name != nil && !m.name.MatchString(ns.Name) {
		return false
	}
	for k, v := range m.labels {
		if got, ok := ns.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// releases is what Helm's storage says of each release: the statuses of
// its revisions, by namespace and release name.
type releases map[string]map[string][]string

// halfMade says why a namespace of ours whose release is name was left by
// an interrupted run: no release at all (prepared, never deployed), or
// revisions none of which is deployed (an install that failed or was
// killed, an uninstall that did not finish). "" when a revision serves.
func (rs releases) halfMade(ns, name string) string {
	statuses := rs[ns][name]
	if len(statuses) == 0 {
		return fmt.Sprintf("prepared but never deployed: no Helm release %s in the namespace", name)
	}
	counts := map[string]int{}
	for _, s := range statuses {
		if s == "deployed" {
			return ""
		}
		counts[s]++
	}
	var parts []string
	for s, c := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", c, s))
	}
	sort.Strings(parts)
	return fmt.Sprintf("prepared but never deployed: Helm release %s has no deployed revision (%s)", name, strings.Join(parts, ", "))
}

// helmReleases reads Helm's release records across the cluster in pages.
// Helm's secret storage driver (the one Releases uses) keeps each revision
// as a Secret labelled owner=helm, name, status and version; only their
// metadata is asked for, so the releases' manifests never cross the wire.
func helmReleases(ctx context.Context, n *Namespaces) (releases, error) {
	out := releases{}
	add := func(meta metav1.ObjectMeta) {
		if out[meta.Namespace] == nil {
			out[meta.Namespace] = map[string][]string{}
		}
		name := meta.Labels["name"]
		out[meta.Namespace][name] = append(out[meta.Namespace][name], meta.Labels["status"])
	}
	opts := metav1.ListOptions{LabelSelector: "owner=helm", Limit: n.limit()}
	rc, _ := n.Client.CoreV1().RESTClient().(*rest.RESTClient)
	for {
		var next string
		if rc != nil {
			var list metav1.PartialObjectMetadataList
			raw, err := rc.Get().Resource("secrets").VersionedParams(&opts, metav1.ParameterCodec).
				SetHeader("Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").DoRaw(ctx)
			if err == nil {
				err = json.Unmarshal(raw, &list)
			}
			if err != nil {
				return nil, helmError(err)
			}
			for _, s := range list.Items {
				add(s.ObjectMeta)
			}
			next = list.Continue
		} else {
			// A client without a REST client of its own (a fake): the
			// typed list.
			list, err := n.Client.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, opts)
			if err != nil {
				return nil, helmError(err)
			}
			for _, s := range list.Items {
				add(s.ObjectMeta)
			}
			next = list.Continue
		}
		if next == "" {
			return out, nil
		}
		opts.Continue = next
	}
}

func helmError(err error) error {
	return fmt.Errorf("read Helm's release records to tell half-made environments: %w", describe(err, "list", "secrets (all namespaces)"))
}

// Remove implements env.Inventory. It reads res's namespace again and
// deletes it only if it still is what res was planned as: ours and of the
// same environment (the Helm release is uninstalled first, as down does),
// or, for a legacy namespace, still without an owner label and still
// selected by q.Legacy (the namespace alone is deleted). Gone already is
// nil; not ours any more is an error wrapping env.ErrNotOurs; deletion
// protection is refused. The deletion is conditional on the namespace
// being unchanged since it was read.
func (r *Runtime) Remove(ctx context.Context, q env.Query, res env.Resource) error {
	n := r.Namespaces
	if res.Provider != ResourceProvider || res.Kind != ResourceKind {
		return fmt.Errorf("remove %s %s %s: the kubernetes runtime removes namespaces only: %w", res.Provider, res.Kind, res.ID, env.ErrNotOurs)
	}
	ns, err := n.Client.CoreV1().Namespaces().Get(ctx, res.ID, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return describe(err, "get", "namespaces")
	}
	pre := metav1.Preconditions{UID: &ns.UID, ResourceVersion: &ns.ResourceVersion}
	if res.Legacy {
		legacy, err := legacySelector(q.Legacy)
		if err != nil {
			return err
		}
		if !legacy.matches(ns) {
			return fmt.Errorf("namespace %s no longer matches sweep.legacy (name pattern, labels, no %s label): %w; it is left untouched", ns.Name, LabelOwner, env.ErrNotOurs)
		}
		if err := protected(ns); err != nil {
			return err
		}
		return n.remove(ctx, ns, pre)
	}
	owner := n.owner(q)
	if got := ns.Labels[LabelOwner]; got != owner {
		return fmt.Errorf("namespace %s carries %s=%q, not this installation's %q: %w; it is left untouched", ns.Name, LabelOwner, got, owner, env.ErrNotOurs)
	}
	k, problem := readRecord(ns)
	if k == (env.Key{}) {
		return fmt.Errorf("namespace %s: %s: %w; it is left untouched", ns.Name, problem, env.ErrNotOurs)
	}
	if res.Key != (env.Key{}) && k != res.Key {
		return fmt.Errorf("namespace %s now belongs to environment %s, not %s: %w; it is left untouched", ns.Name, k, res.Key, env.ErrNotOurs)
	}
	// An up on another machine (a CI runner) renews what it adopts: what
	// was renewed since the plan is in use, whatever the plan said.
	if planned, now := res.Labels[env.LabelExpiresAt], ns.Annotations[AnnotationExpiresAt]; planned != now {
		return fmt.Errorf("namespace %s was renewed since the plan (%s %s, planned with %q): an up is using it: %w; it is left untouched", ns.Name, AnnotationExpiresAt, now, planned, env.ErrNotOurs)
	}
	if err := protected(ns); err != nil {
		return err
	}
	return r.teardown(ctx, k, ns, pre)
}

// protected refuses a namespace with deletion protection.
func protected(ns *corev1.Namespace) error {
	if v, ok := ns.Annotations[AnnotationDeletionProtection]; ok && !strings.EqualFold(v, "false") {
		return fmt.Errorf("namespace %s has deletion protection (%s=%s): the sweeper never removes it; remove the annotation to let it, or delete the namespace yourself", ns.Name, AnnotationDeletionProtection, v)
	}
	return nil
}

// Renew implements env.Renewer: it moves the expires-at annotation of k's
// namespace (where prenv keeps the times: label values cannot hold them)
// to expiresAt, and changes nothing else. Nil if the namespace is gone; an
// error wrapping runtime.ErrNotOurs, and nothing changed, if it is not
// ours or belongs to another environment.
func (r *Runtime) Renew(ctx context.Context, k env.Key, expiresAt time.Time) error {
	return r.Namespaces.annotate(ctx, k, map[string]any{AnnotationExpiresAt: expiresAt.UTC().Format(time.RFC3339)}, false)
}

// annotate merges ann into k's namespace's annotations (a nil value
// removes one), ours only, nothing if it has none; with skipTerminating,
// nothing on a namespace being deleted either. The resourceVersion makes
// the patch apply only to the namespace just checked: one changed in
// between is read again.
func (n *Namespaces) annotate(ctx context.Context, k env.Key, ann map[string]any, skipTerminating bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		name, ns, err := n.existing(ctx, k)
		if err != nil || ns == nil || skipTerminating && ns.DeletionTimestamp != nil {
			return err
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": ns.ResourceVersion,
			"annotations":     ann,
		}})
		_, err = n.Client.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			return err
		case err != nil:
			return describe(err, "patch", "namespaces")
		}
		return nil
	})
}
