package dhcp

// This file exists only because coredhcp's server (server/handle.go,
// HandleMsg4, at the pinned version) passes DISCOVER, REQUEST, RELEASE and
// INFORM to the plugin chain and logs every other message type as
// "unhandled" before any plugin runs. A DHCPDECLINE, which a client sends
// when it finds its new address already in use, therefore never reaches our
// handler through coredhcp, and the address would be handed out again. The
// decline reader below takes DECLINEs from the wire beside coredhcp, without
// forking or patching it. Delete this file, its start in Serve and
// decline_test.go once coredhcp passes DECLINE to plugins; keep
// TestServeDecline (less its packet-socket checks), which then proves
// coredhcp's own path.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

	"github.com/foundry-appliance/foundry/internal/bpfdrop"
)

const (
	// ethPIPv4 is ETH_P_IP: the packet socket receives IPv4 only. (A
	// constant here, not unix.ETH_P_IP, so that the package builds on
	// every OS; packet.Listen fails outside Linux.)
	ethPIPv4 = 0x0800
	// declineRetry is the pause after a failed read before the next one.
	declineRetry = 100 * time.Millisecond
	// Offsets in a BOOTP message.
	bootpCookie  = 236
	bootpOptions = 240
	// pktBroadcast is PACKET_BROADCAST (linux/if_packet.h). The filter
	// keeps packet types up to it: PACKET_HOST (0, a relay's unicast) and
	// PACKET_BROADCAST (a client's DECLINE). Frames for other hosts
	// (promiscuous mode) and our own outgoing ones are dropped.
	pktBroadcast = 1
	// ipProtoUDP is the IPv4 protocol number of UDP.
	ipProtoUDP = 17
)

// declineFilter is the classic BPF program of the decline socket. Its
// input starts at the IPv4 header (SOCK_DGRAM). It keeps only
// unfragmented IPv4 UDP to port 67 carrying a BOOTREQUEST, received for
// this host; and since almost every client puts option 53 first, a first
// option "message type, length 1" whose value is not DECLINE (4) is
// dropped in the kernel too. Everything else stays in the kernel, so the
// reader wakes only for DHCP requests whose type is not yet known.
func declineFilter() []bpf.Instruction {
	// drop is a jump to the last instruction (bpfdrop), so that
	// instructions can be added without counting.
	const drop = bpfdrop.Drop
	return bpfdrop.Resolve([]bpf.Instruction{
		// Index 0 is replaced by a constant in the tests (the Go VM has
		// no ExtType); keep it first.
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: pktBroadcast, SkipTrue: drop},
		bpf.LoadAbsolute{Off: 9, Size: 1}, // protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ipProtoUDP, SkipTrue: drop},
		bpf.LoadAbsolute{Off: 6, Size: 2}, // MF flag and fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: drop},
		bpf.LoadMemShift{Off: 0},          // X = IPv4 header length
		bpf.LoadIndirect{Off: 2, Size: 2}, // UDP destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: dhcpv4.ServerPort, SkipTrue: drop},
		bpf.LoadIndirect{Off: 8, Size: 1}, // BOOTP op
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dhcpv4.OpcodeBootRequest), SkipTrue: drop},
		bpf.LoadIndirect{Off: 8 + bootpOptions, Size: 2}, // first option's code and length
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dhcpv4.OptionDHCPMessageType)<<8 | 1, SkipTrue: 2},
		bpf.LoadIndirect{Off: 8 + bootpOptions + 2, Size: 1}, // its value
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dhcpv4.MessageTypeDecline), SkipTrue: drop},
		bpf.RetConstant{Val: 0xffff}, // keep the whole packet
		bpf.RetConstant{Val: 0},      // drop
	})
}

// declineReader reads DHCPDECLINEs of one interface from a packet socket
// and hands them to its port-67 listener's handler, the same path coredhcp
// would use: segment by interface or giaddr, metrics, logs, in-flight gate.
type declineReader struct {
	l    *listener
	conn *packet.Conn
	stop chan struct{}
	done chan struct{}
}

// wantsDeclines reports whether l can apply a DECLINE at all: it is a
// port-67 listener and some segment it may serve hands out addresses.
// Proxy-only interfaces get no reader, so their DHCP traffic (which is
// another server's) is never copied to us.
func (l *listener) wantsDeclines() bool {
	if l.port != dhcpv4.ServerPort || l.bind.IsValid() {
		return false // one reader per interface: the 0.0.0.0 listener's
	}
	if l.direct != nil && l.direct.alloc != nil {
		return true
	}
	for _, s := range l.in.relayed {
		if s.alloc != nil {
			return true
		}
	}
	return false
}

