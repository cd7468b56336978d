package stormsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Firmware is who sends a DHCP exchange: the PXE ROM, or the iPXE it
// loaded. Each sends the options that firmware sends, and the server
// answers each with another boot file.
type Firmware int

const (
	// PXEROM is a BIOS PXE ROM: option 60 "PXEClient:Arch:00000:UNDI:002001",
	// 93 = 0 (x86 BIOS), 94 (UNDI 2.1), 97 (the machine's UUID), the
	// broadcast flag clear, so that the server answers with a frame to
	// the MAC (coredhcp's raw path). PXE ROMs differ on the flag; iPXE's
	// exchange takes the other path.
	PXEROM Firmware = iota
	// IPXE is iPXE after it was loaded: the same options plus 77 "iPXE",
	// with the broadcast flag set (iPXE's dhcp_create_packet sets it), so
	// that the server answers to 255.255.255.255.
	IPXE
)

func (f Firmware) String() string {
	if f == IPXE {
		return "ipxe"
	}
	return "pxe"
}

// PXEVendorClass is option 60 as a BIOS PXE ROM and iPXE send it.
const PXEVendorClass = "PXEClient:Arch:00000:UNDI:002001"

// dhcpSocket is the machines' one packet socket: every machine sends its
// frames through it and a single reader hands each reply to the exchange
// waiting for its transaction ID. One socket, not one per machine: every
// packet socket bound to the interface receives every DHCP reply.
type dhcpSocket struct {
	conn *packet.Conn

	mu      sync.Mutex
	waiting map[uint32]chan *dhcpv4.DHCPv4

	stray atomic.Int64 // replies nobody waited for (late answers to retransmissions)
}

func openDHCP(l *Link) (*dhcpSocket, error) {
	var conn *packet.Conn
	err := l.Do(func() error {
		ifi, err := net.InterfaceByName(l.Iface())
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open packet socket: %w", err)
	}
	filter, err := replyFilter()
	if err == nil {
		err = conn.SetBPF(filter)
	}
	if err == nil {
		err = setReadBuffer(conn, 8<<20)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("set up packet socket: %w", err)
	}
	s := &dhcpSocket{conn: conn, waiting: map[uint32]chan *dhcpv4.DHCPv4{}}
	go s.read()
	return s, nil
}

// setReadBuffer makes room for the replies of a storm's burst.
func setReadBuffer(c *packet.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		// SO_RCVBUFFORCE passes net.core.rmem_max, which a test's
		// namespace cannot raise; as root it is allowed.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	})
	return errors.Join(err, serr)
}

func (s *dhcpSocket) close() error { return s.conn.Close() }

func (s *dhcpSocket) read() {
	buf := make([]byte, 65536)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		msg, _, err := decodeFrame(buf[:n])
		if err != nil {
			continue
		}
		s.mu.Lock()
		ch := s.waiting[xidKey(msg.TransactionID)]
		s.mu.Unlock()
		if ch == nil {
			s.stray.Add(1)
			continue
		}
		select {
		case ch <- msg:
		default:
			s.stray.Add(1)
		}
	}
}

// wait registers a transaction; cancel ends it.
func (s *dhcpSocket) wait(xid uint32) (<-chan *dhcpv4.DHCPv4, func()) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	s.mu.Lock()
	s.waiting[xid] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.waiting, xid)
		s.mu.Unlock()
	}
}

func (s *dhcpSocket) send(src net.HardwareAddr, msg *dhcpv4.DHCPv4) error {
	_, err := s.conn.WriteTo(encodeFrame(src, msg), &packet.Addr{HardwareAddr: broadcastMAC})
	return err
}

// Lease is what a DHCPACK gave a machine.
type Lease struct {
	IP netip.Addr
	// ServerID is option 54, the address the machine sends its TFTP and
	// later DHCP requests to.
	ServerID netip.Addr
	// NextServer is siaddr, the TFTP server.
	NextServer netip.Addr
	// BootFile is the file or URL the ACK named.
	BootFile string
	Firmware Firmware
	At       time.Time
}

