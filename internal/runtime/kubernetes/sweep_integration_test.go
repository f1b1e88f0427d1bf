package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/testenv/kube"
)

// Each test sweeps for an owner id and a namespace template of its own, so
// that what other tests of the package leave in the shared cluster is
// foreign to it, or none of its business.

func sweepRuntime(c *kube.Cluster, owner, template string) *Runtime {
	o := DefaultOptions(owner)
	o.NamespaceTemplate, o.DeleteTimeout = template, 60*time.Second
	return &Runtime{
		Namespaces: &Namespaces{Client: c.Client, Options: o},
		Chart:      filepath.Join("..", "..", "..", "examples", "demo", "chart"), Values: suiteValues,
		Releases: &Releases{Kubeconfig: c.Kubeconfig, Client: c.Client, Timeout: 60 * time.Second},
	}
}

func sweepSpec(owner string, k env.Key, commit string) runtime.Spec {
	return runtime.Spec{Key: k, Name: k.Name(), Commit: commit, Labels: env.Labels(owner, k, time.Now(), time.Hour),
		Database: dbclone.Database{URL: "postgres://app:pw@db:5432/app", Host: "db", Port: 5432, DBName: "app", User: "app", Password: "pw"}}
}

// prepare makes k's namespace as up does before it deploys, and removes it
// after the test.
func prepare(t *testing.T, rt *Runtime, k env.Key) string {
	t.Helper()
	ctx := context.Background()
	if err := rt.Prepare(ctx, sweepSpec(rt.Namespaces.Options.Owner, k, "c1")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Teardown(ctx, k) })
	name, _ := rt.Namespaces.Name(k)
	return name
}

// makeNamespace makes a namespace the way a person or a script would, and
// deletes it after the test.
func makeNamespace(t *testing.T, c *kube.Cluster, name string, labels, annotations map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}) })
}

// ourLabels and ourAnnotations are what prenv writes on an environment's
// namespace (see Namespaces.meta), for namespaces a test makes directly.
func ourLabels(owner string, k env.Key) map[string]string {
	return map[string]string{LabelOwner: owner, LabelEnv: k.Name(), LabelPR: fmt.Sprint(k.PR), LabelEphemeral: "true"}
}

func ourAnnotations(k env.Key, created, expires time.Time) map[string]string {
	return map[string]string{AnnotationKey: k.String(), AnnotationRepo: k.Repo,
		AnnotationCreatedAt: created.UTC().Format(time.RFC3339), AnnotationExpiresAt: expires.UTC().Format(time.RFC3339)}
}

func resources(t *testing.T, rt *Runtime, q env.Query) map[string]env.Resource {
	t.Helper()
	list, err := rt.Resources(context.Background(), q)
	if err != nil {
		t.Fatalf("Resources: %v", err)
	}
	out := map[string]env.Resource{}
	for _, r := range list {
		if _, dup := out[r.ID]; dup {
			t.Fatalf("namespace %s listed twice", r.ID)
		}
		out[r.ID] = r
	}
	return out
}

