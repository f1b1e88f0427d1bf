package kubernetes

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"golang.org/x/crypto/bcrypt"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

// AuthSecretName is the Secret with an environment's basic-auth login, when
// prenv makes one.
const AuthSecretName = "prenv-basic-auth"

// BasicAuth asks prenv to make a basic-auth login per environment, for an
// ingress controller that enforces it (ingress-nginx's auth-type: basic and
// auth-secret, Traefik's BasicAuth middleware).
type BasicAuth struct {
	User string // default prenv
	// Password is shared by every environment; empty gives each
	// environment its own, generated once and kept.
	Password string
}

// authSecret is the basic-auth Secret of an environment: "auth" is the
// htpasswd line ingress-nginx reads, "users" the one Traefik reads, and
// "user" and "password" are for prenv status. cur, if ours, supplies the
// password to keep and a hash still valid for it.
func (a *BasicAuth) secret(meta metav1.ObjectMeta, cur *corev1.Secret) (*corev1.Secret, error) {
	user := a.User
	if user == "" {
		user = "prenv"
	}
	pw := a.Password
	if pw == "" && cur != nil {
		pw = string(cur.Data["password"])
	}
	if pw == "" {
		pw = rand.Text()
	}
	var line string
	if cur != nil && string(cur.Data["user"]) == user {
		if _, hash, ok := strings.Cut(string(cur.Data["auth"]), ":"); ok && bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil {
			line = string(cur.Data["auth"]) // the same login: no new salt, no rollout of the Ingress's auth
		}
	}
	if line == "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			return nil, err
		}
		line = user + ":" + string(hash)
	}
	return &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretTypeOpaque, StringData: map[string]string{
		"auth": line, "users": line, "user": user, "password": pw,
	}}, nil
}

// upsertAuth creates or updates the basic-auth Secret in namespace name.
func (n *Namespaces) upsertAuth(ctx context.Context, k env.Key, name string, meta metav1.ObjectMeta) error {
	c := n.Client.CoreV1().Secrets(name)
	cur, err := c.Get(ctx, AuthSecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err := n.Options.BasicAuth.secret(meta, nil)
		if err != nil {
			return err
		}
		_, err = c.Create(ctx, s, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if err := n.ours("secret", cur, k); err != nil {
		return err
	}
	s, err := n.Options.BasicAuth.secret(meta, cur)
	if err != nil {
		return err
	}
	cur.Data, cur.StringData = nil, s.StringData
	_, err = c.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// Login returns k's basic-auth login from its Secret; runtime.ErrNotFound
// when prenv makes none or the environment has none yet.
func (n *Namespaces) Login(ctx context.Context, k env.Key) (user, password string, err error) {
	if n.Options.BasicAuth == nil {
		return "", "", fmt.Errorf("runtime.kubernetes.basic_auth is off: %w", runtime.ErrNotFound)
	}
	name, err := n.Name(k)
	if err != nil {
		return "", "", err
	}
	s, err := n.Client.CoreV1().Secrets(name).Get(ctx, AuthSecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", fmt.Errorf("%s/%s: %w", name, AuthSecretName, runtime.ErrNotFound)
	}
	if err != nil {
		return "", "", describe(err, "get", "secrets")
	}
	if err := n.ours("secret", s, k); err != nil {
		return "", "", err
	}
	return string(s.Data["user"]), string(s.Data["password"]), nil
}
