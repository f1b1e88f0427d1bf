package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/prenv/prenv/internal/runtime"
)

// LabelCommit is the Helm release label carrying the deployed commit.
const LabelCommit = "prenv.dev/commit"

// Releases installs and upgrades the team's chart in environments'
// namespaces with the Helm SDK. Helm's own pre-install/pre-upgrade hook Jobs
// are the migration gate: if one fails, the upgrade stops before any
// workload changes and the running revision keeps serving.
type Releases struct {
	// Kubeconfig and Context locate the cluster; empty uses the default
	// loading rules ($KUBECONFIG, ~/.kube/config, in-cluster).
	Kubeconfig, Context string
	Client              kubernetes.Interface
	Timeout             time.Duration
	Log                 *slog.Logger
	// Wrap, if set, adjusts the REST config of Helm's clients (the
	// benchmark counts requests with it).
	Wrap func(*rest.Config) *rest.Config
}

// DeployError is a failed release, with what a developer needs to see.
type DeployError struct {
	Release   string
	Err       error
	Diagnosis string
	// Migrated is when the pre-install/pre-upgrade hook Jobs ran to
	// completion before the rollout failed; nil when they did not.
	Migrated *runtime.Span
	// Migration is true when a pre-install or pre-upgrade hook failed: the
	// migration gate closed before any workload changed.
	Migration bool
}

func (e *DeployError) Error() string {
	if e.Diagnosis == "" {
		return fmt.Sprintf("release %s: %v", e.Release, e.Err)
	}
	return fmt.Sprintf("release %s: %v\n%s", e.Release, e.Err, e.Diagnosis)
}
func (e *DeployError) Unwrap() error { return e.Err }