// exists reads a namespace from the API server, not through prenv: nil
// when it is gone.
func exists(t *testing.T, c *kube.Cluster, name string) *corev1.Namespace {
	t.Helper()
	ns, err := c.Client.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// untouched fails the test unless the namespace is still there and not
// being deleted.
func untouched(t *testing.T, c *kube.Cluster, name string) {
	t.Helper()
	if ns := exists(t, c, name); ns == nil || ns.DeletionTimestamp != nil {
		t.Fatalf("namespace %s was deleted: %+v", name, ns)
	}
}

var legacyScript = &env.Legacy{NamePattern: `preview-[0-9]+`, Labels: map[string]string{"ephemeral": "true"}, OlderThan: 48 * time.Hour}

func TestResources_ListsOursForeignAndLegacyNamespaces(t *testing.T) {
	c := need(t)
	rt := sweepRuntime(c, "sweep-a", "swa-{{ .PR }}")
	ours := env.Key{Repo: "acme/shop", PR: 1}
	before := time.Now().Add(-time.Second)
	prepare(t, rt, ours)
	makeNamespace(t, c, "swa-2", nil, nil)                                                     // where prenv's would be, no owner
	makeNamespace(t, c, "swa-other-owner", map[string]string{LabelOwner: "someone-else"}, nil) // another installation's
	makeNamespace(t, c, "preview-123", map[string]string{"ephemeral": "true"}, nil)            // the seed's script made it
	makeNamespace(t, c, "preview-124", nil, nil)                                               // the script's name, not its label
	makeNamespace(t, c, "xpreview-125", map[string]string{"ephemeral": "true"}, nil)           // the pattern matches in full only
	makeNamespace(t, c, "swa-unrelated", map[string]string{"team": "data"}, nil)

	got := resources(t, rt, env.Query{Owner: "sweep-a", Legacy: legacyScript, Now: time.Now()})

	r, ok := got["swa-1"]
	if !ok {
		t.Fatalf("our namespace swa-1 is not listed: %v", got)
	}
	if r.Provider != "kubernetes" || r.Kind != "namespace" || r.Owner() != "sweep-a" || r.Key != ours || r.Legacy || r.Problem != "" {
		t.Fatalf("our namespace as listed: %+v", r)
	}
	if r.CreatedAt.Before(before) || r.CreatedAt.After(time.Now()) {
		t.Fatalf("created at %v, want about now", r.CreatedAt)
	}
	expires, err := time.Parse(time.RFC3339, r.Labels[env.LabelExpiresAt])
	if err != nil || expires.Before(time.Now().Add(50*time.Minute)) || r.Labels[env.LabelKey] != "acme/shop#1" {
		t.Fatalf("labels of our namespace %v (expires-at: %v)", r.Labels, err)
	}
	for _, id := range []string{"swa-2", "swa-other-owner"} {
		f, ok := got[id]
		if !ok || f.Owner() == "sweep-a" || f.Legacy {
			t.Errorf("%s should be listed as foreign: %+v (listed %v)", id, f, ok)
		}
	}
	if got["swa-other-owner"].Owner() != "someone-else" {
		t.Errorf("the other installation's owner id is not shown: %v", got["swa-other-owner"].Labels)
	}
	if l, ok := got["preview-123"]; !ok || !l.Legacy || l.Owner() != "" || l.Labels["ephemeral"] != "true" {
		t.Errorf("preview-123 should be legacy: %+v (listed %v)", l, ok)
	}
	for _, id := range []string{"preview-124", "xpreview-125", "swa-unrelated", "kube-system", "default"} {
		if r, ok := got[id]; ok {
			t.Errorf("%s is none of the sweeper's business but is listed: %+v", id, r)
		}
	}

	// Without sweep.legacy, the script's namespace is not listed at all.
	if _, ok := resources(t, rt, env.Query{Owner: "sweep-a"})["preview-123"]; ok {
		t.Error("preview-123 listed without sweep.legacy")
	}
	// A bad pattern is an error naming it, not an empty selection.
	_, err = rt.Resources(context.Background(), env.Query{Owner: "sweep-a", Legacy: &env.Legacy{NamePattern: "preview-(["}})
	if err == nil || !strings.Contains(err.Error(), "sweep.legacy.namespace_pattern") || !strings.Contains(err.Error(), "preview-([") {
		t.Fatalf("Resources with a bad legacy pattern = %v", err)
	}
}

func TestResources_APreparedButNeverDeployedNamespaceIsHalfMade(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-b", "swb-{{ .PR }}")
	deployed, prepared, failed := env.Key{PR: 1}, env.Key{PR: 2}, env.Key{PR: 3}
	for _, k := range []env.Key{deployed, prepared, failed} {
		prepare(t, rt, k)
	}
	if _, err := rt.Deploy(ctx, sweepSpec("sweep-b", deployed, "c1")); err != nil {
		t.Fatal(err)
	}
	// The first install's migration hook fails: nothing was ever deployed.
	if _, err := rt.Deploy(ctx, sweepSpec("sweep-b", failed, "bad-migration")); err == nil {
		t.Fatal("a failing migration hook deployed")
	}

	got := resources(t, rt, env.Query{Owner: "sweep-b"})
	if r := got["swb-1"]; r.HalfMade != "" || r.Problem != "" {
		t.Errorf("a deployed environment is seen as half-made: %+v", r)
	}
	if r := got["swb-2"]; !strings.Contains(r.HalfMade, "prepared but never deployed") || !strings.Contains(r.HalfMade, "no Helm release pr-2") {
		t.Errorf("a prepared, never deployed environment: half-made %q", r.HalfMade)
	}
	if r := got["swb-3"]; !strings.Contains(r.HalfMade, "no deployed revision (1 failed)") {
		t.Errorf("an environment whose first install failed: half-made %q", r.HalfMade)
	}
}

func TestResources_AnUnreadableRecordIsAProblemAndIsNeverRemoved(t *testing.T) {
	c := need(t)
	rt := sweepRuntime(c, "sweep-c", "swc-{{ .PR }}")
	now := time.Now()
	k := func(pr int) env.Key { return env.Key{PR: pr} }
	noKey := ourAnnotations(k(1), now, now.Add(time.Hour))
	delete(noKey, AnnotationKey)
	badExpiry := ourAnnotations(k(2), now, now.Add(time.Hour))
	badExpiry[AnnotationExpiresAt] = "tomorrow"
	noCreated := ourAnnotations(k(3), now, now.Add(time.Hour))
	delete(noCreated, AnnotationCreatedAt)
	makeNamespace(t, c, "swc-1", ourLabels("sweep-c", k(1)), noKey)
	makeNamespace(t, c, "swc-2", ourLabels("sweep-c", k(2)), badExpiry)
	makeNamespace(t, c, "swc-3", ourLabels("sweep-c", k(3)), noCreated)
	makeNamespace(t, c, "swc-4", ourLabels("sweep-c", k(5)), ourAnnotations(k(4), now, now.Add(time.Hour))) // key and label disagree

	q := env.Query{Owner: "sweep-c", Now: now}
	got := resources(t, rt, q)
	for id, want := range map[string]string{
		"swc-1": AnnotationKey + " is missing",
		"swc-2": AnnotationExpiresAt + `="tomorrow" is not an RFC 3339 time`,
		"swc-3": AnnotationCreatedAt + " is missing",
		"swc-4": "names environment pr-4 but label " + LabelEnv + `="pr-5"`,
	} {
		r := got[id]
		if !strings.Contains(r.Problem, want) || r.HalfMade != "" {
			t.Errorf("%s: problem %q, want it to say %q", id, r.Problem, want)
		}
	}
	if got["swc-1"].Key != (env.Key{}) || got["swc-4"].Key != (env.Key{}) {
		t.Errorf("a key was guessed: %v, %v", got["swc-1"].Key, got["swc-4"].Key)
	}
	// Remove fails closed where the environment cannot be read.
	for _, id := range []string{"swc-1", "swc-4"} {
		if err := rt.Remove(context.Background(), q, got[id]); !errors.Is(err, env.ErrNotOurs) {
			t.Errorf("Remove %s = %v, want ErrNotOurs", id, err)
		}
		untouched(t, c, id)
	}
}

func TestResources_ATerminatingNamespaceIsReportedWithWhatHoldsIt(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-d", "swd-{{ .PR }}")
	name := prepare(t, rt, env.Key{PR: 1})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	if _, err := c.Client.CoreV1().ConfigMaps(name).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cur, err := c.Client.CoreV1().ConfigMaps(name).Get(ctx, "held", metav1.GetOptions{}); err == nil {
			cur.Finalizers = nil
			c.Client.CoreV1().ConfigMaps(name).Update(ctx, cur, metav1.UpdateOptions{})
		}
	})
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace controller reports what holds it.
	var r env.Resource
	waitFor(t, 30*time.Second, func() bool {
		r = resources(t, rt, env.Query{Owner: "sweep-d"})[name]
		return strings.Contains(r.Problem, "example.com/hold")
	})
	if !strings.Contains(r.Problem, "terminating since") || r.HalfMade != "" {
		t.Fatalf("a terminating namespace: problem %q, half-made %q", r.Problem, r.HalfMade)
	}
}

