package dhcp

import (
	"net"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// The DHCP layer is where a machine's address, firmware and last contact
// arise, so it writes them to the record — without a write per packet.
func TestHandlerRecordsSightings(t *testing.T) {
	f := newFixture(t, nil)
	l := f.byIf["veth0"]
	mac := testMAC.String()
	dora := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		t.Helper()
		offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, testMAC, mods...))
		if offer == nil {
			t.Fatal("no OFFER")
		}
		ack := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, testMAC, append(mods,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))...))
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("no ACK: %v", ack)
		}
		return ack
	}
	get := func() store.Machine {
		t.Helper()
		m, err := f.db.GetMachine(mac)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	ack := dora(pxeBIOS, arch(iana.INTEL_X86PC))
	m := get()
	if m.IP != fromIP(ack.YourIPAddr).String() || m.Client != "pxe" || m.Arch != "bios" || m.Segment != "lab" {
		t.Fatalf("after firmware DORA: ip %q client %q arch %q segment %q; want %s pxe bios lab", m.IP, m.Client, m.Arch, m.Segment, fromIP(ack.YourIPAddr))
	}
	rev := m.Revision

	// iPXE takes over: the client kind changes, so the record is written.
	f.clk.advance(5 * time.Second)
	dora(pxeBIOS, arch(iana.INTEL_X86PC), ipxePlain)
	if m = get(); m.Client != "ipxe" || m.Revision == rev || !m.LastSeen.Equal(f.clk.t) {
		t.Fatalf("after iPXE DORA: client %q revision %d (was %d) last seen %v (now %v)", m.Client, m.Revision, rev, m.LastSeen, f.clk.t)
	}
	rev = m.Revision

	// The same again within a minute changes nothing and writes nothing.
	f.clk.advance(10 * time.Second)
	dora(pxeBIOS, arch(iana.INTEL_X86PC), ipxePlain)
	if m = get(); m.Revision != rev {
		t.Fatalf("an unchanged sighting within %v wrote the record (revision %d -> %d)", store.SightingRefresh, rev, m.Revision)
	}

	// After the refresh interval, last-seen moves on.
	f.clk.advance(store.SightingRefresh)
	dora(pxeBIOS, arch(iana.INTEL_X86PC), ipxePlain)
	if m = get(); m.Revision == rev || !m.LastSeen.Equal(f.clk.t) {
		t.Fatalf("stale last-seen not refreshed: %v, now %v", m.LastSeen, f.clk.t)
	}
	// No audit entry for sightings: only the discovery itself.
	if audit, _ := f.db.ListAudit(store.AuditFilter{MAC: mac}); len(audit) != 1 {
		t.Errorf("audit has %d entries, want the discover entry only: %+v", len(audit), audit)
	}

	// Proxy mode: the address is the one the client asks from on port 4011.
	req := pkt(t, dhcpv4.MessageTypeRequest, testMAC, pxeUEFI, arch(iana.EFI_X86_64), dhcpv4.WithClientIP(net.IPv4(10, 79, 0, 50)))
	if f.send(t, f.pxe["veth2"], req) == nil {
		t.Fatal("no port 4011 ACK")
	}
	if m = get(); m.IP != "10.79.0.50" || m.Segment != "px" || m.Arch != "uefi-x64" || m.Client != "pxe" {
		t.Errorf("after proxy request: ip %q segment %q arch %q client %q", m.IP, m.Segment, m.Arch, m.Client)
	}

	// Unknown MACs on a non-discovery segment leave no trace.
	other := net.HardwareAddr{0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc}
	f.send(t, f.byIf["veth1"], pkt(t, dhcpv4.MessageTypeDiscover, other, pxeBIOS, arch(iana.INTEL_X86PC)))
	if _, err := f.db.GetMachine(other.String()); err == nil {
		t.Error("an unknown MAC on a non-discovery segment got a record")
	}
}

// Two MACs with the same last three bytes (other vendor prefixes) are both
// discovered: the second takes the full-MAC name instead of failing.
func TestDiscoverNameCollision(t *testing.T) {
	f := newFixture(t, nil)
	l := f.byIf["veth0"]
	a := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	b := net.HardwareAddr{0x02, 0x00, 0x00, 0x12, 0x34, 0x56}
	for _, hw := range []net.HardwareAddr{a, b} {
		if f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, hw, pxeBIOS, arch(iana.INTEL_X86PC))) == nil {
			t.Fatalf("%s: no OFFER", hw)
		}
	}
	for hw, want := range map[string]string{a.String(): "discovered-123456", b.String(): "discovered-020000123456"} {
		m, err := f.db.GetMachine(hw)
		if err != nil || m.Hostname != want {
			t.Errorf("%s: hostname %q, %v; want %s", hw, m.Hostname, err, want)
		}
	}
}
