package dhcp

import (
	"fmt"

	"github.com/foundry-appliance/foundry/internal/promx"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the "reason" label. The set is fixed so that
// hostile traffic cannot grow the number of series.
const (
	dropMalformed    = "malformed"
	dropUnknownRelay = "unknown_relay"
	// dropRelayRefused: a relayed packet (giaddr set) on an interface not
	// configured for relays, or from a source not allowed (relay.go).
	dropRelayRefused = "relay_refused"
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
	// dropOther counts a reason missing from the list above: a new reason
	// must be added there before it gets its own series.
	dropOther = "other"
)

// metrics counts what the server sees and does. The per-label counters
// are resolved once: WithLabelValues hashes the labels and takes a lock on
// every call, which the packet path need not pay.
type metrics struct {
	requests *prometheus.CounterVec
	replies  *prometheus.CounterVec
	drops    *prometheus.CounterVec

	// byType are the requests and replies counters indexed by message
	// type (1-8); index 0 is "other".
	requestsByType, repliesByType [dhcpv4.MessageTypeInform + 1]prometheus.Counter
	dropsByReason                 map[string]prometheus.Counter
}

// request counts a request of type t.
func (m *metrics) request(t dhcpv4.MessageType) { m.requestsByType[typeIndex(t)].Inc() }

// reply counts a reply of type t.
func (m *metrics) reply(t dhcpv4.MessageType) { m.repliesByType[typeIndex(t)].Inc() }

// drop counts a request dropped for reason; a reason outside the fixed
// set counts as "other".
func (m *metrics) drop(reason string) {
	c, ok := m.dropsByReason[reason]
	if !ok {
		c = m.dropsByReason[dropOther]
	}
	c.Inc()
}

// resolve fills the pre-resolved counters from the vectors.
func (m *metrics) resolve() {
	for i := range m.requestsByType {
		label := typeLabel(dhcpv4.MessageType(i))
		m.requestsByType[i] = m.requests.WithLabelValues(label)
		m.repliesByType[i] = m.replies.WithLabelValues(label)
	}
	m.dropsByReason = map[string]prometheus.Counter{}
	for _, r := range []string{dropMalformed, dropUnknownRelay, dropRelayRefused, dropNoSegment, dropWrongPort, dropPolicy,
		dropExhausted, dropSilent, dropStoreError, dropUnsupported, dropShutdown, dropPanic, dropNoReply, dropOther} {
		m.dropsByReason[r] = m.drops.WithLabelValues(r)
	}
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
	var err error
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.replies, &m.drops} {
		if *c, err = promx.Register(reg, *c); err != nil {
			return nil, fmt.Errorf("register dhcp metrics: %w", err)
		}
	}
	m.resolve()
	return m, nil
}

// typeLabel bounds the "type" label to the DHCP message types of RFC 2132.
func typeLabel(t dhcpv4.MessageType) string {
	if typeIndex(t) == 0 {
		return "other"
	}
	return t.String()
}

// typeIndex is t's index in the byType counters: 0 for "other".
func typeIndex(t dhcpv4.MessageType) int {
	if t < dhcpv4.MessageTypeDiscover || t > dhcpv4.MessageTypeInform {
		return 0
	}
	return int(t)
}