// startDeclineReader opens the filtered packet socket on l's interface and
// starts reading; close stops it.
func (l *listener) startDeclineReader() (*declineReader, error) {
	ifi, err := net.InterfaceByName(l.iface)
	if err != nil {
		return nil, fmt.Errorf("decline reader: interface %s: %w", l.iface, err)
	}
	prog, err := bpf.Assemble(declineFilter())
	if err != nil {
		return nil, fmt.Errorf("decline reader: assemble filter: %w", err)
	}
	// The filter is attached before bind, so nothing unfiltered is queued.
	conn, err := packet.Listen(ifi, packet.Datagram, ethPIPv4, &packet.Config{Filter: prog})
	if err != nil {
		return nil, fmt.Errorf("decline reader on %s: %w", l.iface, err)
	}
	r := &declineReader{l: l, conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r, nil
}

// run reads until close. DECLINEs are handled one at a time, in this
// goroutine: they are rare, and a flood of them queues in the socket
// instead of multiplying store writes.
func (r *declineReader) run() {
	defer close(r.done)
	log := r.l.in.log
	buf := make([]byte, 1<<16)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-r.stop:
				return
			default:
			}
			// ENETDOWN when the link goes down; the socket stays bound and
			// reads again once it is up. A failing reader must not stop
			// DHCP, which coredhcp serves on its own socket.
			log.Warn("dhcp decline reader", "iface", r.l.iface, "err", err)
			select {
			case <-r.stop:
				return
			case <-time.After(declineRetry):
			}
			continue
		}
		if req, src := declineFrom(buf[:n]); req != nil {
			r.l.safeHandle(req, nil, src)
		}
	}
}

// close stops the reader and waits until it has returned, including from a
// DECLINE it was handling.
func (r *declineReader) close() {
	close(r.stop)
	r.conn.Close()
	<-r.done
}

// declineFrom returns the DHCP message carried by an IPv4 packet when it
// is a well-formed DHCPDECLINE to port 67, with the packet's source address
// (a relayed DECLINE is accepted only from an allowed relay, relay.go); nil
// otherwise. The checksums are
// not verified: a packet socket sees veth and tap frames before their
// checksums are filled in (offload), and the handler applies a DECLINE only
// to the client's own binding of the named address.
func declineFrom(ip []byte) (*dhcpv4.DHCPv4, netip.Addr) {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != ipProtoUDP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return nil, netip.Addr{}
	}
	hlen, total := int(ip[0]&0x0f)*4, int(binary.BigEndian.Uint16(ip[2:4]))
	if hlen < 20 || total < hlen+8 || total > len(ip) {
		return nil, netip.Addr{}
	}
	udp := ip[hlen:total]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if binary.BigEndian.Uint16(udp[2:4]) != dhcpv4.ServerPort || ulen < 8 || ulen > len(udp) {
		return nil, netip.Addr{}
	}
	msg := udp[8:ulen]
	if !isDecline(msg) {
		return nil, netip.Addr{}
	}
	req, err := dhcpv4.FromBytes(msg)
	if err != nil || req.MessageType() != dhcpv4.MessageTypeDecline {
		return nil, netip.Addr{}
	}
	return req, netip.AddrFrom4([4]byte(ip[12:16]))
}

// isDecline is the cheap test that spares a full parse of every DISCOVER
// and REQUEST: it walks the options as dhcpv4.FromBytes does (instances of
// an option are concatenated, the end option is required) and reports
// whether option 53 would read as DECLINE. It is never false for a message
// FromBytes parses as a DECLINE (FuzzDeclineFrom checks this).
func isDecline(msg []byte) bool {
	if len(msg) <= bootpOptions || binary.BigEndian.Uint32(msg[bootpCookie:]) != 0x63825363 {
		return false
	}
	n, v := 0, byte(0)
	for o := msg[bootpOptions:]; len(o) > 0; {
		switch o[0] {
		case 0: // pad
			o = o[1:]
			continue
		case 255: // end
			return n == 1 && v == byte(dhcpv4.MessageTypeDecline)
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return false
		}
		if l := int(o[1]); o[0] == byte(dhcpv4.OptionDHCPMessageType) && l > 0 {
			n, v = n+l, o[2]
		}
		o = o[2+int(o[1]):]
	}
	return false
}
