// Package metrics is what prenv serve tells Prometheus at /metrics:
// environments by state, runs and steps as histograms (clones by database
// provider), the webhook queue's depth and age, the sweeper's deletions,
// the Aurora warm pool, and what is left of GitHub's rate limit.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prenv/prenv/internal/lifecycle"
	"github.com/prenv/prenv/internal/store"
)

// Metrics are prenv serve's.
type Metrics struct {
	reg    *prometheus.Registry
	runs   *prometheus.HistogramVec
	steps  *prometheus.HistogramVec
	sweeps *prometheus.CounterVec
	pool   *prometheus.GaugeVec
	claims prometheus.Counter
	held   prometheus.Counter
}

// Source is what is read at each scrape.
type Source struct {
	Store store.Store
	Queue store.Queue // nil: no webhooks
	// Remaining is what is left of GitHub's rate limit; nil without
	// GitHub credentials.
	Remaining func() (int, bool)
}

var durations = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200}

// New registers prenv's metrics, Go's and the process's.
func New(src Source) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(),
		runs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "prenv_run_duration_seconds",
			Help: "How long runs took, by kind (up, down) and how they ended.", Buckets: durations}, []string{"kind", "state"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "prenv_step_duration_seconds",
			Help: "How long each step of a run took, by step and the provider that did it (a clone: the database provider).", Buckets: durations}, []string{"step", "provider"}),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prenv_sweep_deletions_total",
			Help: "Resources the sweeper deleted, by verdict (expired, orphaned, half-made, legacy)."}, []string{"verdict"}),
		pool: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prenv_pool_members",
			Help: "The Aurora warm pool's unclaimed members after the keeper's last round, by state (ready, filling)."}, []string{"state"}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{Name: "prenv_pool_claims_total",
			Help: "Environments that claimed a warm pool member on this replica instead of cloning."}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Name: "prenv_pool_rounds_held_back_total",
			Help: "The warm pool keeper's rounds that RDS held back (a quota, throttling); each is retried."}),
	}
	m.reg.MustRegister(m.runs, m.steps, m.sweeps, m.pool, m.claims, m.held, &scraped{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Run records a run that ended (lifecycle.Lifecycle.OnRun).
func (m *Metrics) Run(r store.Run, providers store.Providers) {
	if r.FinishedAt.IsZero() || r.StartedAt.IsZero() {
		return
	}
	m.runs.WithLabelValues(r.Kind, string(r.State)).Observe(r.FinishedAt.Sub(r.StartedAt).Seconds())
	for _, s := range r.Steps {
		provider := providers.Runtime
		if s.Name == "clone" || s.Name == "delete-database" {
			provider = providers.Database
		}
		m.steps.WithLabelValues(s.Name, provider).Observe(s.Seconds)
	}
}

// Swept records what an applied sweep deleted.
func (m *Metrics) Swept(p lifecycle.Plan) {
	for _, it := range p.Items {
		if it.Outcome == "deleted" {
			m.sweeps.WithLabelValues(string(it.Verdict)).Inc()
		}
	}
}

// Pool records the warm pool after a keeper's round: ready and filling
// members, and whether RDS held the round back.
func (m *Metrics) Pool(ready, filling int, heldBack bool) {
	m.pool.WithLabelValues("ready").Set(float64(ready))
	m.pool.WithLabelValues("filling").Set(float64(filling))
	if heldBack {
		m.held.Inc()
	}
}

// Claimed records a claim from the warm pool.
func (m *Metrics) Claimed() { m.claims.Inc() }

// scraped reads the store at each scrape: environments by state, the
// queue's depth and the age of its oldest delivery, GitHub's quota.
type scraped struct{ src Source }

var (
	envsDesc      = prometheus.NewDesc("prenv_environments", "Environments by state (deleted ones not counted).", []string{"state"}, nil)
	depthDesc     = prometheus.NewDesc("prenv_webhook_queue_depth", "Webhook deliveries queued, not yet carried out.", nil, nil)
	ageDesc       = prometheus.NewDesc("prenv_webhook_queue_oldest_seconds", "Age of the oldest queued webhook delivery (0 when none).", nil, nil)
	remainingDesc = prometheus.NewDesc("prenv_github_rate_limit_remaining", "What GitHub's last response said is left of its rate limit.", nil, nil)
	scrapeErrDesc = prometheus.NewDesc("prenv_store_up", "1 when the store answered this scrape.", nil, nil)
)

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{envsDesc, depthDesc, ageDesc, remainingDesc, scrapeErrDesc} {
		ch <- d
	}
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	up := 1.0
	if list, err := s.src.Store.List(ctx); err == nil {
		by := map[string]int{}
		for _, e := range list {
			if string(e.State) != "deleted" {
				by[string(e.State)]++
			}
		}
		for state, n := range by {
			ch <- prometheus.MustNewConstMetric(envsDesc, prometheus.GaugeValue, float64(n), state)
		}
	} else {
		up = 0
	}
	if qs, ok := s.src.Queue.(store.QueueStats); ok && s.src.Queue != nil {
		if depth, oldest, err := qs.QueueStats(ctx); err == nil {
			age := 0.0
			if depth > 0 {
				age = time.Since(oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(depth))
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, age)
		} else {
			up = 0
		}
	}
	if s.src.Remaining != nil {
		if n, ok := s.src.Remaining(); ok {
			ch <- prometheus.MustNewConstMetric(remainingDesc, prometheus.GaugeValue, float64(n))
		}
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, up)
}
