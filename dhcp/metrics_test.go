package dhcp

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsPreResolved: the pre-resolved counters are the children of
// the exported vectors, "other" included, and a reason outside the fixed
// set adds no series.
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
	if n := testutil.CollectAndCount(m.drops); n != 18 {
		t.Errorf("%d drop series, want the 18 fixed reasons", n)
	}
	for _, c := range []struct {
		got  float64
		what string
	}{
		{testutil.ToFloat64(m.requests.WithLabelValues("DISCOVER")), "DISCOVER"},
		{testutil.ToFloat64(m.requests.WithLabelValues("other")), "other"},
		{testutil.ToFloat64(m.replies.WithLabelValues("ACK")), "ACK"},
		{testutil.ToFloat64(m.drops.WithLabelValues(dropPanic)), dropPanic},
		{testutil.ToFloat64(m.drops.WithLabelValues(dropOther)), "unlisted"},
	} {
		if c.got != 1 {
			t.Errorf("%s counted %v times, want 1", c.what, c.got)
		}
	}
}

// TestMetricsSharedRegistry: a second server on one registry starts, and
// both count into the same series.
func TestMetricsSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := newMetrics(reg)
	if err != nil {
		t.Fatalf("second server on the registry: %v", err)
	}
	first.request(dhcpv4.MessageTypeDiscover)
	second.request(dhcpv4.MessageTypeDiscover)
	second.drop(dropPolicy)
	if got := testutil.ToFloat64(first.requests.WithLabelValues("DISCOVER")); got != 2 {
		t.Errorf("DISCOVER counted %v times in the registered series, want 2", got)
	}
	if got := testutil.ToFloat64(first.drops.WithLabelValues(dropPolicy)); got != 1 {
		t.Errorf("policy drops = %v, want 1", got)
	}
}
