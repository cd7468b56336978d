package stormsim

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"
)

// A machine without an address sends its DHCP messages as a firmware
// does: an Ethernet frame from its own MAC to the broadcast address, an
// IPv4 packet from 0.0.0.0:68 to 255.255.255.255:67.
const (
	ethHeader  = 14
	ipHeader   = 20
	udpHeader  = 8
	etherIPv4  = 0x0800
	clientPort = 68
	serverPort = 67
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// encodeFrame wraps msg in Ethernet, IPv4 and UDP headers from src.
func encodeFrame(src net.HardwareAddr, msg *dhcpv4.DHCPv4) []byte {
	payload := msg.ToBytes()
	b := make([]byte, ethHeader+ipHeader+udpHeader+len(payload))
	copy(b[0:6], broadcastMAC)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], etherIPv4)
	ip := b[ethHeader : ethHeader+ipHeader]
	ip[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipHeader+udpHeader+len(payload)))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	// Source 0.0.0.0, destination 255.255.255.255.
	copy(ip[16:20], []byte{255, 255, 255, 255})
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip))
	udp := b[ethHeader+ipHeader : ethHeader+ipHeader+udpHeader]
	binary.BigEndian.PutUint16(udp[0:2], clientPort)
	binary.BigEndian.PutUint16(udp[2:4], serverPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpHeader+len(payload)))
	// A UDP checksum of zero means "none" in IPv4 (RFC 768).
	copy(b[ethHeader+ipHeader+udpHeader:], payload)
	return b
}

// checksum is the Internet checksum of an IPv4 header (RFC 791).
func checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

var errNotDHCPReply = errors.New("not a DHCP reply to a client")

// decodeFrame returns the DHCP message of an Ethernet frame carrying UDP
// to port 68, and the IPv4 source it came from.
func decodeFrame(b []byte) (*dhcpv4.DHCPv4, netip.Addr, error) {
	if len(b) < ethHeader+ipHeader+udpHeader || binary.BigEndian.Uint16(b[12:14]) != etherIPv4 {
		return nil, netip.Addr{}, errNotDHCPReply
	}
	ip := b[ethHeader:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[0]>>4 != 4 || ihl < ipHeader || ip[9] != 17 || total < ihl+udpHeader || total > len(ip) {
		return nil, netip.Addr{}, errNotDHCPReply
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	udp := ip[ihl:total]
	if binary.BigEndian.Uint16(udp[2:4]) != clientPort {
		return nil, netip.Addr{}, errNotDHCPReply
	}
	n := int(binary.BigEndian.Uint16(udp[4:6]))
	if n < udpHeader || n > len(udp) {
		return nil, netip.Addr{}, errNotDHCPReply
	}
	msg, err := dhcpv4.FromBytes(udp[udpHeader:n])
	if err != nil {
		return nil, netip.Addr{}, err
	}
	if msg.OpCode != dhcpv4.OpcodeBootReply {
		return nil, netip.Addr{}, errNotDHCPReply
	}
	return msg, src, nil
}

// replyFilter passes IPv4 UDP to port 68 only, so that the machines'
// TFTP and HTTP traffic on the same interface is never copied to the
// DHCP socket.
func replyFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherIPv4, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ethHeader + 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 17, SkipTrue: 3},
		bpf.LoadMemShift{Off: ethHeader},
		bpf.LoadIndirect{Off: ethHeader + 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: clientPort, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	})
}
