package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/agent/dhcpc"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

const (
	// bootNICWait bounds the wait for the boot NIC's interface; once the
	// drivers have been quiet for driversSettled the wait ends sooner: a
	// driver that was going to take the card has done so by then.
	bootNICWait    = 30 * time.Second
	driversSettled = 10 * time.Second
	// otherDHCP is how long DHCP is tried on each other NIC with link.
	otherDHCP = 20 * time.Second
	// pciIDs names the controllers in the no-driver notice.
	pciIDs = "/usr/share/misc/pci.ids"
)

// bringUp gives the machine an address to reach the appliance from and
// keeps its lease (renewed, rebound, replaced) until ctx ends, in a
// goroutine of wg. The boot NIC comes first. When no interface has its
// MAC, the console says which network controller no driver took and what
// to do, and DHCP is tried on the other NICs with link: the appliance then
// sees a lease for that NIC's MAC and a registration for the boot MAC
// (the machine's identity, from the kernel line), and the inventory lists
// the NICs the image could drive.
func bringUp(ctx context.Context, cl agent.Cmdline, loader *kmod.Loader, con *agent.TTYConsole, log *slog.Logger, wg *sync.WaitGroup) error {
	status := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		con.Update(func(s *agent.Screen) { s.Status = msg })
	}
	showErr := func(err error) {
		log.Error("step failed", "err", err)
		con.Update(func(s *agent.Screen) { s.Error = err.Error() })
	}
	settled := func() bool { return loader != nil && loader.Quiet() >= driversSettled }
	match := func(modalias string) []string {
		if loader == nil {
			return nil
		}
		return loader.Match(modalias)
	}
	for attempt := 1; ; attempt++ {
		status("looking for the boot NIC %s (attempt %d)", cl.MAC, attempt)
		ifname, err := agent.FindInterface(ctx, cl.MAC, bootNICWait, settled)
		if err == nil {
			con.Update(func(s *agent.Screen) { s.Via, s.Notice = "", "" })
			dc := client(ifname, con, log)
			for try := 1; ; try++ {
				status("DHCP on %s (attempt %d)", ifname, try)
				if _, err := dc.Acquire(ctx, 30*time.Second); err == nil {
					break
				} else if ctx.Err() != nil {
					return ctx.Err()
				} else {
					showErr(err)
				}
				if err := agent.Pause(ctx, retryDelay); err != nil {
					return err
				}
			}
			wg.Go(func() { dc.Keep(ctx) })
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		notice := agent.NoBootNICMessage(cl.MAC, agent.NetworkControllers("/", pciIDs), match)
		log.Warn("boot NIC missing", "mac", cl.MAC, "why", notice)
		con.Update(func(s *agent.Screen) { s.Notice = notice + ". Meanwhile the other network cards with link are tried." })

		status("looking for other network cards with link")
		for _, other := range agent.LinksWithCarrier(ctx, nil, 5*time.Second) {
			dc := client(other, con, log)
			status("DHCP on %s, another network card (the boot NIC has no driver)", other)
			if _, err := dc.Acquire(ctx, otherDHCP); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				log.Warn("DHCP on another NIC failed", "interface", other, "err", err)
				continue
			}
			via := other
			if ifi, err := net.InterfaceByName(other); err == nil {
				via += " " + ifi.HardwareAddr.String()
			}
			con.Update(func(s *agent.Screen) { s.Via = via + " (the boot NIC has no driver)" })
			log.Info("reached the network through another NIC", "interface", other, "boot_mac", cl.MAC)
			wg.Go(func() { dc.Keep(ctx) })
			return nil
		}
		if err := agent.Pause(ctx, retryDelay); err != nil {
			return err
		}
	}
}

// client is a DHCP client for ifname whose address the console follows.
func client(ifname string, con *agent.TTYConsole, log *slog.Logger) *dhcpc.Client {
	return &dhcpc.Client{Interface: ifname, Log: log, OnChange: func(p netip.Prefix) {
		ip := ""
		if p.IsValid() {
			ip = p.String()
		}
		con.Update(func(s *agent.Screen) { s.IP = ip })
	}}
}
