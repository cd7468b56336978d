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
	// dropStoreDown: the store is unavailable (store.ErrUnavailable: etcd
	// unreachable or without quorum); only renewals of live leases are
	// answered then (leasereq.go, renewsFromMemory).
	dropStoreDown   = "store_unavailable"
	dropUnsupported = "unsupported_type"
	dropShutdown    = "shutdown"
	dropPanic       = "panic"
	dropNoReply     = "no_reply_type"
	// dropPeer: a DISCOVER or INIT-REBOOT REQUEST of a client the DHCP
	// pair's other server answers (pair.go).
	dropPeer = "peer"
	// dropLimited: a rate limit or a cap (limit.go); which one, and on
	// which segment, is counted in foundry_dhcp_limited_total.
	dropLimited = "limited"
	// dropOther counts a reason missing from the list above: a new reason
	// must be added there before it gets its own series.
	dropOther = "other"
)

// Reasons of foundry_dhcp_limited_total, a fixed set.
const (
	// limitMACRate: the client's MAC is over its rate (Limits.PerMAC).
	limitMACRate = "mac_rate"
	// limitSourceRate: a new client's source is over its rate
	// (Limits.PerSource).
	limitSourceRate = "source_rate"
	// limitDiscovered: the segment holds MaxDiscovered temporary records.
	limitDiscovered = "discovered_cap"
	// limitOffers: the pool has MaxPendingOffers outstanding offers.
	limitOffers = "offer_cap"
	// limitUnoffered: a REQUEST from a new client that holds no offer or
	// lease of ours (it would take an address without an offer).
	limitUnoffered = "unoffered_request"
)

var limitReasons = []string{limitMACRate, limitSourceRate, limitDiscovered, limitOffers, limitUnoffered}

// metrics counts what the server sees and does. The per-label counters
// are resolved once: WithLabelValues hashes the labels and takes a lock on
// every call, which the packet path need not pay.
type metrics struct {
	requests *prometheus.CounterVec
	replies  *prometheus.CounterVec
	drops    *prometheus.CounterVec
	limited  *prometheus.CounterVec
	// records is foundry_dhcp_discovered_records: the temporary records
	// each segment counts against MaxDiscovered.
	records *prometheus.GaugeVec
	// keptRenewals is foundry_dhcp_renewed_from_memory_total: ACKs that
	// renewed a stored lease from memory because the store refused the
	// write (keptOnRefusal).
	keptRenewals prometheus.Counter

	// byType are the requests and replies counters indexed by message
	// type (1-8); index 0 is "other".
	requestsByType, repliesByType [dhcpv4.MessageTypeInform + 1]prometheus.Counter
	dropsByReason                 map[string]prometheus.Counter
	// limitedBy are the limited counters by segment and reason, resolved
	// for the configured segments (segmentMetrics).
	limitedBy map[string]map[string]prometheus.Counter
}

// segmentMetrics resolves the per-segment series of segs.
func (m *metrics) segmentMetrics(segs []Segment) {
	m.limitedBy = map[string]map[string]prometheus.Counter{}
	for _, s := range segs {
		by := map[string]prometheus.Counter{}
		for _, r := range limitReasons {
			by[r] = m.limited.WithLabelValues(s.Name, r)
		}
		m.limitedBy[s.Name] = by
		m.records.WithLabelValues(s.Name)
	}
}

// limit counts a packet dropped on segment seg for a limit reason (the
// handler counts it in drops_total{reason="limited"} too).
func (m *metrics) limit(seg, reason string) {
	if c := m.limitedBy[seg][reason]; c != nil {
		c.Inc()
	}
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
		dropExhausted, dropSilent, dropStoreError, dropStoreDown, dropUnsupported, dropShutdown, dropPanic, dropNoReply, dropPeer, dropLimited, dropOverload, dropOther} {
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
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "limited_total",
			Help: "DHCP requests dropped by a rate limit or a cap, by segment and reason (mac_rate, source_rate, discovered_cap, offer_cap, unoffered_request).",
		}, []string{"segment", "reason"}),
		records: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "discovered_records",
			Help: "Temporary machine records DHCP counts against the segment's max_discovered.",
		}, []string{"segment"}),
		keptRenewals: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "dhcp", Name: "renewed_from_memory_total",
			Help: "DHCP ACKs that renewed a stored lease from memory, for the time it had left, because the store refused the write (full data disk, store unavailable).",
		}),
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.requests, &m.replies, &m.drops, &m.limited} {
		if *c, err = promx.Register(reg, *c); err != nil {
			return nil, fmt.Errorf("register dhcp metrics: %w", err)
		}
	}
	if m.records, err = promx.Register(reg, m.records); err != nil {
		return nil, fmt.Errorf("register dhcp metrics: %w", err)
	}
	if m.keptRenewals, err = promx.Register(reg, m.keptRenewals); err != nil {
		return nil, fmt.Errorf("register dhcp metrics: %w", err)
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
