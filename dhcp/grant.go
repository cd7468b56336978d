package dhcp

import (
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Granter is told which MAC was just given a boot, at which address
// (bootgrant.Table satisfies it).
type Granter interface {
	Grant(mac string, ip netip.Addr)
}

// granted tells the granter about a reply that carries a boot: an ACK
// gives the address the client now has (yiaddr, or its ciaddr when it
// already had one, as on proxyDHCP's port 4011); an OFFER proves nothing
// about an address yet, except in proxy mode, where no ACK on port 67 will
// follow and the neighbour table must vouch for the address later.
func (in *instance) granted(req, reply *dhcpv4.DHCPv4) {
	if in.grants == nil || (reply.BootFileName == "" && reply.BootFileNameOption() == "") {
		return
	}
	mac := req.ClientHWAddr.String()
	switch reply.MessageType() {
	case dhcpv4.MessageTypeAck:
		ip := fromIP(reply.YourIPAddr)
		if !ip.IsValid() {
			ip = fromIP(req.ClientIPAddr)
		}
		in.grants.Grant(mac, ip)
	case dhcpv4.MessageTypeOffer:
		if !fromIP(reply.YourIPAddr).IsValid() {
			in.grants.Grant(mac, netip.Addr{})
		}
	}
}
