package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/discovery-os/agent/dhcpc"
)

// Links lists the Ethernet interfaces (not loopback, not virtual ones
// without a device behind them), sorted by name, with their driver,
// carrier and IPv4 addresses.
func Links() ([]console.Link, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []console.Link
	for _, l := range all {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || len(a.HardwareAddr) != 6 {
			continue
		}
		driver := ""
		if target, err := os.Readlink(filepath.Join("/sys/class/net", a.Name, "device/driver")); err == nil {
			driver = filepath.Base(target)
		} else {
			continue // no device: a bridge, veth or tunnel the init did not make
		}
		link := console.Link{Name: a.Name, MAC: a.HardwareAddr.String(), Driver: driver,
			Carrier: a.OperState == netlink.OperUp || carrier(a.Name)}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, ad := range addrs {
			if ip, ok := netip.AddrFromSlice(ad.IP.To4()); ok {
				ones, _ := ad.Mask.Size()
				link.Addrs = append(link.Addrs, netip.PrefixFrom(ip, ones))
			}
		}
		out = append(out, link)
	}
	slices.SortFunc(out, func(a, b console.Link) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// carrier reads /sys/class/net/<name>/carrier: 1 when a cable (or a
// virtual switch) is connected, even before the link is configured.
func carrier(name string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", name, "carrier"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// Resolve finds the link a plan names, by MAC (case-insensitive) or name.
func Resolve(links []console.Link, iface string) (console.Link, error) {
	for _, l := range links {
		if strings.EqualFold(l.MAC, iface) || l.Name == iface {
			return l, nil
		}
	}
	var have []string
	for _, l := range links {
		have = append(have, l.Name+" "+l.MAC)
	}
	return console.Link{}, fmt.Errorf("no network interface %s (have: %s)", iface, strings.Join(have, ", "))
}

// UpAll brings every Ethernet link up so that carrier can be seen, and
// waits up to wait for the links to report it (drivers negotiate for a
// second or two after the first up).
func UpAll(ctx context.Context, wait time.Duration) {
	links, _ := Links()
	for _, l := range links {
		if nl, err := netlink.LinkByName(l.Name); err == nil {
			_ = netlink.LinkSetUp(nl)
		}
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		up := 0
		for _, l := range links {
			if carrier(l.Name) {
				up++
			}
		}
		if up == len(links) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ConfigureStatic gives the link exactly the address p (any other IPv4
// address goes) and brings it up. No default route: the provisioning
// segment's router is offered to machines, not used by the appliance.
func ConfigureStatic(name string, p netip.Prefix) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	old, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", name, err)
	}
	for _, a := range old {
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("remove %v from %s: %w", a.IPNet, name, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := netlink.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("add %v to %s: %w", p, name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

// Management keeps DHCP leases on the management links: every link with
// carrier except the provisioning one. It is a DHCP client there and
// nothing more. Run returns when ctx ends and every client has stopped.
type Management struct {
	// Skip is the provisioning interface's name; "" = none.
	Skip string
	// Log receives lease changes and failures; default silent.
	Log *slog.Logger
	// OnChange is called (from the clients' goroutines) when an address
	// comes or goes, for the status page; default none.
	OnChange func()
}

// Run starts a client on each management link and keeps it until ctx
// ends. A link without a DHCP server on it keeps trying, quietly.
func (m *Management) Run(ctx context.Context) {
	log := m.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	links, err := Links()
	if err != nil {
		log.Warn("management network", "err", err)
		return
	}
	var wg sync.WaitGroup
	for _, l := range links {
		if l.Name == m.Skip || !l.Carrier {
			continue
		}
		wg.Go(func() { m.keep(ctx, l.Name, log.With("interface", l.Name)) })
	}
	wg.Wait()
}

func (m *Management) keep(ctx context.Context, name string, log *slog.Logger) {
	c := &dhcpc.Client{Interface: name, Log: log, OnChange: func(p netip.Prefix) {
		log.Info("management address", "address", p)
		if m.OnChange != nil {
			m.OnChange()
		}
	}}
	for wait := 5 * time.Second; ctx.Err() == nil; wait = min(wait*2, 5*time.Minute) {
		if _, err := c.Acquire(ctx, time.Minute); err != nil {
			if ctx.Err() == nil {
				log.Info("no DHCP lease on the management link yet", "err", err, "retry_in", wait)
			}
		} else if err := c.Keep(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("management lease lost", "err", err)
			wait = 5 * time.Second
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
