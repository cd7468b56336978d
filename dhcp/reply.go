package dhcp

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/foundry-appliance/foundry/names"
)

// pxeDiscoveryControl is option 43 with PXE_DISCOVERY_CONTROL (sub-option
// 6) = 8: "use the boot file in this packet, skip boot server discovery"
// (PXE 2.1 §2.4.6), so firmware boots from our offer.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// maxFileField is the longest boot file that fits the BOOTP file field
// with its terminating NUL.
const maxFileField = 127

func ip4(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IPv4zero.To4()
	}
	b := a.As4()
	return net.IP(b[:])
}

// newReply is dhcpv4.NewReplyFromRequest without what it does first:
// New draws a random transaction ID (a getrandom call under a context
// with a timer) that the reply's WithReply then overwrites with the
// request's. Twice per DORA that was a measurable part of the server's CPU
// (bench/README.md). The reply is the same packet (FuzzNewReply).
func newReply(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	op := dhcpv4.OpcodeBootRequest
	if req.OpCode == dhcpv4.OpcodeBootRequest {
		op = dhcpv4.OpcodeBootReply
	}
	resp := &dhcpv4.DHCPv4{
		OpCode:        op,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       make(dhcpv4.Options, 8),
	}
	// RFC 3046 §2.2 (relay agent information) and RFC 6842 (client
	// identifier): echoed as the library does.
	for _, code := range [...]dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(code); v != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	return resp
}

// fromIP converts a packet address; the zero Addr means absent or 0.0.0.0.
func fromIP(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// replyParams is what goes into a reply besides the message type.
type replyParams struct {
	Seg      *Segment
	ServerIP netip.Addr
	// YourIP is the address given (zero in proxy mode and for INFORM).
	YourIP netip.Addr
	// Config adds the segment's network options (1, 3, 6, 15).
	Config bool
	// Lease adds the lease time and T1/T2 (51, 58, 59).
	Lease time.Duration
	Boot  decision
}

// fillReply writes p into resp, which coredhcp built from req with the
// transaction id, chaddr, giaddr, flags and options 61 and 82 copied.
func fillReply(req, resp *dhcpv4.DHCPv4, mt dhcpv4.MessageType, p replyParams) {
	resp.UpdateOption(dhcpv4.OptMessageType(mt))
	resp.YourIPAddr = ip4(p.YourIP)
	// siaddr is the TFTP next-server, and also the IP source address of
	// the raw frame coredhcp sends to a client without an address: it is
	// ours in every reply, booting or not.
	resp.ServerIPAddr = ip4(p.ServerIP)
	resp.BootFileName = ""
	resp.UpdateOption(dhcpv4.OptServerIdentifier(ip4(p.ServerIP)))
	copyRelayInfo(req, resp)
	if p.Config {
		seg := p.Seg
		resp.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(seg.Subnet.Bits(), 32)))
		if seg.Router.IsValid() {
			resp.UpdateOption(dhcpv4.OptRouter(ip4(seg.Router)))
		}
		if len(seg.DNS) > 0 {
			dns := make([]net.IP, len(seg.DNS))
			for i, d := range seg.DNS {
				dns[i] = ip4(d)
			}
			resp.UpdateOption(dhcpv4.OptDNS(dns...))
		}
		if seg.DomainName != "" {
			resp.UpdateOption(dhcpv4.OptDomainName(seg.DomainName))
		}
	}
	if p.Lease > 0 {
		resp.UpdateOption(dhcpv4.OptIPAddressLeaseTime(p.Lease))
		resp.UpdateOption(dhcpv4.OptRenewTimeValue(p.Lease / 2))
		resp.UpdateOption(dhcpv4.OptRebindingTimeValue(p.Lease / 8 * 7))
	}
	if b := p.Boot; b.BootFile != "" {
		if len(b.BootFile) <= maxFileField {
			resp.BootFileName = b.BootFile
		}
		resp.UpdateOption(dhcpv4.OptBootFileName(b.BootFile))
		resp.UpdateOption(dhcpv4.OptClassIdentifier(b.Vendor))
		if b.Vendor == vendorPXE {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
		}
		// PXE 2.1 §2.2: the client machine identifier is echoed.
		if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
		}
	}
}

// fillNak turns resp into a DHCPNAK carrying only what RFC 2131 table 3
// allows: message type, server identifier, message, client id and relay
// information.
func fillNak(req, resp *dhcpv4.DHCPv4, serverIP netip.Addr, reason string) {
	resp.Options = dhcpv4.Options{}
	resp.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(ip4(serverIP)))
	resp.UpdateOption(dhcpv4.OptMessage(reason))
	if id := req.Options.Get(dhcpv4.OptionClientIdentifier); id != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientIdentifier, id))
	}
	copyRelayInfo(req, resp)
	resp.YourIPAddr = net.IPv4zero.To4()
	resp.ClientIPAddr = net.IPv4zero.To4()
	resp.ServerIPAddr = net.IPv4zero.To4()
	resp.BootFileName = ""
	resp.ServerHostName = ""
}

// copyRelayInfo echoes option 82 (RFC 3046 §2.2).
func copyRelayInfo(req, resp *dhcpv4.DHCPv4) {
	if v := req.Options.Get(dhcpv4.OptionRelayAgentInformation); v != nil {
		resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, v))
	}
}

// validHostname keeps option 12 only when it is a host name by the one
// rule, names.Hostname (RFC 1123; a client may send its FQDN, RFC 2132
// §3.14). It is stored with the lease and shown in the API, so anything
// else is dropped, not repaired: a repaired name is one the client never
// had. Callers should store the lower-cased form names.Hostname returns.
func validHostname(s string) bool {
	_, err := names.Hostname(s)
	return err == nil
}
