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

// Reboot syncs, quiesces the network and restarts the machine.
func Reboot() error {
	unix.Sync()
	quiesceNetwork()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// PowerOff syncs, quiesces the network and powers the machine off.
func PowerOff() error {
	unix.Sync()
	quiesceNetwork()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// quiesceNetwork takes every link but loopback down before the kernel
// shuts its devices down: a virtio-net driver still polling a busy send
// queue there soft-locked a UEFI QEMU machine at reboot (once in four runs
// of test/e2e_debian_test.go, with progress reports sent until the end).
// Failures are ignored: the machine is going down either way.
func quiesceNetwork() {
	links, err := netlink.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		_ = netlink.LinkSetDown(l)
	}
}
