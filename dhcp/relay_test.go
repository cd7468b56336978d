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
)

// relayedPXE is a relayed DISCOVER's options: a UEFI PXE client behind the
// relay 10.88.0.1 (giaddr in the relayed discovery segment "remote").
func relayedPXE() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_X86_64), dhcpv4.WithGatewayIP(net.IPv4(10, 88, 0, 1)),
		func(d *dhcpv4.DHCPv4) { d.HopCount = 1 }}
}

// noTrace fails when mac has a machine record or a lease anywhere.
func noTrace(t *testing.T, f *fixture, mac net.HardwareAddr) {
	t.Helper()
	if m, err := f.db.GetMachine(mac.String()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s has a record: %+v (%v)", mac, m, err)
	}
	leases, err := f.db.ListLeases("")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.MAC == mac.String() {
			t.Errorf("%s holds lease %+v", mac, l)
		}
	}
}

// TestRelayedAcceptedOnlyFromConfiguredRelays: a relayed packet (giaddr
// set) is answered only on a relay interface and from an allowed source;
// refused ones leave no record and no lease, and count as relay_refused.
func TestRelayedAcceptedOnlyFromConfiguredRelays(t *testing.T) {
	labHost := mustAddr("10.77.0.50")
	tests := []struct {
		name     string
		relays   Relays
		listener func(*fixture) *listener
		src      netip.Addr
		answered bool
	}{
		{"relay interface, allowed source", Relays{Interfaces: []string{"relay0"}, Sources: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/30")}},
			func(f *fixture) *listener { return f.byIf["relay0"] }, relaySrc, true},
		{"relay interface, any source allowed", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.byIf["relay0"] }, mustAddr("192.0.2.9"), true},
		{"relay interface, source not listed", Relays{Interfaces: []string{"relay0"}, Sources: []netip.Prefix{netip.PrefixFrom(relaySrc, 32)}},
			func(f *fixture) *listener { return f.byIf["relay0"] }, mustAddr("10.99.0.3"), false},
		{"relay interface, source 0.0.0.0", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.byIf["relay0"] }, netip.IPv4Unspecified(), false},
		{"relay interface, source unknown", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.byIf["relay0"] }, netip.Addr{}, false},
		// The attack of issue 9: a host on a segment forges a relay's
		// packet for another segment.
		{"non-discovery segment's interface", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.byIf["veth1"] }, netip.Addr{}, false},
		{"discovery segment's interface", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.byIf["veth0"] }, netip.Addr{}, false},
		{"proxy segment's port 4011", Relays{Interfaces: []string{"relay0"}},
			func(f *fixture) *listener { return f.pxe["veth2"] }, netip.Addr{}, false},
		// veth0 listed: relays send to its address, where our socket sees
		// the source; coredhcp's 0.0.0.0 socket cannot, so it refuses.
		{"listed segment interface, relay socket, allowed source", Relays{Interfaces: []string{"veth0"}, Sources: []netip.Prefix{netip.PrefixFrom(relaySrc, 32)}},
			func(f *fixture) *listener { return f.bound["veth0"] }, relaySrc, true},
		{"listed segment interface, relay socket, lab host", Relays{Interfaces: []string{"veth0"}, Sources: []netip.Prefix{netip.PrefixFrom(relaySrc, 32)}},
			func(f *fixture) *listener { return f.bound["veth0"] }, labHost, false},
		{"listed segment interface, coredhcp socket", Relays{Interfaces: []string{"veth0"}},
			func(f *fixture) *listener { return f.byIf["veth0"] }, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(s *Server) { s.Relays = tt.relays })
			l := tt.listener(f)
			if l == nil {
				t.Fatal("fixture has no such listener")
			}
			// The REQUEST selects what the OFFER gave, or what a forger
			// would guess.
			yi, sid := net.IPv4(10, 88, 0, 100), net.IPv4(10, 99, 0, 1)
			for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
				mods := relayedPXE()
				if mt == dhcpv4.MessageTypeRequest {
					mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)))
				}
				before := drops(f, dropRelayRefused)
				r := f.sendFrom(t, l, tt.src, pkt(t, mt, testMAC, mods...))
				if r != nil && mt == dhcpv4.MessageTypeDiscover {
					yi, sid = r.YourIPAddr, r.ServerIdentifier()
				}
				switch {
				case tt.answered && (r == nil || r.MessageType() == dhcpv4.MessageTypeNak || !netip.MustParsePrefix("10.88.0.0/24").Contains(fromIP(r.YourIPAddr))):
					t.Fatalf("%v: want an answer from segment remote, got %v", mt, r)
				case !tt.answered && r != nil:
					t.Fatalf("%v answered:\n%s", mt, r.Summary())
				case !tt.answered && drops(f, dropRelayRefused) != before+1:
					t.Errorf("%v: drops{relay_refused} = %v, want %v", mt, drops(f, dropRelayRefused), before+1)
				}
			}
			if tt.answered {
				if m, err := f.db.GetMachine(testMAC.String()); err != nil || m.Segment != "remote" {
					t.Errorf("relayed discovery record: %+v %v", m, err)
				}
				return
			}
			noTrace(t, f, testMAC)
		})
	}
}

