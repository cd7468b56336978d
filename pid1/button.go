package pid1

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux input event constants (linux/input-event-codes.h, linux/input.h).
const (
	evKey     = 0x01
	keyPower  = 116
	keyMax    = 0x2ff
	eventSize = 24 // struct input_event on 64-bit: timeval (16), type, code (2+2), value (4)
)

// PowerButton watches the input devices that have a power key (the ACPI
// power button that the kernel's button driver registers, which is what a
// hypervisor's "power off" and a short press on a server's button send)
// and sends on the returned channel at each press. Without acpid or logind
// nobody else listens, and ignoring the press would leave a host's
// shutdown to time out and pull the plug. Devices that appear later (the
// button module loads after the call) are picked up for find, rescanning
// every second; the watch ends with ctx.
func PowerButton(ctx context.Context, find time.Duration, log *slog.Logger) <-chan struct{} {
	presses := make(chan struct{}, 1)
	go func() {
		watched := map[string]bool{}
		deadline := time.Now().Add(find)
		for {
			paths, _ := filepath.Glob("/dev/input/event*")
			for _, p := range paths {
				if watched[p] {
					continue
				}
				f, err := os.Open(p)
				if err != nil {
					continue
				}
				if !hasPowerKey(f) {
					f.Close()
					continue
				}
				watched[p] = true
				log.Info("watching the power button", "device", p)
				go func() {
					<-ctx.Done()
					f.Close() // ends the read below
				}()
				go func() {
					if err := readPresses(f, presses); err != nil && ctx.Err() == nil {
						log.Warn("power button device failed", "device", p, "err", err)
					}
				}()
			}
			if time.Now().After(deadline) {
				if len(watched) == 0 {
					log.Warn("no power button found: ACPI power-off requests will not be heard", "searched", find)
				}
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return presses
}

// hasPowerKey asks the device for its key capabilities (EVIOCGBIT(EV_KEY)).
func hasPowerKey(f *os.File) bool {
	bits := make([]byte, keyMax/8+1)
	req := uintptr(2<<30 | len(bits)<<16 | 'E'<<8 | (0x20 + evKey)) // _IOC(_IOC_READ, 'E', 0x20+EV_KEY, len)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&bits[0])))
	if errno != 0 {
		return false
	}
	return keyBit(bits, keyPower)
}

func keyBit(bits []byte, key int) bool {
	return key/8 < len(bits) && bits[key/8]&(1<<(key%8)) != 0
}

// readPresses reads input events from r until it fails, and sends on
// presses (without blocking: one pending press is enough) at each power
// key press.
func readPresses(r io.Reader, presses chan<- struct{}) error {
	buf := make([]byte, eventSize)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return err
		}
		typ := binary.LittleEndian.Uint16(buf[16:])
		code := binary.LittleEndian.Uint16(buf[18:])
		value := int32(binary.LittleEndian.Uint32(buf[20:]))
		if typ == evKey && code == keyPower && value == 1 {
			select {
			case presses <- struct{}{}:
			default:
			}
		}
	}
}
