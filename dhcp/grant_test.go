package dhcp

import (
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

type grantLog struct {
	mu  sync.Mutex
	got []string
}

func (g *grantLog) Grant(mac string, ip netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, mac+"@"+ip.String())
}

func (g *grantLog) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.got
	g.got = nil
	return out
}

// Only a reply that boots the machine grants it a nonce, and only with the
// address the client has: the ACK's in dhcp mode, ciaddr on port 4011,
// none (the neighbour table decides later) for a proxy OFFER.
func TestGrantsFollowBootAnswers(t *testing.T) {
	log := &grantLog{}
	f := newFixture(t, func(s *Server) { s.Grants = log })
	pxe := []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC)}
	mac := testMAC.String()

	offer := f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxe...))
	if g := log.take(); len(g) != 0 {
		t.Errorf("a dhcp-mode OFFER granted %v", g)
	}
	ack := f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeRequest, testMAC, append(pxe,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))...))
	if g := log.take(); len(g) != 1 || g[0] != mac+"@"+fromIP(ack.YourIPAddr).String() {
		t.Errorf("ACK granted %v, want %s@%s", g, mac, fromIP(ack.YourIPAddr))
	}

	// The same machine, still waiting for approval, on a segment without
	// discovery: an address, no boot, so no grant.
	o := f.send(t, f.byIf["veth1"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxe...))
	if o == nil {
		t.Fatal("no OFFER on prod")
	}
	r := f.send(t, f.byIf["veth1"], pkt(t, dhcpv4.MessageTypeRequest, testMAC, append(pxe,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(o.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))...))
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck || r.BootFileName != "" || !fromIP(r.YourIPAddr).IsValid() {
		t.Fatalf("want an ACK with an address and no boot off discovery segments: %v", r)
	}
	if g := log.take(); len(g) != 0 {
		t.Errorf("a reply without a boot granted %v", g)
	}

	// proxyDHCP: the OFFER has no address; the port 4011 ACK has ciaddr.
	if f.send(t, f.byIf["veth2"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxeUEFI, arch(iana.EFI_X86_64))) == nil {
		t.Fatal("no proxy OFFER")
	}
	if g := log.take(); len(g) != 1 || g[0] != mac+"@invalid IP" {
		t.Errorf("proxy OFFER granted %v, want one grant without address", g)
	}
	req := pkt(t, dhcpv4.MessageTypeRequest, testMAC, pxeUEFI, arch(iana.EFI_X86_64), dhcpv4.WithClientIP(net.IPv4(10, 79, 0, 50)))
	if f.send(t, f.pxe["veth2"], req) == nil {
		t.Fatal("no port 4011 ACK")
	}
	if g := log.take(); len(g) != 1 || g[0] != mac+"@10.79.0.50" {
		t.Errorf("port 4011 ACK granted %v", g)
	}
}