// countingClient is a client whose every HTTP request to the API server is
// counted.
func countingClient(t *testing.T, c *kube.Cluster) (kubernetes.Interface, *atomic.Int64) {
	var n atomic.Int64
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) { n.Add(1); return rt.RoundTrip(r) })
	})
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, &n
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestResources_CostsAFewPagedListsNotARequestPerNamespace(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	const envs, page = 200, 50
	// Namespaces as prenv labels them, half of them with a deployed
	// release record as Helm's storage keeps it; made directly, since
	// installing 200 charts would measure Helm, not the sweep.
	now := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pr := range work {
				k := env.Key{PR: pr}
				name := fmt.Sprintf("swe-%d", pr)
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ourLabels("sweep-e", k), Annotations: ourAnnotations(k, now, now.Add(time.Hour))}}
				_, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
				if err == nil && pr%2 == 0 {
					s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + k.Name() + ".v1",
						Labels: map[string]string{"owner": "helm", "name": k.Name(), "status": "deployed", "version": "1"}}}
					_, err = c.Client.CoreV1().Secrets(name).Create(ctx, s, metav1.CreateOptions{})
				}
				if err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for pr := 1; pr <= envs; pr++ {
		work <- pr
	}
	close(work)
	wg.Wait()
	t.Cleanup(func() {
		for pr := 1; pr <= envs; pr++ {
			c.Client.CoreV1().Namespaces().Delete(ctx, fmt.Sprintf("swe-%d", pr), metav1.DeleteOptions{})
		}
	})
	if err := failed.Load(); err != nil {
		t.Fatal(err)
	}

	// What one page at a time costs: namespaces being deleted by earlier
	// tests may go while the sweep lists, so it is counted before and after.
	pages := func() int64 {
		all, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		records, err := c.Client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
		if err != nil {
			t.Fatal(err)
		}
		return int64((len(all.Items)+page-1)/page + (len(records.Items)+page-1)/page)
	}
	client, count := countingClient(t, c)
	rt := sweepRuntime(c, "sweep-e", "swe-{{ .PR }}")
	rt.Namespaces.Client, rt.Namespaces.page = client, page
	most := pages()
	list, err := rt.Resources(ctx, env.Query{Owner: "sweep-e", Now: now})
	requests := count.Load()
	least := pages()
	if err != nil {
		t.Fatal(err)
	}
	ours, half := 0, 0
	for _, r := range list {
		if r.Owner() == "sweep-e" {
			ours++
			if r.HalfMade != "" {
				half++
			}
		}
	}
	if ours != envs || half != envs/2 {
		t.Fatalf("listed %d of our %d namespaces, %d half-made (want %d)", ours, envs, half, envs/2)
	}
	t.Logf("%d environments: %d requests in pages of %d", envs, requests, page)
	if requests < least || requests > most {
		t.Fatalf("Resources made %d requests; a paged list of the namespaces and one of Helm's release records is %d to %d pages of %d", requests, least, most, page)
	}
}

