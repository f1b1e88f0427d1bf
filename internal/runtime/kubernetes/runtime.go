package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/engine"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/prenv/prenv/internal/dbclone"
	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

var (
	_ runtime.Runtime       = (*Runtime)(nil)
	_ runtime.Checker       = (*Runtime)(nil)
	_ runtime.Authenticator = (*Runtime)(nil)
)

// Runtime runs each environment as a Helm release of the team's chart in a
// namespace of its own.
type Runtime struct {
	Namespaces *Namespaces
	Releases   *Releases
	// Chart is the path of the team's chart (a directory or a .tgz), the
	// name of a chart in ChartSource.Repo, or an oci:// reference.
	Chart string
	// ChartSource says how to fetch a remote chart (its Ref is Chart).
	ChartSource ChartSource
	// Values is a template of the release's values (YAML) with the fields
	// of ValuesData.
	Values string
	// URL is a template of the environment's address (for example
	// "https://pr-{{ .PR }}.staging.example.com"); empty leaves it unset.
	URL string
	// Migration is a template of the MigrationJob prenv runs before the
	// upgrade, for charts without a migration hook; empty runs none.
	Migration string

	charts chartCache
}

// ValuesData is what the values and URL templates can use.
type ValuesData struct {
	PR         int
	Name       string // pr-12
	Repo       string
	Namespace  string
	Release    string
	Commit     string
	SecretName string // the Secret with the database connection
	// AuthSecretName is the basic-auth Secret prenv makes
	// (runtime.kubernetes.basic_auth), empty when it makes none.
	AuthSecretName string
	Database       struct {
		Host, Name, User string
		Port             int
	}
}

func (r *Runtime) data(spec runtime.Spec) (ValuesData, error) {
	ns, err := r.Namespaces.Name(spec.Key)
	if err != nil {
		return ValuesData{}, err
	}
	secret, err := r.Namespaces.Options.SecretName(spec.Key)
	if err != nil {
		return ValuesData{}, fmt.Errorf("%v: %w", err, runtime.ErrInvalid)
	}
	d := ValuesData{PR: spec.Key.PR, Name: spec.Key.Name(), Repo: spec.Key.Repo, Namespace: ns, Release: releaseName(spec.Key),
		Commit: spec.Commit, SecretName: secret}
	if r.Namespaces.Options.BasicAuth != nil {
		d.AuthSecretName = AuthSecretName
	}
	d.Database.Host, d.Database.Name, d.Database.User, d.Database.Port = spec.Database.Host, spec.Database.DBName, spec.Database.User, spec.Database.Port
	return d, nil
}

// releaseName is the Helm release of k: Helm allows 53 characters.
func releaseName(k env.Key) string { return k.NameMax(53) }

func render(name, text string, data ValuesData) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("runtime.kubernetes.%s: %v: %w", name, err, runtime.ErrInvalid)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("runtime.kubernetes.%s: %v (fields: .PR .Name .Repo .Namespace .Release .Commit .SecretName .AuthSecretName .Database.Host .Database.Port .Database.Name .Database.User): %w", name, err, runtime.ErrInvalid)
	}
	return b.String(), nil
}

func (r *Runtime) values(spec runtime.Spec) (map[string]any, error) {
	d, err := r.data(spec)
	if err != nil {
		return nil, err
	}
	text, err := render("values", r.Values, d)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(text), &vals); err != nil {
		return nil, fmt.Errorf("runtime.kubernetes.values renders YAML that does not parse: %v: %w", err, runtime.ErrInvalid)
	}
	return vals, nil
}

// chart loads the team's chart, fetching it once per runtime when it is
// remote.
func (r *Runtime) chart() (*chart.Chart, error) {
	src := r.ChartSource
	src.Ref = r.Chart
	return r.charts.get(src)
}

// Check implements runtime.Checker: the chart loads, the templates render,
// and nothing foreign holds the namespace, before anything is created.
func (r *Runtime) Check(ctx context.Context, k env.Key) error {
	ch, err := r.chart()
	if err != nil {
		return err
	}
	if err := r.Namespaces.Options.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, runtime.ErrInvalid)
	}
	sample := runtime.Spec{Key: k, Name: k.Name(), Commit: "0000000", Database: dbclone.Database{Host: "db", Port: 5432, DBName: "app", User: "app"}}
	vals, err := r.values(sample)
	if err != nil {
		return err
	}
	if _, err := r.migrationJob(sample); err != nil {
		return err
	}
	if err := renders(ch, vals, releaseName(k)); err != nil {
		return err
	}
	return r.Namespaces.Check(ctx, k)
}

// Prepare implements runtime.Runtime.
func (r *Runtime) Prepare(ctx context.Context, spec runtime.Spec) error {
	return r.Namespaces.Prepare(ctx, spec)
}

