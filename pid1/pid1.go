// Package pid1 is what a Go program needs when it is the first process of
// an initramfs with nothing else in it: the pseudo file systems mounted,
// orphans reaped, drivers loaded for the devices present, the power button
// heard, and the machine powered off or restarted with its disks synced.
// The discovery agent and the appliance's init both run as PID 1; each
// decision here is made once for both.
package pid1

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MountAll mounts proc, sysfs, devtmpfs and tmpfs on /run and /tmp, and
// makes /dev/fd and /dev/std{in,out,err}. Mount points that are already
// mounted (EBUSY) and links that exist are fine.
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
	// devtmpfs makes device nodes only; these links come from udev or
	// systemd elsewhere, and programs use them (qemu-img opens the image
	// it is handed as /dev/fd/N).
	for link, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, link); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("link %s: %w", link, err))
		}
	}
	return errors.Join(errs...)
}

// ModuleLoader returns a loader for the running kernel's module directory
// (/lib/modules/<uname -r>), whose modules.dep and modules.alias the image
// builder wrote.
func ModuleLoader(log *slog.Logger) (*kmod.Loader, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	ix, err := kmod.ReadIndex(dir)
	if err != nil {
		return nil, fmt.Errorf("read module index: %w", err)
	}
	return &kmod.Loader{Dir: dir, Index: ix, Log: log}, nil
}

// HasModule says whether the kernel has the module loaded (or built in
// with parameters: /sys/module lists both).
func HasModule(name string) bool {
	_, err := os.Stat("/sys/module/" + kmod.Normalize(name))
	return err == nil
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
