package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/pid1"
	"github.com/u-root/u-root/pkg/ipmi"
)

// LoadModules loads the drivers for the devices present, from the module
// directory of the running kernel, plus the helpers that no device asks
// for: af_packet (DHCP and LLDP raw sockets) and, when a BMC driver came
// up, ipmi_devintf (for /dev/ipmi0).
func LoadModules(log *slog.Logger) ([]string, error) {
	l, err := pid1.ModuleLoader(log)
	if err != nil {
		return nil, err
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
	return l.Loaded(), errors.Join(errs...)
}

// FindInterface waits until a network interface with the given MAC exists
// (drivers probe asynchronously) and returns its name; package dhcpc then
// configures it.
func FindInterface(ctx context.Context, mac string, timeout time.Duration) (string, error) {
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
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no network interface with MAC %s after %v (driver missing?)", mac, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
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
