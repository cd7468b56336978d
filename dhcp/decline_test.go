package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"
)

// ipv4UDP wraps a DHCP message in the IPv4 and UDP headers a packet socket
// of type SOCK_DGRAM returns: 0.0.0.0:68 → 255.255.255.255:67.
func ipv4UDP(msg []byte) []byte {
	p := make([]byte, 28+len(msg))
	p[0], p[8], p[9] = 0x45, 64, ipProtoUDP
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[16:20], net.IPv4bcast.To4())
	binary.BigEndian.PutUint16(p[20:], dhcpv4.ClientPort)
	binary.BigEndian.PutUint16(p[22:], dhcpv4.ServerPort)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(msg)))
	copy(p[28:], msg)
	return p
}

// rawMsg is a BOOTREQUEST header and cookie followed by raw option bytes,
// for option layouts dhcpv4's serializer would not produce.
func rawMsg(opts ...byte) []byte {
	m := make([]byte, bootpOptions, bootpOptions+len(opts))
	m[0], m[1], m[2] = byte(dhcpv4.OpcodeBootRequest), 1, 6
	copy(m[28:], testMAC)
	binary.BigEndian.PutUint32(m[bootpCookie:], 0x63825363)
	return append(m, opts...)
}

func msgOf(t testing.TB, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p.ToBytes()
}

func TestDeclineFilter(t *testing.T) {
	const host, bcast, otherHost, outgoing = 0, 1, 3, 4
	decline := ipv4UDP(msgOf(t, dhcpv4.MessageTypeDecline))
	discover := ipv4UDP(msgOf(t, dhcpv4.MessageTypeDiscover))
	// Option 50 sorts before 53: the type is not the first option.
	declineLate := ipv4UDP(msgOf(t, dhcpv4.MessageTypeDecline, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120)))))
	discoverLate := ipv4UDP(msgOf(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120)))))
	if declineLate[28+bootpOptions] == byte(dhcpv4.OptionDHCPMessageType) {
		t.Fatal("fixture: option 53 is first; the late cases test nothing")
	}
	edit := func(p []byte, f func([]byte)) []byte { p = append([]byte(nil), p...); f(p); return p }
	tests := []struct {
		name    string
		pkttype uint32
		pkt     []byte
		keep    bool
	}{
		{"broadcast DECLINE", bcast, decline, true},
		{"relayed DECLINE to this host", host, decline, true},
		{"DECLINE with the type after other options", bcast, declineLate, true},
		{"DISCOVER with the type first", bcast, discover, false},
		{"DISCOVER with the type later goes to the reader's scan", bcast, discoverLate, true},
		{"DECLINE to another host (promiscuous)", otherHost, decline, false},
		{"our own outgoing DECLINE", outgoing, decline, false},
		{"TCP", bcast, edit(decline, func(p []byte) { p[9] = 6 }), false},
		{"first fragment", bcast, edit(decline, func(p []byte) { p[6] = 0x20 }), false},
		{"later fragment", bcast, edit(decline, func(p []byte) { p[7] = 1 }), false},
		{"don't-fragment flag", bcast, edit(decline, func(p []byte) { p[6] = 0x40 }), true},
		{"to port 68", bcast, edit(decline, func(p []byte) { p[23] = 68 }), false},
		{"to port 4011", bcast, edit(decline, func(p []byte) { binary.BigEndian.PutUint16(p[22:], pxePort) }), false},
		{"BOOTREPLY", bcast, edit(decline, func(p []byte) { p[28] = 2 }), false},
		{"IP options move the UDP header", bcast, func() []byte {
			p := append(append([]byte{0x46, 0, 0, 0}, decline[4:20]...), 1, 1, 1, 0)
			p = append(p, decline[20:]...)
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			return p
		}(), true},
		{"truncated header", bcast, decline[:30], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := declineFilter()
			if _, ok := prog[0].(bpf.LoadExtension); !ok {
				t.Fatalf("instruction 0 is %T, want the pkttype load", prog[0])
			}
			prog[0] = bpf.LoadConstant{Dst: bpf.RegA, Val: tt.pkttype}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm.Run(tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if keep := n >= len(tt.pkt); keep != tt.keep || (n != 0 && n < len(tt.pkt)) {
				t.Errorf("filter kept %d of %d bytes, want keep=%v", n, len(tt.pkt), tt.keep)
			}
		})
	}
	if _, err := bpf.Assemble(declineFilter()); err != nil {
		t.Errorf("assemble: %v", err)
	}
}

