package dhcp

import (
	"errors"
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the "reason" label. The set is fixed so that
// hostile traffic cannot grow the number of series.
const (
	dropMalformed    = "malformed"
	dropUnknownRelay = "unknown_relay"
	dropNoSegment    = "no_segment"
	dropWrongPort    = "wrong_port"
	dropPolicy       = "policy"
	dropExhausted    = "exhausted"
	dropSilent       = "silent"
	dropStoreError   = "store_error"
	dropUnsupported  = "unsupported_type"
	dropShutdown     = "shutdown"
	dropPanic        = "panic"
	dropNoReply      = "no_reply_type"
)

// metrics counts what the server sees and does.
type metrics struct {
	requests *prometheus.CounterVec
	replies  *prometheus.CounterVec
	drops    *prometheus.CounterVec
}

// newMetrics creates the counters and registers them with reg (nil: not
// registered, still counted). A registry that already holds them (a second
// Server in one process) shares the existing counters.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "requests_total",
			Help: "DHCP requests received, by message type.",
		}, []string{"type"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "replies_total",
			Help: "DHCP replies sent, by message type.",
		}, []string{"type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "drops_total",
			Help: "DHCP requests dropped without a reply, by reason.",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.replies, &m.drops} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register dhcp metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("register dhcp metrics: %w", err)
			}
			*c = existing
		}
	}
	return m, nil
}

// typeLabel bounds the "type" label to the DHCP message types of RFC 2132.
func typeLabel(t dhcpv4.MessageType) string {
	if t < dhcpv4.MessageTypeDiscover || t > dhcpv4.MessageTypeInform {
		return "other"
	}
	return t.String()
}
