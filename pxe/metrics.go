package pxe

import (
	"fmt"
	"slices"

	"github.com/foundry-appliance/foundry/internal/promx"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the TFTP counters; a nil *metrics counts nothing, so the
// handler need not check whether a Registerer was configured.
type metrics struct {
	transfers prometheus.Counter
	bytes     prometheus.Counter
	errors    *prometheus.CounterVec
	dropped   prometheus.Counter
}

// reasonOther counts a reason missing from reasons: a new reason must be
// listed there before it gets its own series.
const reasonOther = "other"

// reasons is the fixed set of values of the "reason" label.
func reasons() []string {
	return []string{reasonBadName, reasonNotFound, reasonDenied, reasonWrite, reasonTransfer, reasonRead, reasonPacket, reasonOther}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		transfers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "foundry_tftp_transfers_total",
			Help: "TFTP read transfers completed.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "foundry_tftp_sent_bytes_total",
			Help: "File bytes sent over TFTP, including those of failed transfers.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "foundry_tftp_errors_total",
			Help: "TFTP requests refused or transfers failed, by reason.",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "foundry_tftp_dropped_total",
			Help: "Datagrams the kernel dropped at the TFTP port: not a read or write request (filtered), or the receive buffer full.",
		}),
	}
	// A second Serve on the same registry shares the counters.
	var err error
	if m.transfers, err = promx.Register(reg, m.transfers); err != nil {
		return nil, fmt.Errorf("register tftp metrics: %w", err)
	}
	if m.bytes, err = promx.Register(reg, m.bytes); err != nil {
		return nil, fmt.Errorf("register tftp metrics: %w", err)
	}
	if m.errors, err = promx.Register(reg, m.errors); err != nil {
		return nil, fmt.Errorf("register tftp metrics: %w", err)
	}
	if m.dropped, err = promx.Register(reg, m.dropped); err != nil {
		return nil, fmt.Errorf("register tftp metrics: %w", err)
	}
	// Make every reason visible at zero, so a dashboard can tell "none yet"
	// from "not exported".
	for _, r := range reasons() {
		m.errors.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) transfer() {
	if m != nil {
		m.transfers.Inc()
	}
}

func (m *metrics) addBytes(n int64) {
	if m != nil && n > 0 {
		m.bytes.Add(float64(n))
	}
}

func (m *metrics) failure(reason string) {
	if m == nil {
		return
	}
	if !slices.Contains(reasons(), reason) {
		reason = reasonOther
	}
	m.errors.WithLabelValues(reason).Inc()
}

// dropCounter returns a func that adds to foundry_tftp_dropped_total what
// read (the socket's drop count, nil: unknown) has counted since its last
// call. Counting deltas lets two servers on one registry share the series.
func (m *metrics) dropCounter(read func() (uint32, error)) func() {
	var last uint32
	return func() {
		if m == nil || read == nil {
			return
		}
		n, err := read()
		if err != nil {
			return // closed: nothing more arrives
		}
		// uint32 arithmetic: right across the kernel counter's wrap.
		m.dropped.Add(float64(n - last))
		last = n
	}
}
