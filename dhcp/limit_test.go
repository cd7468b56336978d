package dhcp

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func limited(f *fixture, seg, reason string) float64 {
	return testutil.ToFloat64(f.in.m.limited.WithLabelValues(seg, reason))
}

// floodMAC is the i-th MAC of a flood (locally administered, unicast).
func floodMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xf1, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

// temporaries counts the temporary records of segment seg.
func temporaries(t *testing.T, f *fixture, seg string) int {
	t.Helper()
	ms, err := f.db.ListMachines()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.Temporary && m.Segment == seg {
			n++
		}
	}
	return n
}

// TestBucketsBounded: a table of random keys never holds more than its
// bound, and a key that keeps sending keeps its (empty) bucket while the
// others churn through.
func TestBucketsBounded(t *testing.T) {
	tb := newBuckets[[6]byte](64)
	r := RateLimit{Rate: 1, Burst: 2}
	now := time.Unix(1000, 0)
	hot := [6]byte(floodMAC(0xffff))
	hotLimited := 0
	for i := range 10000 {
		if _, ok := tb.take([6]byte(floodMAC(i)), now, r, true); !ok {
			t.Fatalf("a new key's first packet was limited")
		}
		if i%16 == 0 {
			if _, ok := tb.take(hot, now, r, true); !ok {
				hotLimited++
			}
		}
		if n := tb.len(); n > 64 {
			t.Fatalf("table holds %d keys, bound 64", n)
		}
	}
	if hotLimited < 600 {
		t.Errorf("the busy key was limited %d times of 625: it lost its bucket in the churn", hotLimited)
	}
	if tracked, ok := tb.take([6]byte(floodMAC(123456)), now, r, false); tracked || !ok {
		t.Errorf("an untracked key without create: tracked %v, ok %v", tracked, ok)
	}
}

// TestBucketRefill: a bucket gives Burst at once, then Rate a second.
func TestBucketRefill(t *testing.T) {
	r := RateLimit{Rate: 10, Burst: 5}
	now := time.Unix(1000, 0)
	b := bucket{tokens: 5, last: now}
	got := 0
	for range 20 {
		if b.take(now, r) {
			got++
		}
	}
	if got != 5 {
		t.Errorf("burst: %d packets, want 5", got)
	}
	now = now.Add(500 * time.Millisecond)
	got = 0
	for range 20 {
		if b.take(now, r) {
			got++
		}
	}
	if got != 5 {
		t.Errorf("after 0.5 s at 10/s: %d packets, want 5", got)
	}
	if b.take(now.Add(-time.Second), r) {
		t.Error("a clock stepping back refilled the bucket")
	}
}

// TestPendingOfferCap: a flood of DISCOVERs from new MACs on a dhcp-mode
// segment holds at most max_pending_offers addresses; a known machine, a
// lease holder renewing and (once the offers' hold ends) a new client are
// still served; a REQUEST that would take an address without an offer is
// dropped and leases nothing.
func TestPendingOfferCap(t *testing.T) {
	f := newFixture(t, func(s *Server) {
		s.Segments[1].AllowUnknown = true // prod: 100 addresses, no discovery
		s.Segments[1].MaxPendingOffers = 10
	})
	l := f.byIf["veth1"]
	holder := floodMAC(0xaaaa)
	offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, holder))
	ack := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, holder, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("lease holder: no ACK: %v", ack)
	}
	known := floodMAC(0xbbbb)
	if _, err := f.db.CreateMachine(store.Machine{MAC: known.String(), Hostname: "known-1", State: store.StateReady}, store.Audit{Actor: "test", Action: "create"}); err != nil {
		t.Fatal(err)
	}

	offered := 0
	for i := range 200 {
		if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(i))); r != nil {
			offered++
		}
	}
	if offered != 10 {
		t.Errorf("the flood got %d offers, want max_pending_offers (10)", offered)
	}
	if n := limited(f, "prod", limitOffers); n != 190 {
		t.Errorf("limited{prod,offer_cap} = %v, want 190", n)
	}
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, known)); r == nil || r.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("a known machine at the cap: %v, want an OFFER", r)
	}
	renew := pkt(t, dhcpv4.MessageTypeRequest, holder, dhcpv4.WithClientIP(ack.YourIPAddr))
	if r := f.send(t, l, renew); r == nil || r.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("the lease holder renewing at the cap: %v, want an ACK", r)
	}
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, holder)); r == nil || !r.YourIPAddr.Equal(ack.YourIPAddr) {
		t.Errorf("the lease holder rediscovering at the cap: %v, want its address offered", r)
	}

	// SELECTING and RENEWING without an offer would each lease an address:
	// SELECTING gets a NAK (back to DISCOVER), RENEWING silence.
	for i, c := range []struct {
		mods []dhcpv4.Modifier
		want dhcpv4.MessageType
	}{
		{[]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 78, 0, 1))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 78, 0, 150)))}, dhcpv4.MessageTypeNak},
		{[]dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 78, 0, 151))}, dhcpv4.MessageTypeNone},
	} {
		r := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, floodMAC(1000+i), c.mods...))
		switch {
		case c.want == dhcpv4.MessageTypeNone && r != nil:
			t.Errorf("unoffered REQUEST %d answered:\n%s", i, r.Summary())
		case c.want != dhcpv4.MessageTypeNone && (r == nil || r.MessageType() != c.want):
			t.Errorf("unoffered REQUEST %d: %v, want a %v", i, r, c.want)
		}
	}
	if n := limited(f, "prod", limitUnoffered); n != 2 {
		t.Errorf("limited{prod,unoffered_request} = %v, want 2", n)
	}
	if leases, _ := f.db.ListLeases("prod"); len(leases) != 1 {
		t.Errorf("%d leases stored, want only the holder's", len(leases))
	}

	// The offers' hold ends: new clients get addresses again.
	f.clk.advance(offerHold + time.Second)
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(5000))); r == nil || r.MessageType() != dhcpv4.MessageTypeOffer {
		t.Errorf("a new client after the holds ended: %v, want an OFFER", r)
	}
}

