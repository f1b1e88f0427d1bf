package kubernetes

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"golang.org/x/crypto/bcrypt"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
	"github.com/prenv/prenv/internal/testenv/kube"
)

var cluster *kube.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if !testing.Short() {
			ctx := context.Background()
			root, _ := filepath.Abs("../../..")
			bin, err := kube.Binaries(ctx, root)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			dir, _ := os.MkdirTemp("", "prenv-kube-")
			defer os.RemoveAll(dir)
			defer kube.Stop(dir)
			if cluster, err = kube.Start(ctx, dir, bin); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}

func need(t *testing.T) *kube.Cluster {
	if cluster == nil {
		t.Skip("needs the test control plane; runs without -short")
	}
	return cluster
}

func spec(k env.Key, password string) runtime.Spec {
	return runtime.Spec{Key: k, Name: k.Name(), Commit: "abc", Labels: env.Labels("prenv", k, time.Now(), time.Hour),
		Database: dbclone.Database{URL: "postgres://app:" + password + "@db.internal:5432/app", Host: "db.internal", Port: 5432, DBName: "app", User: "app", Password: password}}
}

func namespaces(c *kube.Cluster) *Namespaces {
	o := DefaultOptions("prenv")
	o.DeleteTimeout = 60 * time.Second
	return &Namespaces{Client: c.Client, Options: o}
}

func TestPrepare_MakesANamespaceWithQuotaLimitsPolicyAndSecret(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	k := env.Key{Repo: "acme/shop", PR: 11}
	if err := n.Prepare(ctx, spec(k, "first")); err != nil {
		t.Fatal(err)
	}
	name, _ := n.Name(k)
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if name != "pr-11" || ns.Labels[LabelOwner] != "prenv" || ns.Labels[LabelPR] != "11" || ns.Annotations[AnnotationKey] != "acme/shop#11" ||
		ns.Annotations[AnnotationExpiresAt] == "" || ns.Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
		t.Fatalf("namespace %s: labels %v annotations %v", name, ns.Labels, ns.Annotations)
	}
	q, err := c.Client.CoreV1().ResourceQuotas(name).Get(ctx, QuotaName, metav1.GetOptions{})
	if err != nil || q.Spec.Hard.Name("requests.memory", "").String() != "2Gi" || q.Labels[LabelOwner] != "prenv" {
		t.Fatalf("quota %+v, %v", q, err)
	}
	p, err := c.Client.NetworkingV1().NetworkPolicies(name).Get(ctx, PolicyName, metav1.GetOptions{})
	if err != nil || len(p.Spec.Ingress) != 1 || len(p.Spec.Ingress[0].From) != 2 ||
		p.Spec.Ingress[0].From[1].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "ingress-nginx" {
		t.Fatalf("policy %+v, %v", p, err)
	}
	s, err := c.Client.CoreV1().Secrets(name).Get(ctx, SecretName, metav1.GetOptions{})
	if err != nil || !strings.Contains(string(s.Data["DATABASE_URL"]), "first@db.internal") || string(s.Data["port"]) != "5432" {
		t.Fatalf("secret %v, %v", s.Data, err)
	}
	// A pod that declares no resources gets the LimitRange's defaults and
	// is admitted under the quota.
	waitFor(t, 30*time.Second, func() bool {
		_, err := c.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
	pod, err := c.Client.CoreV1().Pods(name).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a pod without requests was refused: %v", err)
	}
	if got := pod.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "100m" {
		t.Fatalf("defaulted cpu request %s, want 100m", got)
	}
	// Preparing again adopts, and a new password reaches the Secret.
	if err := n.Prepare(ctx, spec(k, "second")); err != nil {
		t.Fatal(err)
	}
	s, _ = c.Client.CoreV1().Secrets(name).Get(ctx, SecretName, metav1.GetOptions{})
	if !strings.Contains(string(s.Data["url"]), "second@") {
		t.Fatalf("secret not updated: %s", s.Data["url"])
	}
	list, err := n.List(ctx)
	if err != nil || len(list) != 1 || list[0].Key != k || list[0].Name != "pr-11" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for i := 0; i < 2; i++ {
		if err := n.Teardown(ctx, k); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	if list, _ := n.List(ctx); len(list) != 0 {
		t.Fatalf("List after teardown = %v", list)
	}
}

func TestPrepare_PodSecurityAdmissionEnforcesTheConfiguredLevel(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	n.Options.PodSecurity = "restricted"
	k := env.Key{PR: 12}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Teardown(ctx, k) })
	yes := true
	_, err := c.Client.CoreV1().Pods("pr-12").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "privileged"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}}}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity \"restricted") {
		t.Fatalf("a privileged pod in a restricted namespace: %v", err)
	}
}

