package kubernetes

import (
	"context"
	"net/url"
	"slices"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
)

var (
	_ env.Recorder           = (*Runtime)(nil)
	_ dbclone.PasswordKeeper = (*Runtime)(nil)
)

// maxAnnotation bounds what one status annotation holds: a URL longer than
// this is not kept on the namespace.
const maxAnnotation = 2048

// Record implements env.Recorder: s goes on k's namespace as annotations
// (prenv.dev/state, commit, url, updated-at and expires-at), so that
// 'prenv ls' on any machine with access to the cluster reads it. Nothing
// is written on a namespace that is not ours, or when k has none.
func (r *Runtime) Record(ctx context.Context, k env.Key, s env.Status) error {
	ann := map[string]any{}
	for name, v := range env.StatusLabels(s) {
		ann[name] = v
	}
	if u := s.URL; u == "" || !utf8.ValidString(u) || len(u) > maxAnnotation {
		ann[env.LabelURL] = nil // a merge patch's null removes an earlier URL
	}
	// A namespace being deleted has nothing left to describe.
	return r.Namespaces.annotate(ctx, k, ann, true)
}

// Find implements env.Recorder: k's namespace as Resources lists it, with
// one request.
func (r *Runtime) Find(ctx context.Context, q env.Query, k env.Key) ([]env.Resource, error) {
	n := r.Namespaces
	_, ns, err := n.existing(ctx, k)
	if err != nil || ns == nil {
		return nil, err
	}
	res, ok := n.resource(ns, n.owner(q), nil, nil)
	if !ok || res.Key != k {
		return nil, nil
	}
	return []env.Resource{res}, nil
}

// Password implements dbclone.PasswordKeeper: the database password held
// by k's database Secret (its password key, else the password of its url
// key), read back on a runner that does not keep it. "" when k has no such
// Secret, or the Secret is not prenv's for k.
func (r *Runtime) Password(ctx context.Context, k env.Key) (string, error) {
	n := r.Namespaces
	name, ns, err := n.existing(ctx, k)
	if err != nil || ns == nil {
		return "", err
	}
	secretName, err := n.Options.SecretName(k)
	if err != nil {
		return "", err
	}
	sec, err := n.Client.CoreV1().Secrets(name).Get(ctx, secretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", describe(err, "get", "secrets")
	}
	if n.ours("secret", sec, k) != nil || sec.Labels[LabelRole] != RoleDatabase {
		return "", nil
	}
	keys := n.Options.SecretKeys
	if len(keys) == 0 {
		keys = DefaultSecretKeys()
	}
	names := make([]string, 0, len(keys))
	for key := range keys {
		names = append(names, key)
	}
	slices.Sort(names) // one answer whatever the map's order
	for _, key := range names {
		if keys[key] == "password" && len(sec.Data[key]) > 0 {
			return string(sec.Data[key]), nil
		}
	}
	for _, key := range names {
		if keys[key] != "url" {
			continue
		}
		u, err := url.Parse(string(sec.Data[key]))
		if err != nil || u.User == nil {
			continue
		}
		if pw, ok := u.User.Password(); ok && pw != "" {
			return pw, nil
		}
	}
	return "", nil
}