func (r *Releases) config(ns string) (*action.Configuration, error) {
	flags := genericclioptions.NewConfigFlags(false)
	flags.Namespace = &ns
	if r.Kubeconfig != "" {
		flags.KubeConfig = &r.Kubeconfig
	}
	if r.Context != "" {
		flags.Context = &r.Context
	}
	if r.Wrap != nil {
		flags.WrapConfigFn = r.Wrap
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := action.NewConfiguration()
	cfg.SetLogger(log.Handler())
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	cfg.HookOutputFunc = func(string, string, string) io.Writer { return io.Discard }
	return cfg, nil
}

// DefaultTimeout bounds a release's rollout when Releases.Timeout is zero
// (runtime.kubernetes.timeout).
const DefaultTimeout = 5 * time.Minute

// Deploy installs or upgrades release name in ns with ch and vals, labelled
// with the commit, and waits (bounded by Timeout) until it is ready. A
// release left pending by an interrupted run is recovered first. A failure
// is a *DeployError whose Diagnosis says why in words.
func (r *Releases) Deploy(ctx context.Context, ns, name string, ch *chart.Chart, vals map[string]any, commit string) (*releasev1.Release, error) {
	cfg, err := r.config(ns)
	if err != nil {
		return nil, err
	}
	exists, err := r.recover(ctx, cfg, ns, name)
	if err != nil {
		return nil, &DeployError{Release: name, Err: err}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	labels := map[string]string{LabelCommit: commit}
	var rel any
	if exists {
		u := action.NewUpgrade(cfg)
		u.Namespace, u.Timeout, u.WaitStrategy, u.Labels, u.MaxHistory = ns, timeout, kube.StatusWatcherStrategy, labels, 10
		u.Description = "prenv: commit " + commit
		rel, err = u.RunWithContext(ctx, name, ch, vals)
	} else {
		i := action.NewInstall(cfg)
		i.ReleaseName, i.Namespace, i.Timeout, i.WaitStrategy, i.Labels = name, ns, timeout, kube.StatusWatcherStrategy, labels
		i.Description = "prenv: commit " + commit
		rel, err = i.RunWithContext(ctx, ch, vals)
	}
	if err != nil {
		last := lastRelease(cfg, name)
		de := &DeployError{Release: name, Err: err, Diagnosis: r.diagnose(context.WithoutCancel(ctx), ns), Migration: preHookFailed(last)}
		if !de.Migration {
			de.Migrated = preHooksRun(last)
		}
		return nil, de
	}
	out, _ := rel.(*releasev1.Release)
	return out, nil
}

// lastRelease is the newest revision of release name, nil if none reads.
func lastRelease(cfg *action.Configuration, name string) *releasev1.Release {
	last, err := cfg.Releases.Last(name)
	if err != nil {
		return nil
	}
	rel, _ := last.(*releasev1.Release)
	return rel
}

// preHookFailed reads from the release record whether rel's pre-install
// or pre-upgrade hook failed (Helm's error carries no type).
func preHookFailed(rel *releasev1.Release) bool {
	if rel == nil {
		return false
	}
	for _, h := range rel.Hooks {
		if h.LastRun.Phase != releasev1.HookPhaseFailed {
			continue
		}
		for _, e := range h.Events {
			if e == releasev1.HookPreInstall || e == releasev1.HookPreUpgrade {
				return true
			}
		}
	}
	return false
}

// recover makes a release left pending-install, pending-upgrade or
// pending-rollback by an interrupted run deployable again: Helm would refuse
// with "another operation is in progress". It returns whether a release
// with a deployed revision exists (so the next step is an upgrade).
func (r *Releases) recover(ctx context.Context, cfg *action.Configuration, ns, name string) (bool, error) {
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read release history: %w", err)
	}
	rel, ok := last.(*releasev1.Release)
	if !ok {
		return false, fmt.Errorf("release %s has a format this prenv cannot read", name)
	}
	_, depErr := cfg.Releases.Deployed(name)
	deployed := depErr == nil
	if !rel.Info.Status.IsPending() {
		// Only failed installs with nothing deployed are reinstalled.
		if !deployed && rel.Info.Status == rcommon.StatusFailed {
			if err := r.cleanHooks(cfg, rel); err != nil {
				return false, err
			}
			return false, r.uninstall(cfg, name)
		}
		return true, nil
	}
	if r.Log != nil {
		r.Log.Warn("recovering a release left pending by an interrupted run", "release", name, "revision", rel.Version, "status", rel.Info.Status)
	}
	// Its hooks may have been running when it was interrupted: a hook Job
	// without the before-hook-creation policy would make the next run fail
	// with "already exists", and a half-done one must not keep running.
	if err := r.cleanHooks(cfg, rel); err != nil {
		return false, err
	}
	if !deployed {
		// An install that never finished: nothing serves, start over.
		return false, r.uninstall(cfg, name)
	}
	was := rel.Info.Status
	rel.Info.Status = rcommon.StatusFailed
	rel.Info.Description = "interrupted while " + string(was) + "; marked failed by prenv so the next upgrade can proceed"
	if err := cfg.Releases.Update(rel); err != nil {
		return false, fmt.Errorf("mark interrupted revision %d failed: %w", rel.Version, err)
	}
	return true, nil
}

// cleanHooks deletes the hook resources of rel that are still in the
// cluster, and waits (bounded) until they are gone. Only objects that carry
// Helm's hook annotation are deleted; CustomResourceDefinitions never are.
func (r *Releases) cleanHooks(cfg *action.Configuration, rel *releasev1.Release) error {
	var left kube.ResourceList
	for _, h := range rel.Hooks {
		if h.Kind == "CustomResourceDefinition" {
			continue
		}
		res, err := cfg.KubeClient.Build(bytes.NewBufferString(h.Manifest), false)
		if err != nil {
			return fmt.Errorf("read hook %s of the interrupted revision %d: %w", h.Name, rel.Version, err)
		}
		for _, info := range res {
			if err := info.Get(); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return fmt.Errorf("look up hook %s %s: %w", h.Kind, h.Name, err)
			}
			acc, err := meta.Accessor(info.Object)
			if err != nil || acc.GetAnnotations()[releasev1.HookAnnotation] == "" {
				continue
			}
			left = append(left, info)
		}
	}
	if len(left) == 0 {
		return nil
	}
	if r.Log != nil {
		for _, info := range left {
			r.Log.Warn("deleting a hook left by an interrupted run", "kind", info.Mapping.GroupVersionKind.Kind, "name", info.Name)
		}
	}
	if _, errs := cfg.KubeClient.Delete(left, metav1.DeletePropagationBackground); len(errs) > 0 {
		return fmt.Errorf("delete hooks left by an interrupted run: %w", errors.Join(errs...))
	}
	w, err := cfg.KubeClient.GetWaiter(kube.StatusWatcherStrategy)
	if err != nil {
		return err
	}
	if err := w.WaitForDelete(left, time.Minute); err != nil {
		return fmt.Errorf("hooks left by an interrupted run are still being deleted after a minute: %w", err)
	}
	return nil
}

