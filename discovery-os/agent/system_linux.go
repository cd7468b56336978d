package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/pid1"
	"github.com/u-root/u-root/pkg/ipmi"
	"github.com/vishvananda/netlink"
)

// LoadModules loads the drivers for the devices present, from the module
// directory of the running kernel, plus the helpers that no device asks
// for: af_packet (DHCP and LLDP raw sockets) and, when a BMC driver came
// up, ipmi_devintf (for /dev/ipmi0). It subscribes to the kernel's device
// events first: the caller runs Loader.Watch with them, so that devices
// found later (disks behind a SCSI scan, USB sticks) get drivers too. A
// nil channel means no subscription (Watch then only scans once).
func LoadModules(ctx context.Context, log *slog.Logger) (*kmod.Loader, <-chan kmod.Event, error) {
	events, evErr := kmod.OpenUevents(ctx)
	if evErr != nil {
		log.Warn("no device events: devices that appear later get no driver", "err", evErr)
	}
	l, err := pid1.ModuleLoader(log)
	if err != nil {
		return nil, events, err
	}
	errs := []error{l.LoadForDevices("/sys")}
	for _, m := range []string{"af_packet", "ipmi_devintf"} {
		if _, ok := l.Index.Paths[m]; !ok {
			continue
		}
		if m == "ipmi_devintf" && !pid1.HasModule("ipmi_si") {
			continue
		}
		errs = append(errs, l.Load(m))
	}
	return l, events, errors.Join(errs...)
}

// FindInterface waits until a network interface with the given MAC exists
// (drivers probe asynchronously) and returns its name; package dhcpc then
// configures it. It gives up after timeout, or earlier once settled
// reports true (the drivers have had their chance; nil: never).
func FindInterface(ctx context.Context, mac string, timeout time.Duration, settled func() bool) (string, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ifs, err := net.Interfaces()
		if err == nil {
			for _, i := range ifs {
				if strings.EqualFold(i.HardwareAddr.String(), mac) {
					return i.Name, nil
				}
			}
		}
		if time.Now().After(deadline) || settled != nil && settled() {
			return "", fmt.Errorf("%w: %s", ErrNoBootNIC, mac)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
}

// ErrNoBootNIC is FindInterface's answer when no interface has the MAC.
var ErrNoBootNIC = errors.New("no network interface with the boot MAC")

// LinksWithCarrier brings every Ethernet interface but those named in
// skip up and returns, after waiting up to wait for autonegotiation, the
// ones with carrier, sorted by name: where DHCP can be tried when the boot
// NIC is missing.
func LinksWithCarrier(ctx context.Context, skip []string, wait time.Duration) []string {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var cands []string
	for _, l := range links {
		a := l.Attrs()
		if a.EncapType != "ether" || len(a.HardwareAddr) != 6 || slices.Contains(skip, a.Name) {
			continue
		}
		netlink.LinkSetUp(l) // best effort: a link that stays down has no carrier
		cands = append(cands, a.Name)
	}
	slices.Sort(cands)
	carrier := func(name string) bool {
		b, err := os.ReadFile("/sys/class/net/" + name + "/carrier")
		return err == nil && strings.TrimSpace(string(b)) == "1"
	}
	end := time.Now().Add(wait)
	for {
		var up []string
		for _, c := range cands {
			if carrier(c) {
				up = append(up, c)
			}
		}
		if len(up) == len(cands) || !time.Now().Before(end) {
			return up
		}
		select {
		case <-ctx.Done():
			return up
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// BMCAddress asks the BMC over /dev/ipmi0 for the IPv4 address of LAN
// channel 1 (IPMI 2.0 Get LAN Configuration Parameters, parameter 3).
func BMCAddress() (string, error) {
	dev, err := ipmi.Open(0)
	if err != nil {
		return "", fmt.Errorf("open /dev/ipmi0: %w", err)
	}
	defer dev.Close()
	b, err := dev.GetLanConfig(1, 3)
	if err != nil {
		return "", fmt.Errorf("get LAN address: %w", err)
	}
	// Completion code, parameter revision, then the four address bytes.
	if len(b) < 6 {
		return "", fmt.Errorf("get LAN address: short answer of %d bytes", len(b))
	}
	return netip.AddrFrom4([4]byte(b[2:6])).String(), nil
}
