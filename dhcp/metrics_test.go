package dhcp

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsPreResolved: the pre-resolved counters are the children of
// the exported vectors, "other" included.
func TestMetricsPreResolved(t *testing.T) {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.request(dhcpv4.MessageTypeDiscover)
	m.request(dhcpv4.MessageType(42))
	m.reply(dhcpv4.MessageTypeAck)
	m.drop(dropPanic)
	m.drop("unlisted")
	for _, c := range []struct {
		got  float64
		what string
	}{
		{testutil.ToFloat64(m.requests.WithLabelValues("DISCOVER")), "DISCOVER"},
		{testutil.ToFloat64(m.requests.WithLabelValues("other")), "other"},
		{testutil.ToFloat64(m.replies.WithLabelValues("ACK")), "ACK"},
		{testutil.ToFloat64(m.drops.WithLabelValues(dropPanic)), dropPanic},
		{testutil.ToFloat64(m.drops.WithLabelValues("unlisted")), "unlisted"},
	} {
		if c.got != 1 {
			t.Errorf("%s counted %v times, want 1", c.what, c.got)
		}
	}
}