func TestNamespaces_ANamespaceNotOursIsRefusedAndKept(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "pr-13"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Client.CoreV1().Namespaces().Delete(ctx, "pr-13", metav1.DeleteOptions{}) })
	k := env.Key{PR: 13}
	for name, err := range map[string]error{"Check": n.Check(ctx, k), "Prepare": n.Prepare(ctx, spec(k, "pw")), "Teardown": n.Teardown(ctx, k)} {
		if !errors.Is(err, runtime.ErrNotOurs) {
			t.Errorf("%s = %v, want ErrNotOurs", name, err)
		}
	}
	ns, err := c.Client.CoreV1().Namespaces().Get(ctx, "pr-13", metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("the namespace not ours was touched: %v %v", ns.DeletionTimestamp, err)
	}
	if _, err := c.Client.CoreV1().ResourceQuotas("pr-13").Get(ctx, QuotaName, metav1.GetOptions{}); err == nil {
		t.Fatal("a quota was created in a namespace not ours")
	}
}

func TestTeardown_ANamespaceHeldByAFinalizerIsReportedNotForced(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	n.Options.DeleteTimeout = 20 * time.Second
	k := env.Key{PR: 14}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}
	if _, err := c.Client.CoreV1().ConfigMaps("pr-14").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur, err := c.Client.CoreV1().ConfigMaps("pr-14").Get(ctx, "held", metav1.GetOptions{})
		if err == nil {
			cur.Finalizers = nil
			c.Client.CoreV1().ConfigMaps("pr-14").Update(ctx, cur, metav1.UpdateOptions{})
		}
	})
	err := n.Teardown(ctx, k)
	if err == nil || !strings.Contains(err.Error(), "still terminating") || !strings.Contains(err.Error(), "example.com/hold") {
		t.Fatalf("Teardown of a held namespace = %v, want the finalizer named", err)
	}
	if testing.Verbose() {
		t.Logf("down says: %v", err)
	}
	cur, err := c.Client.CoreV1().ConfigMaps("pr-14").Get(ctx, "held", metav1.GetOptions{})
	if err != nil || len(cur.Finalizers) != 1 {
		t.Fatalf("the finalizer was stripped: %+v %v", cur, err)
	}
	if err := n.Check(ctx, k); err == nil || !strings.Contains(err.Error(), "still terminating") {
		t.Fatalf("Check of a terminating namespace = %v", err)
	}
}

func TestNamespaces_MissingPermissionsNameTheVerbAndResource(t *testing.T) {
	c := need(t)
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &Namespaces{Client: client, Options: DefaultOptions("prenv")}
	err = n.Prepare(context.Background(), spec(env.Key{PR: 15}, "pw"))
	if err == nil || !strings.Contains(err.Error(), "refused to get namespaces") || !strings.Contains(err.Error(), "Role") {
		t.Fatalf("Prepare without permissions = %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPrepare_MakesABasicAuthLoginTheIngressControllerCanCheck(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	n.Options.BasicAuth = &BasicAuth{}
	k := env.Key{PR: 16}
	t.Cleanup(func() { n.Teardown(ctx, k) })
	if _, _, err := n.Login(ctx, k); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("Login before Prepare = %v", err)
	}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	get := func() *corev1.Secret {
		s, err := c.Client.CoreV1().Secrets("pr-16").Get(ctx, AuthSecretName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := get()
	user, pw, err := n.Login(ctx, k)
	if err != nil || user != "prenv" || len(pw) < 20 || s.Labels[LabelOwner] != "prenv" {
		t.Fatalf("login %q %q %v, labels %v", user, pw, err, s.Labels)
	}
	// The htpasswd line ingress-nginx (auth) and Traefik (users) read.
	name, hash, _ := strings.Cut(string(s.Data["auth"]), ":")
	if name != "prenv" || bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) != nil || string(s.Data["users"]) != string(s.Data["auth"]) {
		t.Fatalf("auth %q does not check the password", s.Data["auth"])
	}
	// The next up keeps the login (and its hash: no needless change).
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	if again := get(); string(again.Data["password"]) != pw || string(again.Data["auth"]) != string(s.Data["auth"]) {
		t.Fatalf("a second Prepare changed the login")
	}
	// A configured password replaces the generated one.
	n.Options.BasicAuth = &BasicAuth{User: "review", Password: "shared-secret"}
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	s = get()
	name, hash, _ = strings.Cut(string(s.Data["auth"]), ":")
	if name != "review" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("shared-secret")) != nil {
		t.Fatalf("auth after configuring a password: %q", s.Data["auth"])
	}
}

func TestPrepare_RefusesABasicAuthSecretThatIsNotOurs(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	n := namespaces(c)
	k := env.Key{PR: 17}
	t.Cleanup(func() { n.Teardown(ctx, k) })
	if err := n.Prepare(ctx, spec(k, "pw")); err != nil {
		t.Fatal(err)
	}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: AuthSecretName}, StringData: map[string]string{"auth": "someone:x"}}
	if _, err := c.Client.CoreV1().Secrets("pr-17").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Options.BasicAuth = &BasicAuth{}
	if err := n.Prepare(ctx, spec(k, "pw")); !errors.Is(err, runtime.ErrNotOurs) {
		t.Fatalf("Prepare over a foreign basic-auth Secret = %v", err)
	}
	s, _ := c.Client.CoreV1().Secrets("pr-17").Get(ctx, AuthSecretName, metav1.GetOptions{})
	if string(s.Data["auth"]) != "someone:x" {
		t.Fatalf("the foreign Secret was changed: %q", s.Data["auth"])
	}
}
