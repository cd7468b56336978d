package kmod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Uevent is one kernel device event, as the kernel broadcasts it on its
// uevent netlink group ("add@/devices/…\0ACTION=add\0…\0MODALIAS=…\0").
type Uevent struct {
	Action    string // add, remove, bind, change, …
	DevPath   string // /devices/pci0000:00/0000:00:03.0
	Subsystem string
	Modalias  string // empty when the device has none
}

// ParseUevent reads one kernel uevent message. Messages from udev's own
// group ("libudev" header) are refused: they are not the kernel's.
func ParseUevent(b []byte) (Uevent, error) {
	head, rest, ok := bytes.Cut(b, []byte{0})
	action, devpath, okHead := strings.Cut(string(head), "@")
	if !ok || !okHead || action == "" || !strings.HasPrefix(devpath, "/") {
		return Uevent{}, errors.New("not a kernel uevent (want \"action@devpath\\0KEY=value…\")")
	}
	ev := Uevent{Action: action, DevPath: devpath}
	for kv := range bytes.SplitSeq(rest, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "ACTION":
			ev.Action = v
		case "DEVPATH":
			ev.DevPath = v
		case "SUBSYSTEM":
			ev.Subsystem = v
		case "MODALIAS":
			ev.Modalias = v
		}
	}
	return ev, nil
}

// ErrOverflow is sent by an event source whose kernel buffer overflowed:
// events were lost, and Watch scans every device again.
var ErrOverflow = errors.New("uevent buffer overflow: events lost")

// Event is what an event source delivers: a uevent, or an error.
type Event struct {
	Uevent Uevent
	Err    error
}

// Watch loads drivers the way udev would, without udev: first for every
// device present under sysRoot (LoadForDevices), then for each device the
// kernel announces on events, until ctx ends or events is closed. Open the
// event source before calling Watch, so that a device that appears during
// the first scan is not missed. Load failures are logged, not returned:
// hardware without a working driver must not stop the rest.
func (l *Loader) Watch(ctx context.Context, sysRoot string, events <-chan Event) error {
	l.touch()
	if err := l.LoadForDevices(sysRoot); err != nil {
		l.log().Warn("some drivers did not load", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if ev.Err != nil {
				if !errors.Is(ev.Err, ErrOverflow) {
					return fmt.Errorf("watch devices: %w", ev.Err)
				}
				l.log().Warn("device events lost; scanning all devices again")
				if err := l.LoadForDevices(sysRoot); err != nil {
					l.log().Warn("some drivers did not load", "err", err)
				}
				continue
			}
			u := ev.Uevent
			if u.Action != "add" {
				continue
			}
			l.touch()
			if u.Modalias == "" {
				continue
			}
			if _, err := l.LoadFor(u.Modalias); err != nil {
				l.log().Warn("driver did not load", "device", u.DevPath, "err", err)
			}
		}
	}
}

// Settle waits until no device has appeared and no module has loaded for
// quiet (counted from the last one, which may be before the call), or
// until limit has passed since the call, whichever is first: the
// moment when the drivers of the hardware present have had their chance
// (disks behind a SCSI scan, USB sticks still enumerating).
func (l *Loader) Settle(ctx context.Context, quiet, limit time.Duration) error {
	start := l.now()
	deadline := start.Add(limit)
	tick := time.NewTicker(max(quiet/4, time.Millisecond))
	defer tick.Stop()
	for {
		l.mu.Lock()
		last := l.activity
		l.mu.Unlock()
		if last.IsZero() {
			last = start // nothing has happened: quiet since the call
		}
		now := l.now()
		if now.Sub(last) >= quiet || !now.Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