// Deploy implements runtime.Runtime: upgrade --install of the chart.
func (r *Runtime) Deploy(ctx context.Context, spec runtime.Spec) (runtime.Release, error) {
	ch, err := r.chart()
	if err != nil {
		return runtime.Release{}, err
	}
	vals, err := r.values(spec)
	if err != nil {
		return runtime.Release{}, err
	}
	ns, _ := r.Namespaces.Name(spec.Key)
	rel, err := r.Releases.Deploy(ctx, ns, releaseName(spec.Key), ch, vals, spec.Commit)
	if err != nil {
		var de *DeployError
		if errors.As(err, &de) {
			// A failed pre-install/pre-upgrade hook is the migration gate
			// closing: the rollout never started.
			step := "deploy"
			if de.Migration {
				step = "migrate"
			}
			return runtime.Release{}, &runtime.StepError{Step: step, Err: de.Err, Output: de.Diagnosis, Migrated: de.Migrated}
		}
		return runtime.Release{}, &runtime.StepError{Step: "deploy", Err: err}
	}
	out := r.release(spec.Key, rel)
	out.Migrated = preHooksRun(rel)
	return out, nil
}

// MigratesInDeploy implements runtime.DeployMigrator: without a migration
// Job of prenv's (runtime.kubernetes.migration), the chart's
// pre-install/pre-upgrade hooks are the migration, if it has any.
func (r *Runtime) MigratesInDeploy(runtime.Spec) bool {
	return strings.TrimSpace(r.Migration) == ""
}

// preHooksRun is when the pre-install/pre-upgrade hook Jobs of rel ran
// (other kinds of hooks are not migrations): from the first one's start to
// the last one's completion; nil when none ran to completion.
func preHooksRun(rel *releasev1.Release) *runtime.Span {
	var s *runtime.Span
	if rel == nil {
		return nil
	}
	for _, h := range rel.Hooks {
		if h.Kind != "Job" {
			continue
		}
		pre := false
		for _, e := range h.Events {
			pre = pre || e == releasev1.HookPreInstall || e == releasev1.HookPreUpgrade
		}
		run := h.LastRun
		if !pre || run.StartedAt.IsZero() || run.CompletedAt.IsZero() {
			continue
		}
		if s == nil {
			s = &runtime.Span{Start: run.StartedAt, End: run.CompletedAt}
			continue
		}
		if run.StartedAt.Before(s.Start) {
			s.Start = run.StartedAt
		}
		if run.CompletedAt.After(s.End) {
			s.End = run.CompletedAt
		}
	}
	return s
}

// release is what serves k, from its deployed Helm revision.
func (r *Runtime) release(k env.Key, rel *releasev1.Release) runtime.Release {
	out := runtime.Release{Commit: rel.Labels[LabelCommit]}
	if r.URL != "" {
		d, _ := r.data(runtime.Spec{Key: k, Name: k.Name(), Commit: out.Commit})
		out.URL, _ = render("url", r.URL, d)
	}
	return out
}

// Current implements runtime.Runtime.
func (r *Runtime) Current(ctx context.Context, k env.Key) (runtime.Release, error) {
	ns, err := r.Namespaces.Name(k)
	if err != nil {
		return runtime.Release{}, err
	}
	rel, err := r.Releases.Current(ns, releaseName(k))
	if errors.Is(err, driver.ErrReleaseNotFound) || errors.Is(err, driver.ErrNoDeployedReleases) || err == nil && rel == nil {
		return runtime.Release{}, fmt.Errorf("%s: %w", releaseName(k), runtime.ErrNotFound)
	}
	if err != nil {
		return runtime.Release{}, err
	}
	return r.release(k, rel), nil
}

// Teardown implements runtime.Runtime: uninstall the release, then delete
// the namespace (bounded, reporting what holds it).
func (r *Runtime) Teardown(ctx context.Context, k env.Key) error {
	_, ns, err := r.Namespaces.existing(ctx, k)
	if err != nil || ns == nil {
		// Not ours is refused; gone means the release went with it (Helm
		// keeps a release's record in its namespace).
		return err
	}
	return r.teardown(ctx, k, ns, metav1.Preconditions{UID: &ns.UID})
}

// teardown removes k's environment from ns, a namespace its caller read
// and found ours: the Helm release first (its hooks and the objects it
// made outside the namespace), then the namespace (see Namespaces.remove
// for pre). Down and the sweeper both remove an environment this way.
func (r *Runtime) teardown(ctx context.Context, k env.Key, ns *corev1.Namespace, pre metav1.Preconditions) error {
	if err := r.Releases.Uninstall(ns.Name, releaseName(k)); err != nil {
		return fmt.Errorf("teardown %s: %w", ns.Name, err)
	}
	return r.Namespaces.remove(ctx, ns, pre)
}

// Login implements runtime.Authenticator: the basic-auth login prenv made
// for k (runtime.kubernetes.basic_auth).
func (r *Runtime) Login(ctx context.Context, k env.Key) (user, password string, err error) {
	return r.Namespaces.Login(ctx, k)
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	return r.Namespaces.List(ctx)
}

// renders reports whether the chart renders with vals, offline.
func renders(ch *chart.Chart, vals map[string]any, name string) error {
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: name, Namespace: name, IsInstall: true}, common.DefaultCapabilities)
	if err == nil {
		_, err = engine.Render(ch, rv)
	}
	if err != nil {
		return fmt.Errorf("the chart %s does not render with runtime.kubernetes.values: %v: %w", ch.Name(), err, runtime.ErrInvalid)
	}
	return nil
}
