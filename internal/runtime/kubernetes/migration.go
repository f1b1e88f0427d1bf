package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prenv/prenv/internal/runtime"
)

// MigrationJob is what runtime.kubernetes.migration renders to: the
// container prenv runs as a Job before the upgrade, for charts without a
// migration hook. It gets the database Secret as environment variables.
type MigrationJob struct {
	Image     string            `yaml:"image"`
	Command   []string          `yaml:"command"`
	Args      []string          `yaml:"args"`
	Env       map[string]string `yaml:"env"`
	PodLabels map[string]string `yaml:"pod_labels"`
	Timeout   string            `yaml:"timeout"` // default 10m
}

func (r *Runtime) migrationJob(spec runtime.Spec) (*MigrationJob, error) {
	if strings.TrimSpace(r.Migration) == "" {
		return nil, nil
	}
	d, err := r.data(spec)
	if err != nil {
		return nil, err
	}
	text, err := render("migration", r.Migration, d)
	if err != nil {
		return nil, err
	}
	var m MigrationJob
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("runtime.kubernetes.migration: %v (fields: image, command, args, env, pod_labels, timeout): %w", err, runtime.ErrInvalid)
	}
	if m.Image == "" {
		return nil, fmt.Errorf("runtime.kubernetes.migration: image is required: %w", runtime.ErrInvalid)
	}
	if m.Timeout != "" {
		if _, err := time.ParseDuration(m.Timeout); err != nil {
			return nil, fmt.Errorf("runtime.kubernetes.migration.timeout: %q is not a duration: %w", m.Timeout, runtime.ErrInvalid)
		}
	}
	return &m, nil
}

// Migrate implements runtime.Runtime. Charts with a pre-install/pre-upgrade
// hook migrate inside Deploy; for the others, a configured migration Job
// runs here, and a failure stops the rollout with the Job's output.
func (r *Runtime) Migrate(ctx context.Context, spec runtime.Spec) error {
	m, err := r.migrationJob(spec)
	if err != nil || m == nil {
		return err
	}
	ns, _ := r.Namespaces.Name(spec.Key)
	name := "prenv-migrate-" + shortCommit(spec.Commit)
	jobs := r.Namespaces.Client.BatchV1().Jobs(ns)
	if cur, err := jobs.Get(ctx, name, metav1.GetOptions{}); err == nil {
		if err := r.Namespaces.ours("job", cur, spec.Key); err != nil {
			return err
		}
		if jobDone(cur, batchv1.JobComplete) {
			return nil // this commit's migration already ran
		}
		// A failed or interrupted run of this commit: start it afresh.
		bg := metav1.DeletePropagationForeground
		if err := jobs.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			return describe(err, "delete", "jobs")
		}
		if err := waitGone(ctx, func() error { _, err := jobs.Get(ctx, name, metav1.GetOptions{}); return err }, time.Minute); err != nil {
			return err
		}
	} else if !apierrors.IsNotFound(err) {
		return describe(err, "get", "jobs")
	}
	secretName, err := r.Namespaces.Options.SecretName(spec.Key)
	if err != nil {
		return fmt.Errorf("%v: %w", err, runtime.ErrInvalid)
	}
	meta := r.Namespaces.meta(name, spec.Key, spec.Labels)
	meta.Namespace = ns
	timeout := 10 * time.Minute
	if m.Timeout != "" {
		timeout, _ = time.ParseDuration(m.Timeout)
	}
	deadline := int64(timeout.Seconds())
	zero := int32(0)
	no, yes := false, true
	var env []corev1.EnvVar
	for k, v := range m.Env {
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	// The migration rehearsal tells the migration's sessions by their
	// application name, unless the template names its own.
	if _, set := m.Env[runtime.MigrationEnv]; !set {
		env = append(env, corev1.EnvVar{Name: runtime.MigrationEnv, Value: runtime.MigrationApplicationName})
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	job := &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{
		BackoffLimit: &zero, ActiveDeadlineSeconds: &deadline,
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: merge(m.PodLabels, map[string]string{LabelOwner: r.Namespaces.Options.Owner, LabelRole: "migration"})},
			Spec: corev1.PodSpec{
				RestartPolicy:   corev1.RestartPolicyNever,
				SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
				Containers: []corev1.Container{{
					Name: "migrate", Image: m.Image, Command: m.Command, Args: m.Args, Env: env,
					EnvFrom:         []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: secretName}}}},
					SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				}},
			},
		},
	}}
	if _, err := jobs.Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return describe(err, "create", "jobs")
	}
	stop := time.Now().Add(timeout + 30*time.Second)
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		cur, err := jobs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return describe(err, "get", "jobs")
		}
		switch {
		case jobDone(cur, batchv1.JobComplete):
			return nil
		case jobDone(cur, batchv1.JobFailed):
			return &runtime.StepError{Step: "migrate", Err: fmt.Errorf("migration job %s failed", name), Output: r.Releases.diagnose(context.WithoutCancel(ctx), ns)}
		case time.Now().After(stop):
			return &runtime.StepError{Step: "migrate", Err: fmt.Errorf("migration job %s did not finish within %v", name, timeout), Output: r.Releases.diagnose(context.WithoutCancel(ctx), ns)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func jobDone(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func waitGone(ctx context.Context, get func() error, timeout time.Duration) error {
	stop := time.Now().Add(timeout)
	for {
		err := get()
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(stop) {
			return errors.New("the previous migration job was not deleted in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func shortCommit(c string) string {
	c = strings.ToLower(c)
	out := make([]byte, 0, 12)
	for i := 0; i < len(c) && len(out) < 12; i++ {
		if b := c[i]; b >= 'a' && b <= 'z' || b >= '0' && b <= '9' {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return string(out)
}
