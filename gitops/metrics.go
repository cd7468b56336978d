package gitops

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/internal/promx"
)

// metrics are the exporter's Prometheus series (foundry_gitops_*).
type metrics struct {
	commits      prometheus.Counter
	pushes       *prometheus.CounterVec
	fetches      *prometheus.CounterVec
	conflicts    prometheus.Counter
	pending      prometheus.Gauge
	up           prometheus.Gauge
	lastPush     prometheus.Gauge
	declarations prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	var err error
	reg1 := func(c prometheus.Collector) prometheus.Collector {
		if err != nil {
			return c
		}
		got, rerr := promx.Register(reg, c)
		if rerr != nil {
			err = rerr
			return c
		}
		return got
	}
	m.commits = reg1(prometheus.NewCounter(prometheus.CounterOpts{Name: "foundry_gitops_commits_total",
		Help: "Commits Foundry made in its clone of the GitOps repository."})).(prometheus.Counter)
	m.pushes = reg1(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "foundry_gitops_pushes_total",
		Help: "Pushes to the GitOps remote by result: ok, rejected (the remote moved on; rebased and retried) or error (unreachable)."}, []string{"result"})).(*prometheus.CounterVec)
	m.fetches = reg1(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "foundry_gitops_fetches_total",
		Help: "Fetches from the GitOps remote by result: ok or error."}, []string{"result"})).(*prometheus.CounterVec)
	m.conflicts = reg1(prometheus.NewCounter(prometheus.CounterOpts{Name: "foundry_gitops_conflicts_total",
		Help: "Changes in the repository to machines Foundry has decided about, not applied (audited as gitops-conflict)."})).(prometheus.Counter)
	m.pending = reg1(prometheus.NewGauge(prometheus.GaugeOpts{Name: "foundry_gitops_pending_commits",
		Help: "Commits in Foundry's clone that the remote does not have yet."})).(prometheus.Gauge)
	m.up = reg1(prometheus.NewGauge(prometheus.GaugeOpts{Name: "foundry_gitops_remote_up",
		Help: "1 when the last fetch and push succeeded, 0 while the remote is down or refusing."})).(prometheus.Gauge)
	m.lastPush = reg1(prometheus.NewGauge(prometheus.GaugeOpts{Name: "foundry_gitops_last_push_timestamp_seconds",
		Help: "When the last push succeeded (Unix time)."})).(prometheus.Gauge)
	m.declarations = reg1(prometheus.NewGauge(prometheus.GaugeOpts{Name: "foundry_gitops_declarations",
		Help: "Machines declared in the repository and not yet approved."})).(prometheus.Gauge)
	return m, err
}