func TestDeclineFrom(t *testing.T) {
	decline := msgOf(t, dhcpv4.MessageTypeDecline, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120))))
	pkt := ipv4UDP(decline)
	edit := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), pkt...)) }
	const mt = byte(dhcpv4.OptionDHCPMessageType)
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"DECLINE", pkt, true},
		{"DISCOVER", ipv4UDP(msgOf(t, dhcpv4.MessageTypeDiscover)), false},
		{"REQUEST", ipv4UDP(msgOf(t, dhcpv4.MessageTypeRequest)), false},
		{"padding and an empty instance before the type", ipv4UDP(rawMsg(0, 0, mt, 0, 12, 1, 'x', mt, 1, 4, 255)), true},
		{"two type instances concatenate to two bytes", ipv4UDP(rawMsg(mt, 1, 4, mt, 1, 4, 255)), false},
		{"type of length two", ipv4UDP(rawMsg(mt, 2, 4, 4, 255)), false},
		{"no type", ipv4UDP(rawMsg(12, 1, 'x', 255)), false},
		{"no end option", ipv4UDP(rawMsg(mt, 1, 4)), false},
		{"option runs past the end", ipv4UDP(rawMsg(mt, 1, 4, 12, 9, 'x')), false},
		{"bad cookie", ipv4UDP(append(rawMsg()[:bootpCookie], 1, 2, 3, 4, mt, 1, 4, 255)), false},
		{"short message", ipv4UDP(decline[:100]), false},
		{"UDP length past the packet", edit(func(p []byte) []byte { binary.BigEndian.PutUint16(p[24:], 0xffff); return p }), false},
		{"UDP length below its header", edit(func(p []byte) []byte { binary.BigEndian.PutUint16(p[24:], 7); return p }), false},
		{"UDP length cuts the end option", func() []byte {
			p := ipv4UDP(rawMsg(mt, 1, 4, 255)) // unpadded: 255 is the last byte
			binary.BigEndian.PutUint16(p[24:], uint16(len(p)-28+8-1))
			return p
		}(), false},
		{"IP total length past the capture", edit(func(p []byte) []byte { return p[:len(p)-1] }), false},
		{"trailing Ethernet padding after the IP packet", edit(func(p []byte) []byte { return append(p, 0, 0, 0, 0) }), true},
		{"IPv6 version", edit(func(p []byte) []byte { p[0] = 0x65; return p }), false},
		{"header length below 20", edit(func(p []byte) []byte { p[0] = 0x44; return p }), false},
		{"fragment", edit(func(p []byte) []byte { p[7] = 1; return p }), false},
		{"to port 68", edit(func(p []byte) []byte { p[23] = 68; return p }), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := declineFrom(tt.pkt)
			if (got != nil) != tt.want {
				t.Fatalf("declineFrom = %v, want a DECLINE: %v", got, tt.want)
			}
			if got != nil && (got.MessageType() != dhcpv4.MessageTypeDecline || got.ClientHWAddr.String() != testMAC.String()) {
				t.Errorf("parsed %s", got.Summary())
			}
		})
	}
	// A relayed DECLINE is judged by its source (relay.go): the reader
	// must hand on the IPv4 source address.
	relayed := edit(func(p []byte) []byte { copy(p[12:16], []byte{10, 88, 0, 1}); return p })
	if got, src := declineFrom(relayed); got == nil || src != netip.MustParseAddr("10.88.0.1") {
		t.Errorf("declineFrom = %v from %v, want the DECLINE from 10.88.0.1", got, src)
	}
}

// FuzzDeclineFrom checks, on arbitrary DHCP messages, that the quick scan
// agrees with the full parse (so no DECLINE is skipped and nothing else is
// parsed twice), and that arbitrary IP packets never make declineFrom panic.
func FuzzDeclineFrom(f *testing.F) {
	for _, p := range fuzzSeeds(f) {
		f.Add(p.ToBytes())
	}
	f.Add(rawMsg(0, byte(dhcpv4.OptionDHCPMessageType), 0, byte(dhcpv4.OptionDHCPMessageType), 1, 4, 255))
	f.Fuzz(func(t *testing.T, msg []byte) {
		p, err := dhcpv4.FromBytes(msg)
		want := err == nil && p.MessageType() == dhcpv4.MessageTypeDecline
		if got := isDecline(msg); got != want {
			t.Fatalf("isDecline = %v, full parse says DECLINE: %v (err %v)", got, want, err)
		}
		if len(msg) <= 0xffff-28 {
			if got, _ := declineFrom(ipv4UDP(msg)); (got != nil) != want {
				t.Fatalf("declineFrom = %v, want a DECLINE: %v", got, want)
			}
		}
		declineFrom(msg)
	})
}

// BenchmarkDeclineCheck compares the quick scan every DHCP request that
// passes the filter costs with the full parse it spares.
func BenchmarkDeclineCheck(b *testing.B) {
	seeds := fuzzSeeds(b)
	for _, name := range []string{"discover-uefi-ipxe", "request-selecting", "decline"} {
		msg := seeds[name].ToBytes()
		b.Run("scan/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				isDecline(msg)
			}
		})
		b.Run("parse/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dhcpv4.FromBytes(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