// TestRelaySocketServesTheSegmentsUnicasts: the socket on the address of
// a listed segment interface also receives the segment's own unicasts (a
// renewal), which must be answered as coredhcp's socket would.
func TestRelaySocketServesTheSegmentsUnicasts(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.Relays = Relays{Interfaces: []string{"veth0"}} })
	offer := f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxeBIOS, arch(0)))
	if offer == nil {
		t.Fatal("no OFFER")
	}
	ack := f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeRequest, testMAC, pxeBIOS, arch(0),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %v", ack)
	}
	renew := pkt(t, dhcpv4.MessageTypeRequest, testMAC, pxeBIOS, arch(0), dhcpv4.WithClientIP(ack.YourIPAddr))
	r := f.sendFrom(t, f.bound["veth0"], fromIP(ack.YourIPAddr), renew)
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(ack.YourIPAddr) {
		t.Fatalf("renewal through the relay socket: %v", r)
	}
	if to := replyTo(renew, r); !to.IP.Equal(ack.YourIPAddr) || to.Port != dhcpv4.ClientPort {
		t.Errorf("renewal ACK sent to %v, want the client's address", to)
	}
}

// TestNoRecordWithoutBootingReply: the discovered record is created only
// when a reply that boots the machine goes out; a MAC refused an address
// (pool exhausted, NAK) gets none.
func TestNoRecordWithoutBootingReply(t *testing.T) {
	f := newFixture(t, func(s *Server) {
		s.Segments[0].RangeEnd = s.Segments[0].RangeStart // lab: one address
	})
	l := f.byIf["veth0"]
	first, second := net.HardwareAddr{0x52, 0x54, 0, 0, 0xe0, 1}, net.HardwareAddr{0x52, 0x54, 0, 0, 0xe0, 2}
	offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, first, pxeBIOS, arch(0)))
	if offer == nil || offer.BootFileName == "" {
		t.Fatalf("first MAC: no booting OFFER: %v", offer)
	}
	if _, err := f.db.GetMachine(first.String()); err != nil {
		t.Fatalf("first MAC: no record at the OFFER: %v", err)
	}
	if ack := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, first, pxeBIOS, arch(0),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("first MAC: no ACK: %v", ack)
	}

	before := drops(f, dropExhausted)
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, second, pxeBIOS, arch(0))); r != nil {
		t.Fatalf("second MAC got an OFFER from an exhausted pool:\n%s", r.Summary())
	}
	if drops(f, dropExhausted) != before+1 {
		t.Errorf("exhaustion not counted")
	}
	// INIT-REBOOT for the address the first MAC holds: NAK, which boots
	// nothing.
	nak := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, second, pxeBIOS, arch(0),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("second MAC's REQUEST: want NAK, got %v", nak)
	}
	noTrace(t, f, second)
}

// TestRelayRefusalWarningsRateLimited: every refused packet is counted,
// but a flood logs one warning per interval, with how many were held back.
func TestRelayRefusalWarningsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	f := newFixture(t, func(s *Server) { s.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	forge := func(n int) {
		for i := 0; i < n; i++ {
			f.send(t, f.byIf["veth1"], pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{0x52, 0x54, 0, 0, 0xf0, byte(i)}, relayedPXE()...))
		}
	}
	forge(50)
	if got := drops(f, dropRelayRefused); got != 50 {
		t.Errorf("drops{relay_refused} = %v, want 50", got)
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "reason=relay_refused") {
				out = append(out, l)
			}
		}
		return out
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "level=WARN") || !strings.Contains(l[0], "not in dhcp.relay_interfaces") {
		t.Fatalf("after 50 refusals, log lines:\n%s", strings.Join(l, "\n"))
	}
	f.clk.advance(warnEvery + time.Second)
	forge(1)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "held_back=49") {
		t.Fatalf("after the interval, log lines:\n%s", strings.Join(l, "\n"))
	}
}

func TestReplyTo(t *testing.T) {
	mk := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(testMAC)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	gi, ci := dhcpv4.WithGatewayIP(net.IPv4(10, 88, 0, 1)), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 120))
	ack, nak := dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithMessageType(dhcpv4.MessageTypeNak)
	tests := []struct {
		name       string
		req, reply *dhcpv4.DHCPv4
		want       string
		broadcast  bool
	}{
		{"relayed", mk(gi, ci), mk(ack), "10.88.0.1:67", false},
		{"relayed NAK goes to the relay", mk(gi), mk(nak), "10.88.0.1:67", false},
		{"NAK", mk(ci), mk(nak), "255.255.255.255:68", false},
		{"client with an address", mk(ci), mk(ack), "10.77.0.120:68", false},
		{"broadcast flag", mk(dhcpv4.WithBroadcast(true)), mk(ack), "255.255.255.255:68", false},
		{"no address, no flag: broadcast with the flag", mk(), mk(ack), "255.255.255.255:68", true},
	}
	for _, tt := range tests {
		if got := replyTo(tt.req, tt.reply).String(); got != tt.want {
			t.Errorf("%s: to %s, want %s", tt.name, got, tt.want)
		}
		if tt.broadcast && !tt.reply.IsBroadcast() {
			t.Errorf("%s: reply without the broadcast flag", tt.name)
		}
	}
}