func TestRemove_DeletesOurNamespaceAndItsRelease(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-f", "swf-{{ .PR }}")
	k := env.Key{Repo: "acme/shop", PR: 1}
	name := prepare(t, rt, k)
	if _, err := rt.Deploy(ctx, sweepSpec("sweep-f", k, "c1")); err != nil {
		t.Fatal(err)
	}
	q := env.Query{Owner: "sweep-f", Now: time.Now()}
	r, ok := resources(t, rt, q)[name]
	if !ok || r.HalfMade != "" {
		t.Fatalf("the deployed environment as listed: %+v (listed %v)", r, ok)
	}
	if err := rt.Remove(ctx, q, r); err != nil {
		t.Fatal(err)
	}
	// Gone according to the API server, not to prenv: Remove waits for the
	// namespace controller to finish.
	if ns := exists(t, c, name); ns != nil {
		t.Fatalf("namespace %s still exists after Remove (terminating: %v)", name, ns.DeletionTimestamp != nil)
	}
	// Helm's record went with it, so a new up installs afresh.
	records, err := c.Client.CoreV1().Secrets(name).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil || len(records.Items) != 0 {
		t.Fatalf("Helm's release records left: %v, %v", records, err)
	}
	if _, ok := resources(t, rt, q)[name]; ok {
		t.Fatal("a removed namespace is still listed")
	}
}