func (r *Releases) uninstall(cfg *action.Configuration, name string) error {
	u := action.NewUninstall(cfg)
	u.Timeout, u.WaitStrategy = time.Minute, kube.HookOnlyStrategy
	if _, err := u.Run(name); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("remove the unfinished install: %w", err)
	}
	return nil
}

// Current returns the deployed revision of release name, or nil.
func (r *Releases) Current(ns, name string) (*releasev1.Release, error) {
	cfg, err := r.config(ns)
	if err != nil {
		return nil, err
	}
	d, err := cfg.Releases.Deployed(name)
	if err != nil {
		return nil, err
	}
	rel, _ := d.(*releasev1.Release)
	return rel, nil
}

// Uninstall removes release name; gone already is success.
func (r *Releases) Uninstall(ns, name string) error {
	cfg, err := r.config(ns)
	if err != nil {
		return err
	}
	return r.uninstall(cfg, name)
}

// diagnose says why workloads in ns are not ready: failed Jobs (hooks) with
// their containers' messages, pods waiting (image pulls, crash loops) or
// unschedulable, ReplicaSets refused pods (quota, Pod Security), and the
// latest warning events.
func (r *Releases) diagnose(ctx context.Context, ns string) string {
	if r.Client == nil {
		return ""
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, "  "+fmt.Sprintf(format, args...)) }
	jobs, _ := r.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	for _, j := range jobs.Items {
		for _, c := range j.Status.Conditions {
			if c.Type == "Failed" && c.Status == corev1.ConditionTrue {
				add("job %s failed (%s: %s)", j.Name, c.Reason, c.Message)
			}
		}
	}
	pods, _ := r.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				add("pod %s cannot be scheduled: %s", p.Name, c.Message)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				msg := fmt.Sprintf("pod %s container %s is waiting: %s", p.Name, cs.Name, cs.State.Waiting.Reason)
				if cs.State.Waiting.Message != "" {
					msg += ": " + cs.State.Waiting.Message
				}
				if cs.State.Waiting.Reason == "CrashLoopBackOff" {
					msg += r.lastLogs(ctx, ns, p.Name, cs.Name)
				}
				add("%s", msg)
			case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
				add("pod %s container %s exited %d (%s): %s%s", p.Name, cs.Name, cs.State.Terminated.ExitCode,
					cs.State.Terminated.Reason, cs.State.Terminated.Message, r.lastLogs(ctx, ns, p.Name, cs.Name))
			}
		}
	}
	rss, _ := r.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
	for _, rs := range rss.Items {
		for _, c := range rs.Status.Conditions {
			if c.Type == "ReplicaFailure" && c.Status == corev1.ConditionTrue {
				add("replicaset %s cannot create pods: %s", rs.Name, c.Message)
			}
		}
	}
	events, _ := r.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp) })
	// The newest warning per object and reason, five at most: a controller
	// retrying says the same thing many times.
	seen := map[string]bool{}
	var picked []string
	for i := len(events.Items) - 1; i >= 0 && len(picked) < 5; i-- {
		e := events.Items[i]
		id := e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + "/" + e.Reason
		if seen[id] {
			continue
		}
		seen[id] = true
		picked = append(picked, fmt.Sprintf("event %s/%s %s: %s", strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Reason, e.Message))
	}
	for i := len(picked) - 1; i >= 0; i-- {
		add("%s", picked[i])
	}
	return strings.Join(lines, "\n")
}

// lastLogs returns the last lines a container printed, when the cluster has
// them: those of the instance that crashed (a crash-looping container waits
// to restart and has printed nothing yet), else the current one's.
func (r *Releases) lastLogs(ctx context.Context, ns, pod, container string) string {
	tail := int64(10)
	var data []byte
	for _, previous := range []bool{true, false} {
		out, err := r.Client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, Previous: previous}).DoRaw(ctx)
		if err == nil && len(strings.TrimSpace(string(out))) > 0 {
			data = out
			break
		}
	}
	if data == nil {
		return ""
	}
	return "\n    last lines:\n    " + strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", "\n    ")
}
