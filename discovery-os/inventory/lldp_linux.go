package inventory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// lldpMulticast is the nearest-bridge group address LLDP is sent to.
var lldpMulticast = [8]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ListenLLDP waits up to timeout for an LLDP frame on the interface ifname
// and returns the neighbour it announces. It returns (nil, nil) when nothing
// was heard in time: most ports of unmanaged switches never send LLDP.
// Frames that do not parse are skipped. It needs CAP_NET_RAW.
func ListenLLDP(ctx context.Context, ifname string, timeout time.Duration) (*LLDPNeighbor, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("lldp on %s: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(EtherTypeLLDP)))
	if err != nil {
		return nil, fmt.Errorf("lldp on %s: open packet socket: %w", ifname, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(EtherTypeLLDP), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("lldp on %s: bind: %w", ifname, err)
	}
	// Without the membership a NIC's filter may drop the group address.
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6, Address: lldpMulticast}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return nil, fmt.Errorf("lldp on %s: join LLDP multicast: %w", ifname, err)
	}
	// A short receive timeout lets the loop notice ctx and the deadline.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("lldp on %s: set timeout: %w", ifname, err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 9216)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("lldp on %s: receive: %w", ifname, err)
		}
		if nb, err := ParseLLDP(buf[:n]); err == nil {
			return &nb, nil
		}
	}
	return nil, nil
}