// TestDiscoveredCap: a flood of new MACs on a discovery segment leaves at
// most max_discovered temporary records; machines with records are still
// answered; approving one frees its place at the next recheck.
func TestDiscoveredCap(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.Segments[0].MaxDiscovered = 20 })
	l := f.byIf["veth0"]
	booted := 0
	for i := range 100 {
		if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(i), pxeBIOS, arch(iana.INTEL_X86PC))); r != nil {
			booted++
		}
	}
	if n := temporaries(t, f, "lab"); booted != 20 || n != 20 {
		t.Errorf("%d answered, %d temporary records; want max_discovered (20) of each", booted, n)
	}
	if n := limited(f, "lab", limitDiscovered); n != 80 {
		t.Errorf("limited{lab,discovered_cap} = %v, want 80", n)
	}
	if n := testutil.ToFloat64(f.in.m.limited.WithLabelValues("prod", limitDiscovered)); n != 0 {
		t.Errorf("another segment counted %v", n)
	}
	// A discovered machine (a record of the 20) still gets its answer.
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(3), pxeBIOS, arch(iana.INTEL_X86PC))); r == nil {
		t.Error("a discovered machine at the cap got no answer")
	}
	// Approve one (no longer temporary): a place is free after a recheck.
	if _, err := f.db.UpdateMachine(floodMAC(0).String(), store.Audit{Actor: "test", Action: "keep"}, func(m *store.Machine) error {
		m.Temporary, m.ExpiresAt = false, time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.clk.advance(recheckEvery)
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(500), pxeBIOS, arch(iana.INTEL_X86PC))); r == nil {
		t.Error("no place after approving a discovered machine")
	}
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(501), pxeBIOS, arch(iana.INTEL_X86PC))); r != nil {
		t.Error("a second new MAC got the one free place too")
	}

	// A restart counts the records that exist (from the audit log).
	_, ls, err := f.srv.build([]string{"veth0"}, map[string][]netip.Addr{"veth0": {srvIP},
		"veth1": {mustAddr("10.78.0.1")}, "veth2": {mustAddr("10.79.0.1")}, "relay0": {mustAddr("10.99.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	if n := ls[0].direct.found.count(); n != 20 {
		t.Errorf("after a restart lab counts %d records, want the 20 temporary ones", n)
	}
	if got := testutil.ToFloat64(f.in.m.records.WithLabelValues("lab")); got != 20 {
		t.Errorf("foundry_dhcp_discovered_records{lab} after a restart = %v, want 20", got)
	}
	// Past their expiry, the records no longer count.
	f.clk.advance(DefaultDiscoveryTTL)
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(600), pxeBIOS, arch(iana.INTEL_X86PC))); r == nil {
		t.Error("no place once the records expired")
	}
}

