package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/foundry-appliance/foundry/internal/ratelog"
)

// Relays says who may hand Foundry relayed DHCP: a packet with giaddr set
// claims to come from a relay agent on another network, and the appliance
// answers it with an address and a boot from the relayed segment that
// giaddr names. Anyone can write a giaddr, so a relayed packet is accepted
// only where relays are expected (docs/security.md, "DHCP relays").
type Relays struct {
	// Interfaces (dhcp.relay_interfaces) receive relayed packets; on any
	// other interface a packet with giaddr is dropped. A direct segment's
	// own interface is not a relay interface unless it is listed here:
	// otherwise any host of that segment could pose as the relay of
	// another. Default none.
	Interfaces []string
	// Sources (dhcp.relay_sources) are the addresses and networks relay
	// agents send from (the UDP source of a relayed packet); a relayed
	// packet from any other source is dropped. Empty: any source on a
	// relay interface.
	Sources []netip.Prefix
}

// receives reports whether relayed packets are accepted on iface.
func (r Relays) receives(iface string) bool { return slices.Contains(r.Interfaces, iface) }

// allows reports whether a relayed packet from src is accepted.
func (r Relays) allows(src netip.Addr) bool {
	if !src.Is4() || src.IsUnspecified() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false // no relay agent sends without an address of its own
	}
	if len(r.Sources) == 0 {
		return true
	}
	for _, p := range r.Sources {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// relayRefused says why a relayed packet that arrived on l from src must
// be dropped, or "" when it may be answered. src is the packet's UDP source;
// it is zero where the socket cannot tell it (coredhcp's listeners, whose
// plugin API passes only the message: server/handle.go at the pinned
// version reads the peer but hands plugins req and resp alone).
func (l *listener) relayRefused(src netip.Addr) string {
	switch {
	case !l.relays:
		return fmt.Sprintf("relayed packet on %s, which is not in dhcp.relay_interfaces", l.iface)
	case !src.IsValid():
		// A relay unicasts to one of our addresses, where a socket of our
		// own takes the packet and sees its source (listener.bind); this
		// one was sent elsewhere (a broadcast), so its source is unknown.
		return fmt.Sprintf("relayed packet on %s not sent to an address of the interface: its source cannot be checked", l.iface)
	case !l.in.relays.allows(src):
		return fmt.Sprintf("relay source %v is not in dhcp.relay_sources", src)
	}
	return ""
}

// replyTo is where a listener of our own (plugin.go, serveOwn) sends reply
// to req, the order coredhcp's server uses (server/handle.go): the relay
// for a relayed request, broadcast for a NAK, the client's address when it
// has one, broadcast when it asks for it. coredhcp would send anything else
// as a raw frame to yiaddr; our own sockets take only unicasts to our
// address, which a client without an address does not send, so such a
// reply is broadcast with the flag set (RFC 2131 §4.1 allows it).
func replyTo(req, reply *dhcpv4.DHCPv4) *net.UDPAddr {
	switch {
	case !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr.To4() != nil:
		return &net.UDPAddr{IP: req.GatewayIPAddr, Port: dhcpv4.ServerPort}
	case reply.MessageType() == dhcpv4.MessageTypeNak:
		return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	case !req.ClientIPAddr.IsUnspecified() && req.ClientIPAddr.To4() != nil:
		return &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	}
	reply.SetBroadcast()
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// warnEvery is how often one drop reason may log a warning: a flood of
// hostile packets is counted in foundry_dhcp_drops_total, not written to
// the log one line each.
const warnEvery = ratelog.DefaultEvery
