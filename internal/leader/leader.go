// Package leader elects the one replica of prenv serve that reconciles
// with GitHub, sweeps and builds golden data, so that replicas sharing a
// store do none of it twice: on a Kubernetes Lease (client-go's leader
// election) when prenv runs in a cluster, else on a lock in the shared
// store, and a lone prenv serve always leads.
package leader

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/prenv/prenv/internal/store"
)

// Elector runs lead while this process leads, until ctx ends. lead's
// context ends as soon as leadership may be lost; Run then campaigns again.
type Elector interface {
	Run(ctx context.Context, lead func(ctx context.Context))
}

// Alone leads always: one prenv serve with a store of its own.
type Alone struct{}

// Run implements Elector.
func (Alone) Run(ctx context.Context, lead func(ctx context.Context)) {
	lead(ctx)
}

// Lease elects on a coordination.k8s.io Lease with client-go's leader
// election: the leader renews it every RetryPeriod; a leader that stops
// (kill -9, a lost node) loses it after LeaseDuration.
type Lease struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // default prenv-leader
	Identity  string
	Log       *slog.Logger
	// LeaseDuration, RenewDeadline and RetryPeriod: default 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Run implements Elector.
func (l Lease) Run(ctx context.Context, lead func(ctx context.Context)) {
	name := l.Name
	if name == "" {
		name = "prenv-leader"
	}
	d, renew, retry := l.LeaseDuration, l.RenewDeadline, l.RetryPeriod
	if d <= 0 {
		d, renew, retry = 15*time.Second, 10*time.Second, 2*time.Second
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: l.Namespace},
		Client:     l.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	for ctx.Err() == nil {
		// client-go calls OnStartedLeading in a goroutine of its own and
		// does not wait for it: the duties of one term end before this
		// replica campaigns for the next.
		leading := make(chan struct{})
		var started atomic.Bool
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: d, RenewDeadline: renew, RetryPeriod: retry, ReleaseOnCancel: true, Name: name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					started.Store(true)
					defer close(leading)
					log.Info("this replica leads: it reconciles, sweeps and builds golden data", "lease", l.Namespace+"/"+name, "identity", l.Identity)
					lead(ctx)
				},
				OnStoppedLeading: func() { log.Info("this replica no longer leads", "lease", l.Namespace+"/"+name) },
			},
		})
		if err != nil {
			log.Error("leader election", "error", err)
			return
		}
		le.Run(ctx) // returns when leadership is lost, or ctx ends
		if started.Load() {
			<-leading
		}
	}
}

// StoreLock elects on a lock in a store that replicas share.
type StoreLock struct {
	Locker store.Locker
	Log    *slog.Logger
	// Grace is how long a new leader waits after taking the lock before it
	// leads: at least the time a leader whose connection died takes to
	// notice that its lock is lost (so two never lead at once). Default 5s.
	Grace time.Duration
}

// Run implements Elector.
func (s StoreLock) Run(ctx context.Context, lead func(ctx context.Context)) {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for ctx.Err() == nil {
		held, err := s.Locker.Lock(ctx, "prenv-leader")
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("leader election: the store's lock cannot be taken; trying again", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
			continue
		}
		grace := s.Grace
		if grace <= 0 {
			grace = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			held.Release()
			return
		case <-held.Lost():
			held.Release()
			continue
		case <-time.After(grace):
		}
		log.Info("this replica leads: it reconciles, sweeps and builds golden data")
		leadCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { lead(leadCtx); close(done) }()
		select {
		case <-held.Lost():
			log.Warn("this replica lost the lead (the store stopped answering for its lock)")
		case <-ctx.Done():
		case <-done:
		}
		cancel()
		<-done
		held.Release()
	}
}