func TestRemove_DeletesALegacyNamespaceAndNothingElse(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-g", "swg-{{ .PR }}")
	makeNamespace(t, c, "preview-200", map[string]string{"ephemeral": "true"}, nil)
	makeNamespace(t, c, "preview-201", map[string]string{"ephemeral": "true"}, nil)
	q := env.Query{Owner: "sweep-g", Legacy: legacyScript, Now: time.Now()}
	got := resources(t, rt, q)
	if !got["preview-200"].Legacy {
		t.Fatalf("preview-200 is not listed as legacy: %+v", got["preview-200"])
	}
	if err := rt.Remove(ctx, q, got["preview-200"]); err != nil {
		t.Fatal(err)
	}
	if exists(t, c, "preview-200") != nil {
		t.Fatal("the legacy namespace is still there after Remove")
	}
	untouched(t, c, "preview-201")
}

func TestRemove_RefusesWhatIsNotOursAndLeavesIt(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-h", "swh-{{ .PR }}")
	now := time.Now()
	makeNamespace(t, c, "swh-1", nil, nil)
	makeNamespace(t, c, "swh-2", ourLabels("someone-else", env.Key{PR: 2}), ourAnnotations(env.Key{PR: 2}, now, now.Add(time.Hour)))
	protectedName := prepare(t, rt, env.Key{PR: 3})
	if _, err := c.Client.CoreV1().Namespaces().Patch(ctx, protectedName, "application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"`+AnnotationDeletionProtection+`":"true"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	relabelled := prepare(t, rt, env.Key{PR: 4})
	t.Cleanup(func() { c.Client.CoreV1().Namespaces().Delete(ctx, relabelled, metav1.DeleteOptions{}) }) // not ours by then
	makeNamespace(t, c, "preview-300", map[string]string{"ephemeral": "true"}, nil)
	makeNamespace(t, c, "preview-301", map[string]string{"ephemeral": "true"}, nil)

	q := env.Query{Owner: "sweep-h", Legacy: legacyScript, Now: now}
	got := resources(t, rt, q)
	if p := got[protectedName].Protected; !strings.Contains(p, AnnotationDeletionProtection) {
		t.Fatalf("the protected namespace is listed without its protection: %q", p)
	}
	// What changed between the plan and the deletion: our namespace taken
	// over by another installation, the script's namespaces relabelled or
	// adopted.
	patch := func(name, p string) {
		if _, err := c.Client.CoreV1().Namespaces().Patch(ctx, name, "application/merge-patch+json", []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch(relabelled, `{"metadata":{"labels":{"`+LabelOwner+`":"someone-else"}}}`)
	patch("preview-300", `{"metadata":{"labels":{"ephemeral":null}}}`)
	patch("preview-301", `{"metadata":{"labels":{"`+LabelOwner+`":"sweep-h"}}}`)

	for _, id := range []string{"swh-1", "swh-2", relabelled, "preview-300", "preview-301"} {
		r, ok := got[id]
		if !ok {
			t.Fatalf("%s is not listed", id)
		}
		if err := rt.Remove(ctx, q, r); !errors.Is(err, env.ErrNotOurs) {
			t.Errorf("Remove %s = %v, want ErrNotOurs", id, err)
		}
		untouched(t, c, id)
	}
	err := rt.Remove(ctx, q, got[protectedName])
	if err == nil || !strings.Contains(err.Error(), "deletion protection") {
		t.Errorf("Remove of a protected namespace = %v", err)
	}
	untouched(t, c, protectedName)
	// A foreign namespace planned as if it were ours is still refused: the
	// namespace is read again, not the plan trusted.
	forged := got["swh-2"]
	forged.Labels = map[string]string{LabelOwner: "sweep-h"}
	forged.Key = env.Key{PR: 2}
	if err := rt.Remove(ctx, q, forged); !errors.Is(err, env.ErrNotOurs) {
		t.Errorf("Remove of another owner's namespace planned as ours = %v", err)
	}
	untouched(t, c, "swh-2")
}

func TestRemove_ANamespaceDeletedOutOfBandIsNotAnError(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-i", "swi-{{ .PR }}")
	k := env.Key{PR: 1}
	name := prepare(t, rt, k)
	q := env.Query{Owner: "sweep-i", Now: time.Now()}
	r := resources(t, rt, q)[name]
	if err := c.Client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, func() bool { return exists(t, c, name) == nil })
	if err := rt.Remove(ctx, q, r); err != nil {
		t.Fatalf("Remove of a namespace already gone = %v", err)
	}
	if err := rt.Renew(ctx, k, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Renew of an environment already gone = %v", err)
	}
}

func TestRenew_MovesExpiresAtOfOursOnly(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	rt := sweepRuntime(c, "sweep-j", "swj-{{ .PR }}")
	k := env.Key{Repo: "acme/shop", PR: 1}
	name := prepare(t, rt, k)
	before := exists(t, c, name)
	later := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	if err := rt.Renew(ctx, k, later); err != nil {
		t.Fatal(err)
	}
	after := exists(t, c, name)
	if got := after.Annotations[AnnotationExpiresAt]; got != later.UTC().Format(time.RFC3339) {
		t.Fatalf("expires-at %q after Renew to %v", got, later)
	}
	if after.Annotations[AnnotationCreatedAt] != before.Annotations[AnnotationCreatedAt] || after.Labels[LabelOwner] != "sweep-j" {
		t.Fatalf("Renew changed more than expires-at: %v → %v", before.Annotations, after.Annotations)
	}
	r := resources(t, rt, env.Query{Owner: "sweep-j"})[name]
	if r.Labels[env.LabelExpiresAt] != later.UTC().Format(time.RFC3339) || r.Problem != "" {
		t.Fatalf("the sweeper sees expires-at %q (problem %q)", r.Labels[env.LabelExpiresAt], r.Problem)
	}

	// Where the environment's namespace would be, a namespace that is not
	// its own: without an owner, another installation's, another
	// environment's.
	now := time.Now()
	makeNamespace(t, c, "swj-2", nil, nil)
	makeNamespace(t, c, "swj-3", ourLabels("someone-else", env.Key{PR: 3}), ourAnnotations(env.Key{PR: 3}, now, now.Add(time.Hour)))
	makeNamespace(t, c, "swj-4", ourLabels("sweep-j", env.Key{PR: 5}), ourAnnotations(env.Key{PR: 5}, now, now.Add(time.Hour)))
	for pr, name := range map[int]string{2: "swj-2", 3: "swj-3", 4: "swj-4"} {
		was := exists(t, c, name).Annotations[AnnotationExpiresAt]
		if err := rt.Renew(ctx, env.Key{PR: pr}, later); !errors.Is(err, runtime.ErrNotOurs) {
			t.Errorf("Renew of %s = %v, want ErrNotOurs", name, err)
		}
		if got := exists(t, c, name).Annotations[AnnotationExpiresAt]; got != was {
			t.Errorf("Renew changed %s's expires-at to %q", name, got)
		}
	}
}