// errNAK: the server refused the REQUEST; the exchange starts again.
var errNAK = errors.New("DHCPNAK")

// exchange is one machine's DHCP conversation.
type exchange struct {
	sock     *dhcpSocket
	mac      net.HardwareAddr
	uuid     [16]byte
	firmware Firmware
	timeouts []time.Duration
	resent   *atomic.Int64
}

// dora runs DISCOVER, OFFER, REQUEST, ACK with PXE's retransmission
// schedule: each message is sent again after each timeout in turn (4, 8,
// 16 and 32 s by default); after the last one the exchange fails.
func (e *exchange) dora(ctx context.Context) (Lease, error) {
	xid := dhcpv4.TransactionID{}
	for i := range xid {
		xid[i] = byte(rand.Uint32())
	}
	replies, done := e.sock.wait(xidKey(xid))
	defer done()
	discover, err := e.message(xid, dhcpv4.MessageTypeDiscover, nil)
	if err != nil {
		return Lease{}, err
	}
	offer, err := e.transact(ctx, discover, replies, dhcpv4.MessageTypeOffer)
	if err != nil {
		return Lease{}, fmt.Errorf("discover: %w", err)
	}
	request, err := e.message(xid, dhcpv4.MessageTypeRequest, offer)
	if err != nil {
		return Lease{}, err
	}
	ack, err := e.transact(ctx, request, replies, dhcpv4.MessageTypeAck)
	if err != nil {
		return Lease{}, fmt.Errorf("request %s: %w", offer.YourIPAddr, err)
	}
	l := Lease{Firmware: e.firmware, At: time.Now(), BootFile: ack.BootFileNameOption()}
	if l.BootFile == "" {
		l.BootFile = ack.BootFileName
	}
	l.IP, _ = netip.AddrFromSlice(ack.YourIPAddr.To4())
	l.ServerID, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	l.NextServer, _ = netip.AddrFromSlice(ack.ServerIPAddr.To4())
	if !l.IP.IsValid() || l.IP.IsUnspecified() {
		return Lease{}, fmt.Errorf("the ACK gave no address (yiaddr %s)", ack.YourIPAddr)
	}
	if !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		return Lease{}, fmt.Errorf("offered %s, acknowledged %s", offer.YourIPAddr, ack.YourIPAddr)
	}
	return l, nil
}

func xidKey(x dhcpv4.TransactionID) uint32 {
	return uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])
}

// transact sends msg and waits for a reply of type want from this
// machine, sending it again after each timeout.
func (e *exchange) transact(ctx context.Context, msg *dhcpv4.DHCPv4, replies <-chan *dhcpv4.DHCPv4, want dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	for try, timeout := range e.timeouts {
		if try > 0 {
			e.resent.Add(1)
		}
		if err := e.sock.send(e.mac, msg); err != nil {
			return nil, fmt.Errorf("send %s: %w", msg.MessageType(), err)
		}
		timer := time.NewTimer(timeout)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
				break wait
			case r := <-replies:
				if r.ClientHWAddr.String() != e.mac.String() {
					continue
				}
				switch r.MessageType() {
				case want:
					timer.Stop()
					return r, nil
				case dhcpv4.MessageTypeNak:
					timer.Stop()
					return nil, fmt.Errorf("%w: %s", errNAK, r.Message())
				}
			}
		}
	}
	return nil, fmt.Errorf("no %s after %d tries", want, len(e.timeouts))
}

// message builds a DISCOVER, or the REQUEST for offer, with this
// firmware's options.
func (e *exchange) message(xid dhcpv4.TransactionID, mt dhcpv4.MessageType, offer *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(e.mac),
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(PXEVendorClass)),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1260)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, e.uuid[:]...)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionDomainName, dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionServerIdentifier,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName, dhcpv4.OptionClassIdentifier),
	}
	if e.firmware == IPXE {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")), dhcpv4.WithBroadcast(true))
	}
	if offer != nil {
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())))
	}
	msg, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", mt, err)
	}
	return msg, nil
}