// TestRateLimits: the per-source limit holds new clients of one segment
// and source to its rate, not known machines nor other sources; the
// per-MAC limit holds every client, known ones too.
func TestRateLimits(t *testing.T) {
	f := newFixture(t, func(s *Server) {
		s.Limits = Limits{PerMAC: RateLimit{Rate: 1, Burst: 3}, PerSource: RateLimit{Rate: 10, Burst: 5}}
	})
	l := f.byIf["veth0"]
	known := floodMAC(0xcccc)
	if _, err := f.db.CreateMachine(store.Machine{MAC: known.String(), Hostname: "known-2", State: store.StateReady}, store.Audit{Actor: "test", Action: "create"}); err != nil {
		t.Fatal(err)
	}
	discover := func(mac net.HardwareAddr) *dhcpv4.DHCPv4 {
		return f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, mac, pxeBIOS, arch(iana.INTEL_X86PC)))
	}
	answered := 0
	for i := range 20 {
		if discover(floodMAC(i)) != nil {
			answered++
		}
	}
	if answered != 5 || limited(f, "lab", limitSourceRate) != 15 {
		t.Errorf("%d of 20 new MACs answered, %v limited; want the burst (5) and 15", answered, limited(f, "lab", limitSourceRate))
	}
	if discover(known) == nil {
		t.Error("a known machine was held to the new clients' rate")
	}
	// Another source: the relay's own budget.
	relayed := []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC), dhcpv4.WithGatewayIP(net.IPv4(10, 88, 0, 1))}
	if f.send(t, f.byIf["relay0"], pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(100), relayed...)) == nil {
		t.Error("the relay's first new client was limited by the lab's flood")
	}
	f.clk.advance(time.Second)
	answered = 0
	for i := 200; i < 220; i++ {
		if discover(floodMAC(i)) != nil {
			answered++
		}
	}
	if answered != 5 {
		t.Errorf("a second later: %d new MACs answered, want 5 (the bucket holds 5)", answered)
	}

	// Per MAC: a burst of 3, then 1 a second, known machine or not.
	f.clk.advance(time.Minute)
	got := 0
	for range 10 {
		if discover(known) != nil {
			got++
		}
	}
	if got != 3 || limited(f, "lab", limitMACRate) != 7 {
		t.Errorf("a known MAC sending 10 at once: %d answered, %v limited; want 3 and 7", got, limited(f, "lab", limitMACRate))
	}
	// A MAC limited by its source's rate took no MAC bucket: random MACs
	// do not fill the table.
	if n := f.in.lim.macs.len(); n > 20 {
		t.Errorf("the per-MAC table holds %d MACs after 40 new ones of which 10 passed", n)
	}
	if got := drops(f, dropLimited); got != limited(f, "lab", limitSourceRate)+limited(f, "lab", limitMACRate) {
		t.Errorf("drops_total{limited} = %v, not the sum of the limited counts", got)
	}
}

// TestLimitReport: the limits' log is one line per segment and reason per
// interval, with the count, however many packets there were.
func TestLimitReport(t *testing.T) {
	var buf bytes.Buffer
	f := newFixture(t, func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		s.Segments[0].MaxDiscovered = 1
	})
	for i := range 300 {
		f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeDiscover, floodMAC(i), pxeBIOS, arch(iana.INTEL_X86PC)))
	}
	if n := strings.Count(buf.String(), "dhcp request dropped"); n != 0 {
		t.Errorf("%d per-packet log lines for limited packets", n)
	}
	f.in.reportLimits([]*segState{f.byIf["veth0"].direct})
	f.in.reportLimits([]*segState{f.byIf["veth0"].direct}) // nothing new: no line
	lines := strings.Count(buf.String(), "dhcp requests limited")
	if lines != 1 || !strings.Contains(buf.String(), "segment=lab reason=discovered_cap count=299") {
		t.Errorf("%d report lines, want 1 with count=299:\n%s", lines, buf.String())
	}
}

// TestLimitConfig: every bad value is named by its key, by the same code
// check-config and serve run.
func TestLimitConfig(t *testing.T) {
	seg := labSegment("10.77.0.100", "10.77.0.109")
	for _, tt := range []struct {
		name string
		edit func(*Segment, *Limits)
		key  string
	}{
		{"negative max_discovered", func(s *Segment, _ *Limits) { s.MaxDiscovered = -1 }, "max_discovered"},
		{"pending offers beyond the range", func(s *Segment, _ *Limits) { s.MaxPendingOffers = 11 }, "max_pending_offers"},
		{"pending offers in proxy mode", func(s *Segment, _ *Limits) {
			s.Mode, s.RangeStart, s.RangeEnd, s.MaxPendingOffers = ModeProxy, netip.Addr{}, netip.Addr{}, 5
		}, "max_pending_offers"},
		{"negative burst", func(_ *Segment, l *Limits) { l.PerMAC.Burst = -1 }, "dhcp.rate_limit.per_mac.burst"},
		{"a rate that means off", func(_ *Segment, l *Limits) { l.PerSource.Rate = 0.001 }, "dhcp.rate_limit.per_source.rate"},
		{"tiny MAC table", func(_ *Segment, l *Limits) { l.MACTable = 3 }, "dhcp.rate_limit.mac_table"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, l := seg, Limits{}
			tt.edit(&s, &l)
			srv := &Server{Segments: []Segment{s}, Limits: l, Machines: openStore(t, t.TempDir())}
			srv.Leases = srv.Machines.(LeaseStore)
			err := srv.check()
			var ce ConfigErrors
			if !errors.As(err, &ce) || len(ce) != 1 || ce[0].Key != tt.key {
				t.Fatalf("got %v, want one problem with key %s", err, tt.key)
			}
		})
	}
	for _, tt := range []struct {
		seg  Segment
		want int
	}{
		{labSegment("10.77.0.100", "10.77.0.109"), MinDefaultMaxDiscovered},
		{Segment{Mode: ModeDHCP, RangeStart: mustAddr("10.0.0.1"), RangeEnd: mustAddr("10.0.39.16")}, 10000},
		{Segment{Mode: ModeProxy, Subnet: netip.MustParsePrefix("10.0.0.0/8")}, MaxDefaultMaxDiscovered},
		{Segment{MaxDiscovered: 7}, 7},
	} {
		if got := tt.seg.maxDiscovered(); got != tt.want {
			t.Errorf("max_discovered of %+v: %d, want %d", tt.seg, got, tt.want)
		}
	}
}
