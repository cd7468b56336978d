package dhcpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// carrierWait bounds the wait for link: autonegotiation takes seconds, and
// DHCP before carrier only wastes the first attempts, but a NIC that never
// reports carrier may still work.
const carrierWait = 10 * time.Second

// linkNet is the real network: raw sockets for DISCOVER, a UDP socket on
// port 68 for renewals, netlink for addresses and routes.
type linkNet struct {
	ifname  string
	timeout time.Duration
	retries int
}

func newLinkNet(ifname string, timeout time.Duration, retries int) *linkNet {
	if timeout <= 0 {
		timeout = 4 * time.Second
	}
	if retries <= 0 {
		retries = 3
	}
	return &linkNet{ifname: ifname, timeout: timeout, retries: retries}
}

func (n *linkNet) up(ctx context.Context) error {
	link, err := netlink.LinkByName(n.ifname)
	if err != nil {
		return fmt.Errorf("find %s: %w", n.ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bring up %s: %w", n.ifname, err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo) // best effort: only local services need it
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(carrierWait)
	defer end.Stop()
	for {
		if b, err := os.ReadFile("/sys/class/net/" + n.ifname + "/carrier"); err == nil && strings.TrimSpace(string(b)) == "1" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-end.C:
			return nil // try DHCP anyway
		case <-tick.C:
		}
	}
}

func (n *linkNet) discover(ctx context.Context) (*dhcpv4.DHCPv4, error) {
	c, err := nclient4.New(n.ifname, nclient4.WithTimeout(n.timeout), nclient4.WithRetry(n.retries))
	if err != nil {
		return nil, fmt.Errorf("open DHCP socket: %w", err)
	}
	defer c.Close()
	l, err := c.Request(ctx)
	if err != nil {
		return nil, nakErr(err)
	}
	return l.ACK, nil
}

func (n *linkNet) request(ctx context.Context, ack *dhcpv4.DHCPv4, server netip.Addr) (*dhcpv4.DHCPv4, error) {
	ifi, err := net.InterfaceByName(n.ifname)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", n.ifname, err)
	}
	conn, err := n.listen(ctx)
	if err != nil {
		return nil, err
	}
	c, err := nclient4.NewWithConn(conn, ifi.HardwareAddr, nclient4.WithTimeout(n.timeout), nclient4.WithRetry(n.retries))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dhcp client: %w", err)
	}
	defer c.Close() // closes conn
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, fmt.Errorf("transaction id: %w", err)
	}
	// ciaddr set, no server identifier, no requested address: RFC 2131
	// Table 5's REQUEST in RENEWING and REBINDING.
	req, err := dhcpv4.NewRenewFromAck(ack, dhcpv4.WithTransactionID(xid),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	dest := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	if server.IsValid() {
		dest.IP = server.AsSlice()
	}
	resp, err := c.SendAndRead(ctx, dest, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, fmt.Errorf("request to %s: %w", dest.IP, err)
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, fmt.Errorf("%w: %s", errNAK, resp.Message())
	}
	return resp, nil
}

// listen opens the kernel UDP socket of a bound client: port 68 on the
// interface, allowed to broadcast. Unlike the raw socket of DISCOVER, it
// sends from the leased address, which a renewal must.
func (n *linkNet) listen(ctx context.Context) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1),
				unix.BindToDevice(int(fd), n.ifname))
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf(":%d", dhcpv4.ClientPort))
	if err != nil {
		return nil, fmt.Errorf("open DHCP client socket on %s: %w", n.ifname, err)
	}
	return conn, nil
}

// nakErr turns nclient4's NAK into errNAK.
func nakErr(err error) error {
	var nak *nclient4.ErrNak
	if errors.As(err, &nak) {
		return fmt.Errorf("%w: %v", errNAK, err)
	}
	return err
}

func (n *linkNet) apply(old, new config) error {
	link, err := netlink.LinkByName(n.ifname)
	if err != nil {
		return fmt.Errorf("find %s: %w", n.ifname, err)
	}
	var errs []error
	for _, r := range slices.Backward(old.routes) {
		if slices.Contains(new.routes, r) {
			continue
		}
		if err := netlink.RouteDel(nlRoute(link, r)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route %s: %w", r, err))
		}
	}
	if old.addr.IsValid() && old.addr != new.addr {
		if err := netlink.AddrDel(link, nlAddr(old.addr)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove address %s: %w", old.addr, err))
		}
	}
	if new.addr.IsValid() {
		if err := netlink.AddrReplace(link, nlAddr(new.addr)); err != nil {
			return errors.Join(append(errs, fmt.Errorf("set address %s: %w", new.addr, err))...)
		}
	}
	for _, r := range new.routes {
		if err := netlink.RouteReplace(nlRoute(link, r)); err != nil {
			errs = append(errs, fmt.Errorf("set route %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
}

func nlRoute(link netlink.Link, r route) *netlink.Route {
	nr := &netlink.Route{LinkIndex: link.Attrs().Index}
	if r.dst.Bits() > 0 {
		nr.Dst = &net.IPNet{IP: r.dst.Addr().AsSlice(), Mask: net.CIDRMask(r.dst.Bits(), 32)}
	}
	if r.gw.IsValid() {
		nr.Gw = r.gw.AsSlice()
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr
}
