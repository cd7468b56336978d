package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/u-root/u-root/pkg/ipmi"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MountAll mounts what the agent needs as PID 1 of an initramfs. Mount
// points that are already mounted (EBUSY) are fine.
func MountAll() error {
	mounts := []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"sysfs", "/sys", "", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", unix.MS_NOSUID},
		{"tmpfs", "/run", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV},
		{"tmpfs", "/tmp", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV},
	}
	var errs []error
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// Reap collects exited children until ctx ends: PID 1 inherits every
// orphan, and unreaped zombies would pile up.
func Reap(ctx context.Context) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// LoadModules loads the drivers for the devices present, from the module
// directory of the running kernel, plus the helpers that no device asks
// for: af_packet (DHCP and LLDP raw sockets) and, when a BMC driver came
// up, ipmi_devintf (for /dev/ipmi0).
func LoadModules(log *slog.Logger) ([]string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	ix, err := kmod.ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	l := &kmod.Loader{Dir: dir, Index: ix, Log: log}
	errs := []error{l.LoadForDevices("/sys")}
	for _, m := range []string{"af_packet", "ipmi_devintf"} {
		if _, ok := ix.Paths[m]; !ok {
			continue
		}
		if m == "ipmi_devintf" && !hasModule("ipmi_si") {
			continue
		}
		errs = append(errs, l.Load(m))
	}
	return l.Loaded(), errors.Join(errs...)
}

func hasModule(name string) bool {
	_, err := os.Stat("/sys/module/" + name)
	return err == nil
}

// FindInterface waits until a network interface with the given MAC exists
// (drivers probe asynchronously) and returns its name.
func FindInterface(ctx context.Context, mac string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
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
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ConfigureDHCP brings ifname up, waits for carrier, obtains a lease and
// configures the address and default route. It returns the address.
func ConfigureDHCP(ctx context.Context, ifname string, timeout time.Duration) (netip.Prefix, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("find %s: %w", ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return netip.Prefix{}, fmt.Errorf("bring up %s: %w", ifname, err)
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	// Autonegotiation can take seconds; DHCP before carrier only wastes
	// the first attempts.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if b, err := os.ReadFile("/sys/class/net/" + ifname + "/carrier"); err == nil && strings.TrimSpace(string(b)) == "1" {
			break
		}
	}
	c, err := nclient4.New(ifname, nclient4.WithTimeout(4*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("dhcp on %s: %w", ifname, err)
	}
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lease, err := c.Request(dctx)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("dhcp on %s: %w", ifname, err)
	}
	ack := lease.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsValid() || ip.IsUnspecified() {
		return netip.Prefix{}, fmt.Errorf("dhcp on %s: the server offered no address", ifname)
	}
	mask := ack.SubnetMask()
	ones, bits := mask.Size()
	if bits != 32 {
		ones = 24 // a server that omits option 1: assume the common case
	}
	pfx := netip.PrefixFrom(ip, ones)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return pfx, fmt.Errorf("set address %s on %s: %w", pfx, ifname, err)
	}
	if routers := ack.Router(); len(routers) > 0 {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: routers[0]}
		if err := netlink.RouteReplace(route); err != nil {
			return pfx, fmt.Errorf("set default route via %s: %w", routers[0], err)
		}
	}
	return pfx, nil
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

// Reboot syncs and restarts the machine.
func Reboot() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// PowerOff syncs and powers the machine off.
func PowerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
