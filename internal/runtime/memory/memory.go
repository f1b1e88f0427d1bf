// Package memory is an in-memory Runtime: a real provider for fast tests and
// --dry-run. Commits listed in FailMigration or FailDeploy fail that step.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prenv/prenv/internal/env"
	"github.com/prenv/prenv/internal/runtime"
)

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Checker = (*Runtime)(nil)
)

// Runtime keeps environments in memory.
type Runtime struct {
	Owner string

	mu            sync.Mutex
	homes         map[string]home
	FailMigration map[string]string // commit -> migration output
	FailDeploy    map[string]string // commit -> reason
	Migrations    []string          // "name@commit" of every migration run
	// Delay is how long each migration and deploy takes, as a real
	// runtime's work does (zero: none).
	Delay time.Duration
	// Overlaps counts the migrations and deploys of one environment that
	// ran at the same time as another of its own.
	Overlaps int
	busy     map[string]int
}

// work takes Delay, counting what overlaps it in spec's environment.
func (r *Runtime) work(ctx context.Context, spec runtime.Spec) error {
	if r.Delay <= 0 {
		return nil
	}
	r.mu.Lock()
	if r.busy == nil {
		r.busy = map[string]int{}
	}
	r.busy[spec.Name]++
	if r.busy[spec.Name] > 1 {
		r.Overlaps++
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.busy[spec.Name]--
		r.mu.Unlock()
	}()
	select {
	case <-time.After(r.Delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type home struct {
	key     env.Key
	owner   string
	labels  map[string]string
	release *runtime.Release
}

// New returns an empty runtime acting for owner.
func New(owner string) *Runtime {
	return &Runtime{Owner: owner, homes: map[string]home{}, FailMigration: map[string]string{}, FailDeploy: map[string]string{}}
}

// Foreign puts a home without our owner id where k's would go.
func (r *Runtime) Foreign(k env.Key) {
	r.mu.Lock()
	r.homes[k.Name()] = home{key: k, owner: "someone-else"}
	r.mu.Unlock()
}

func (r *Runtime) ours(spec runtime.Spec) (home, error) {
	h, ok := r.homes[spec.Name]
	if !ok {
		return h, fmt.Errorf("%s: not prepared", spec.Name)
	}
	if h.owner != r.Owner {
		return h, fmt.Errorf("%s: %w", spec.Name, runtime.ErrNotOurs)
	}
	return h, nil
}

// Check implements runtime.Checker.
func (r *Runtime) Check(ctx context.Context, k env.Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.homes[k.Name()]; ok && (h.owner != r.Owner || h.key != k) {
		return fmt.Errorf("prepare %s: %w", k.Name(), runtime.ErrNotOurs)
	}
	return nil
}

// Prepare implements runtime.Runtime.
func (r *Runtime) Prepare(ctx context.Context, spec runtime.Spec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.homes[spec.Name]; ok {
		if h.owner != r.Owner {
			return fmt.Errorf("prepare %s: %w", spec.Name, runtime.ErrNotOurs)
		}
		return nil
	}
	r.homes[spec.Name] = home{key: spec.Key, owner: r.Owner, labels: spec.Labels}
	return nil
}

// Migrate implements runtime.Runtime.
func (r *Runtime) Migrate(ctx context.Context, spec runtime.Spec) error {
	if err := r.work(ctx, spec); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.ours(spec); err != nil {
		return err
	}
	if out, ok := r.FailMigration[spec.Commit]; ok {
		return &runtime.StepError{Step: "migrate", Err: errors.New("migration exited with status 1"), Output: out}
	}
	r.Migrations = append(r.Migrations, spec.Name+"@"+spec.Commit)
	return nil
}

// Deploy implements runtime.Runtime.
func (r *Runtime) Deploy(ctx context.Context, spec runtime.Spec) (runtime.Release, error) {
	if err := r.work(ctx, spec); err != nil {
		return runtime.Release{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.ours(spec)
	if err != nil {
		return runtime.Release{}, err
	}
	if why, ok := r.FailDeploy[spec.Commit]; ok {
		return runtime.Release{}, &runtime.StepError{Step: "deploy", Err: errors.New(why)}
	}
	h.release = &runtime.Release{Commit: spec.Commit, URL: "http://" + spec.Name + ".memory.invalid"}
	r.homes[spec.Name] = h
	return *h.release, nil
}

// Current implements runtime.Runtime.
func (r *Runtime) Current(ctx context.Context, k env.Key) (runtime.Release, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.homes[k.Name()]
	if !ok || h.owner != r.Owner || h.release == nil {
		return runtime.Release{}, fmt.Errorf("%s: %w", k.Name(), runtime.ErrNotFound)
	}
	return *h.release, nil
}

// Teardown implements runtime.Runtime.
func (r *Runtime) Teardown(ctx context.Context, k env.Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.homes[k.Name()]
	if !ok {
		return nil
	}
	if h.owner != r.Owner {
		return fmt.Errorf("teardown %s: %w", k.Name(), runtime.ErrNotOurs)
	}
	delete(r.homes, k.Name())
	return nil
}

// List implements runtime.Runtime.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []runtime.Instance
	for name, h := range r.homes {
		if h.owner == r.Owner {
			out = append(out, runtime.Instance{Key: h.key, Name: name, Labels: h.labels})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
