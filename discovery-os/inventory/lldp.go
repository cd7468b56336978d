package inventory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// EtherTypeLLDP is the IEEE 802.1AB ethertype.
const EtherTypeLLDP = 0x88cc

// ErrNotLLDP is wrapped by ParseLLDP errors for frames that are not LLDP.
var ErrNotLLDP = errors.New("not an LLDP frame")

// LLDP TLV types (IEEE 802.1AB-2016 8.4).
const (
	tlvEnd        = 0
	tlvChassisID  = 1
	tlvPortID     = 2
	tlvTTL        = 3
	tlvPortDesc   = 4
	tlvSystemName = 5
	tlvOrg        = 127
)

// ParseLLDP decodes an Ethernet frame (optionally 802.1Q tagged) carrying
// LLDP. The chassis ID and port ID TLVs are mandatory; MAC and network
// address subtypes are printed in their usual notation, the others as text.
func ParseLLDP(frame []byte) (LLDPNeighbor, error) {
	if len(frame) < 14 {
		return LLDPNeighbor{}, fmt.Errorf("%w: %d bytes is shorter than an Ethernet header", ErrNotLLDP, len(frame))
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	off := 14
	if et == 0x8100 && len(frame) >= 18 {
		et = binary.BigEndian.Uint16(frame[16:18])
		off = 18
	}
	if et != EtherTypeLLDP {
		return LLDPNeighbor{}, fmt.Errorf("%w: ethertype %#04x", ErrNotLLDP, et)
	}
	return parseLLDPDU(frame[off:])
}

// parseLLDPDU decodes the TLVs of an LLDP data unit.
func parseLLDPDU(b []byte) (LLDPNeighbor, error) {
	var n LLDPNeighbor
	var haveChassis, havePort bool
	for len(b) > 0 {
		if len(b) < 2 {
			return LLDPNeighbor{}, fmt.Errorf("lldp: truncated TLV header")
		}
		h := binary.BigEndian.Uint16(b)
		typ, length := int(h>>9), int(h&0x1ff)
		if length > len(b)-2 {
			return LLDPNeighbor{}, fmt.Errorf("lldp: TLV type %d claims %d bytes, %d left", typ, length, len(b)-2)
		}
		v := b[2 : 2+length]
		b = b[2+length:]
		switch typ {
		case tlvEnd:
			b = nil
		case tlvChassisID:
			if length < 2 {
				return LLDPNeighbor{}, fmt.Errorf("lldp: chassis ID TLV of %d bytes", length)
			}
			n.ChassisID, haveChassis = idString(v[0], v[1:], 4, 5), true
		case tlvPortID:
			if length < 2 {
				return LLDPNeighbor{}, fmt.Errorf("lldp: port ID TLV of %d bytes", length)
			}
			n.PortID, havePort = idString(v[0], v[1:], 3, 4), true
		case tlvPortDesc:
			n.PortDesc = text(v)
		case tlvSystemName:
			n.SystemName = text(v)
		case tlvOrg:
			// IEEE 802.1 (OUI 00-80-c2) subtype 1: port VLAN ID.
			if length == 6 && v[0] == 0x00 && v[1] == 0x80 && v[2] == 0xc2 && v[3] == 1 {
				n.VLAN = int(binary.BigEndian.Uint16(v[4:6]))
			}
		case tlvTTL:
		}
	}
	if !haveChassis || !havePort {
		return LLDPNeighbor{}, fmt.Errorf("lldp: chassis ID or port ID TLV missing")
	}
	return n, nil
}

// idString renders a chassis or port ID by subtype: macSub and addrSub are
// the subtypes that carry a MAC address and a network address (they differ
// between chassis and port IDs); everything else is text.
func idString(subtype byte, v []byte, macSub, addrSub byte) string {
	switch {
	case subtype == macSub && len(v) == 6:
		return net.HardwareAddr(v).String()
	case subtype == addrSub && len(v) == 5 && v[0] == 1: // IANA family 1: IPv4
		return netip.AddrFrom4([4]byte(v[1:])).String()
	case subtype == addrSub && len(v) == 17 && v[0] == 2: // family 2: IPv6
		return netip.AddrFrom16([16]byte(v[1:])).String()
	}
	return text(v)
}

// text makes a TLV string printable: invalid UTF-8 and control characters
// from the wire never reach a console or a JSON consumer unescaped.
func text(v []byte) string {
	s := strings.ToValidUTF8(string(v), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.TrimRight(s, "\x00"))
}
