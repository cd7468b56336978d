package stormsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// LinkConfig describes the provisioning segment the simulated machines
// are plugged into.
type LinkConfig struct {
	// HostIface names the appliance's end of the veth, created in the
	// caller's network namespace (the one `foundry serve` runs in, which
	// serves its segment on this interface). Required; at most 15 bytes.
	HostIface string
	// Server is the appliance's address on HostIface with the segment's
	// prefix length, e.g. 10.99.0.1/16. Required.
	Server netip.Prefix
	// Client is the machines' side's own address, in Server's subnet and
	// outside the DHCP range. Required.
	Client netip.Addr
	// Leases is a prefix that holds the segment's DHCP range. In the
	// machines' namespace it is made local (a "local" route on
	// loopback), so that each machine can bind the address it was leased
	// without one interface address per machine; on the appliance's side
	// it is routed through Client, so that the appliance's kernel keeps
	// one neighbour entry instead of one per machine (the neighbour
	// table's limits are host-wide and cannot be raised from inside a
	// test's namespace). Required.
	Leases netip.Prefix
}

// Link is a veth pair between the caller's namespace and a network
// namespace of its own, where the simulated machines live. The namespace
// has no name: it goes away with the Link (or with the process).
type Link struct {
	cfg   LinkConfig
	home  netns.NsHandle // the caller's namespace
	ns    netns.NsHandle // the machines' namespace
	iface string         // the machines' end, in ns
}

// NewLink creates the machines' namespace and the veth, addresses both
// ends and adds the routes LinkConfig describes. It needs CAP_NET_ADMIN
// (root in the test's namespace).
func NewLink(cfg LinkConfig) (*Link, error) {
	switch {
	case cfg.HostIface == "" || len(cfg.HostIface) > 15:
		return nil, fmt.Errorf("new link: host interface name %q: want 1-15 bytes", cfg.HostIface)
	case !cfg.Server.IsValid() || !cfg.Server.Addr().Is4():
		return nil, errors.New("new link: the server's address is not an IPv4 prefix")
	case !cfg.Server.Masked().Contains(cfg.Client) || !cfg.Server.Masked().Contains(cfg.Leases.Addr()):
		return nil, fmt.Errorf("new link: client %s and leases %s must be inside %s", cfg.Client, cfg.Leases, cfg.Server.Masked())
	case cfg.Leases.Contains(cfg.Client) || cfg.Leases.Contains(cfg.Server.Addr()):
		return nil, fmt.Errorf("new link: the lease prefix %s must hold neither the server nor the client address", cfg.Leases)
	}
	l := &Link{cfg: cfg, iface: "eth0"}
	var err error
	if l.home, l.ns, err = newNamespace(); err != nil {
		return nil, fmt.Errorf("new link: %w", err)
	}
	if err := l.setup(); err != nil {
		l.Close()
		return nil, fmt.Errorf("new link: %w", err)
	}
	return l, nil
}

// newNamespace makes a network namespace on a locked thread and returns
// the thread to the caller's namespace.
func newNamespace() (home, ns netns.NsHandle, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if home, err = netns.Get(); err != nil {
		return 0, 0, fmt.Errorf("current namespace: %w", err)
	}
	if ns, err = netns.New(); err != nil {
		home.Close()
		return 0, 0, fmt.Errorf("create namespace: %w", err)
	}
	if err := netns.Set(home); err != nil {
		// The thread is in the new namespace: it must not run anything
		// else. Leaving it locked makes the runtime end it with the
		// goroutine.
		runtime.LockOSThread()
		return 0, 0, fmt.Errorf("return to the caller's namespace: %w", err)
	}
	return home, ns, nil
}

func (l *Link) setup() error {
	cfg := l.cfg
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cfg.HostIface, TxQLen: 1000}, PeerName: l.iface, PeerNamespace: netlink.NsFd(l.ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", cfg.HostIface, err)
	}
	host, err := netlink.LinkByName(cfg.HostIface)
	if err != nil {
		return fmt.Errorf("find %s: %w", cfg.HostIface, err)
	}
	if err := netlink.AddrAdd(host, &netlink.Addr{IPNet: ipNet(cfg.Server)}); err != nil {
		return fmt.Errorf("address %s: %w", cfg.HostIface, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", cfg.HostIface, err)
	}
	h, err := netlink.NewHandleAt(l.ns)
	if err != nil {
		return fmt.Errorf("netlink in the machines' namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	eth, err := h.LinkByName(l.iface)
	if err != nil {
		return fmt.Errorf("find %s: %w", l.iface, err)
	}
	client := netip.PrefixFrom(cfg.Client, cfg.Server.Bits())
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(client)}); err != nil {
		return fmt.Errorf("address %s: %w", l.iface, err)
	}
	for _, link := range []netlink.Link{lo, eth} {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring up %s: %w", link.Attrs().Name, err)
		}
	}
	local := &netlink.Route{Dst: ipNet(cfg.Leases.Masked()), LinkIndex: lo.Attrs().Index,
		Type: unix.RTN_LOCAL, Table: unix.RT_TABLE_LOCAL, Scope: unix.RT_SCOPE_HOST}
	if err := h.RouteAdd(local); err != nil {
		return fmt.Errorf("local route for %s: %w", cfg.Leases, err)
	}
	via := &netlink.Route{Dst: ipNet(cfg.Leases.Masked()), Gw: cfg.Client.AsSlice(), LinkIndex: host.Attrs().Index}
	if err := netlink.RouteAdd(via); err != nil {
		return fmt.Errorf("route %s via %s: %w", cfg.Leases, cfg.Client, err)
	}
	return nil
}

// Close deletes the veth and lets the machines' namespace go.
func (l *Link) Close() error {
	var err error
	if host, lerr := netlink.LinkByName(l.cfg.HostIface); lerr == nil {
		err = netlink.LinkDel(host)
	}
	l.ns.Close()
	l.home.Close()
	return err
}

// Iface is the machines' end of the veth, in their namespace.
func (l *Link) Iface() string { return l.iface }

// Do runs fn on a thread in the machines' namespace. A socket belongs to
// the namespace it was created in, so only its creation needs Do; it can
// be used from any goroutine afterwards.
func (l *Link) Do(fn func() error) error {
	runtime.LockOSThread()
	if err := netns.Set(l.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter the machines' namespace: %w", err)
	}
	err := fn()
	if rerr := netns.Set(l.home); rerr != nil {
		// Left locked: the runtime ends the thread with the goroutine
		// instead of running other goroutines in the wrong namespace.
		return errors.Join(err, fmt.Errorf("return to the caller's namespace: %w", rerr))
	}
	runtime.UnlockOSThread()
	return err
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
