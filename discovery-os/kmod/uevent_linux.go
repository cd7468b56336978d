package kmod

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ueventBuffer is the socket's receive buffer: a boot announces a few
// thousand events (PCI functions, SCSI targets, queues of every NIC) while
// Watch may be busy in a slow module load.
const ueventBuffer = 4 << 20

// OpenUevents subscribes to the kernel's device events (the netlink group
// udev listens on) and delivers them until ctx ends, when the channel is
// closed. Subscribe before scanning sysfs so that nothing falls between.
func OpenUevents(ctx context.Context) (<-chan Event, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("open uevent socket: %w", err)
	}
	// FORCE works as root whatever rmem_max says; the plain option is the
	// fallback for a test run without CAP_NET_ADMIN.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, ueventBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, ueventBuffer)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind uevent socket: %w", err)
	}
	// A non-blocking descriptor in an os.File uses the runtime's poller,
	// so that Close wakes a pending Read when ctx ends.
	f := os.NewFile(uintptr(fd), "uevent")
	out := make(chan Event, 64)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		defer close(out)
		buf := make([]byte, 64<<10)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			n, err := f.Read(buf)
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, unix.ENOBUFS):
				if !send(Event{Err: ErrOverflow}) {
					return
				}
				continue
			case err != nil:
				send(Event{Err: fmt.Errorf("read uevent: %w", err)})
				return
			}
			ev, err := ParseUevent(buf[:n])
			if err != nil {
				continue // not the kernel's
			}
			if !send(Event{Uevent: ev}) {
				return
			}
		}
	}()
	return out, nil
}
