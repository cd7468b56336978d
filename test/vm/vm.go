// Package vm starts emulated x86-64 machines for tests: qemu-system-x86_64
// under TCG (no KVM needed), SeaBIOS or OVMF firmware, one network card on
// a tap device, a QEMU socket or QEMU's user-mode network, and the serial
// console captured for the test to read. Every test that boots a machine
// builds its command line here, so that firmware paths, boot order and the
// way QEMU is stopped are decided once.
//
//	m := vm.Machine{NIC: &vm.NIC{Tap: "lab0t1", MAC: mac}}
//	inst, err := m.Start(ctx)
//	...
//	defer inst.Stop()
//	inst.WaitConsole(time.Minute, "iPXE")
package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// Firmware is what the machine boots with.
type Firmware int

const (
	// BIOS is SeaBIOS on QEMU's default i440FX machine.
	BIOS Firmware = iota
	// UEFI is OVMF on a q35 machine, with a private copy of its variable
	// store.
	UEFI
)

func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	}
	return "firmware(" + strconv.Itoa(int(f)) + ")"
}

// Debian's ovmf package.
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Machine describes an emulated computer. The zero value is a BIOS machine
// with 1 GiB of RAM, no network card and no disk, that reboots like real
// hardware.
type Machine struct {
	// Firmware is BIOS (default) or UEFI.
	Firmware Firmware
	// MemoryMiB is the RAM; default 1024.
	MemoryMiB int
	// NIC is the network card; nil means none. A BIOS machine with a card
	// boots from the network first (-boot n).
	NIC *NIC
	// Disks are attached in order; default none.
	Disks []Disk
	// ExitOnReboot ends QEMU when the guest reboots (-no-reboot), so that
	// a test sees a reboot as the end of the run; default: it reboots.
	ExitOnReboot bool
	// Binary is the emulator; default "qemu-system-x86_64" from PATH.
	Binary string
	// OVMFCode and OVMFVars are the UEFI firmware and the variable store
	// template; default DefaultOVMFCode and DefaultOVMFVars. The template
	// is copied, so that no run changes it.
	OVMFCode, OVMFVars string
	// Extra are more QEMU arguments, appended last.
	Extra []string
}

// NIC is a network card and what it is plugged into: exactly one of Tap,
// Socket and User.
type NIC struct {
	// Model is QEMU's device; default "e1000", which Debian's ipxe-qemu
	// gives an iPXE option ROM. "virtio-net-pci" is another.
	Model string
	// MAC is the card's address; default "52:54:00:12:34:56".
	MAC string
	// NoROM removes the card's option ROM (romfile=), so that the
	// firmware's own PXE client boots; default: QEMU's ROM for the model.
	NoROM bool
	// BootIndex, when above 0, puts the card at that place in the
	// firmware's boot order (bootindex=); default: not set.
	BootIndex int

	// Tap is a tap device the test created (tap, no scripts).
	Tap string
	// Socket is a QEMU socket backend's options, e.g.
	// "listen=127.0.0.1:5555" or "connect=127.0.0.1:5555"; keep it on
	// loopback.
	Socket string
	// User is QEMU's user-mode network: the guest is 10.0.2.15 and reaches
	// the host's loopback at 10.0.2.2.
	User bool
	// BootFile is the file QEMU's user-mode DHCP offers (a TFTP name or an
	// HTTP URL); User only.
	BootFile string
}

// Disk is a drive.
type Disk struct {
	// Path is the image file.
	Path string
	// Format is QEMU's image format; default "raw".
	Format string
	// Interface is the bus; default "ide".
	Interface string
	// Snapshot discards the guest's writes (snapshot=on); default: they
	// reach the file.
	Snapshot bool
}

// Args returns QEMU's arguments for m; vars is the UEFI variable store the
// machine writes (ignored for BIOS).
func (m Machine) Args(vars string) ([]string, error) {
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	args := []string{"-accel", "tcg", "-nographic", "-m", strconv.Itoa(mem)}
	switch m.Firmware {
	case BIOS:
		if m.NIC != nil {
			args = append(args, "-boot", "n")
		}
	case UEFI:
		args = append(args, "-machine", "q35",
			"-drive", "if=pflash,format=raw,readonly=on,file="+or(m.OVMFCode, DefaultOVMFCode),
			"-drive", "if=pflash,format=raw,file="+vars)
	default:
		return nil, fmt.Errorf("vm: unknown firmware %d", int(m.Firmware))
	}
	if m.ExitOnReboot {
		args = append(args, "-no-reboot")
	}
	if m.NIC == nil {
		args = append(args, "-nic", "none")
	} else {
		nic, err := m.NIC.args()
		if err != nil {
			return nil, err
		}
		args = append(args, nic...)
	}
	for _, d := range m.Disks {
		if d.Path == "" || strings.Contains(d.Path, ",") {
			return nil, fmt.Errorf("vm: disk path %q: empty or with a comma", d.Path)
		}
		drive := "file=" + d.Path + ",format=" + or(d.Format, "raw") + ",if=" + or(d.Interface, "ide")
		if d.Snapshot {
			drive += ",snapshot=on"
		}
		args = append(args, "-drive", drive)
	}
	return append(args, m.Extra...), nil
}

func (n *NIC) args() ([]string, error) {
	var netdev string
	backends := 0
	if n.Tap != "" {
		backends++
		netdev = "tap,id=n0,ifname=" + n.Tap + ",script=no,downscript=no"
	}
	if n.Socket != "" {
		backends++
		netdev = "socket,id=n0," + n.Socket
	}
	if n.User {
		backends++
		netdev = "user,id=n0"
		if n.BootFile != "" {
			netdev += ",bootfile=" + n.BootFile
		}
	}
	if backends != 1 {
		return nil, fmt.Errorf("vm: a NIC needs exactly one of Tap, Socket and User, has %d", backends)
	}
	if n.BootFile != "" && !n.User {
		return nil, errors.New("vm: BootFile is for the user-mode network only")
	}
	dev := or(n.Model, "e1000") + ",netdev=n0,mac=" + or(n.MAC, "52:54:00:12:34:56")
	if n.NoROM {
		dev += ",romfile="
	}
	if n.BootIndex > 0 {
		dev += ",bootindex=" + strconv.Itoa(n.BootIndex)
	}
	return []string{"-netdev", netdev, "-device", dev}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Instance is a running machine.
type Instance struct {
	cmd     *exec.Cmd
	console syncbuf.Buffer
	stop    context.CancelFunc
	done    chan struct{}
	err     error // set before done is closed
	dir     string
}

// stopGrace is how long QEMU has to exit after SIGTERM before it is
// killed.
const stopGrace = 10 * time.Second

// Start powers the machine on. It runs until the guest powers off (or
// reboots, with ExitOnReboot), Stop is called or ctx ends; the last two
// stop QEMU with SIGTERM, on which it closes its disk images cleanly.
func (m Machine) Start(ctx context.Context) (*Instance, error) {
	dir, err := os.MkdirTemp("", "foundry-vm-")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	if m.Firmware == UEFI {
		b, err := os.ReadFile(or(m.OVMFVars, DefaultOVMFVars))
		if err == nil {
			err = os.WriteFile(vars, b, 0o600)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("vm: copy the UEFI variable store: %w", err)
		}
	}
	args, err := m.Args(vars)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	in := &Instance{stop: stop, done: make(chan struct{}), dir: dir}
	in.cmd = exec.CommandContext(ctx, or(m.Binary, "qemu-system-x86_64"), args...)
	in.cmd.Stdout, in.cmd.Stderr = &in.console, &in.console
	in.cmd.Cancel = func() error { return in.cmd.Process.Signal(syscall.SIGTERM) }
	in.cmd.WaitDelay = stopGrace
	if err := in.cmd.Start(); err != nil {
		stop()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("vm: start %s: %w", in.cmd.Path, err)
	}
	go func() {
		in.err = in.cmd.Wait()
		if ctx.Err() != nil {
			// Stopped on purpose: SIGTERM's exit status is no failure.
			in.err = nil
		}
		os.RemoveAll(dir)
		stop()
		close(in.done)
	}()
	return in, nil
}

// Console returns everything the serial console (and QEMU itself) printed
// so far.
func (in *Instance) Console() string { return in.console.String() }

// WaitConsole waits until the console shows s, and says whether it did
// within timeout. It gives up early if QEMU exits without showing it.
func (in *Instance) WaitConsole(timeout time.Duration, s string) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(in.Console(), s) {
			return true
		}
		select {
		case <-deadline.C:
			return strings.Contains(in.Console(), s)
		case <-in.done:
			return strings.Contains(in.Console(), s)
		case <-tick.C:
		}
	}
}

// Done is closed when QEMU has exited.
func (in *Instance) Done() <-chan struct{} { return in.done }

// Wait waits for QEMU to exit by itself (the guest powered off) and
// returns how it ended.
func (in *Instance) Wait() error {
	<-in.done
	return in.err
}

// Stop stops QEMU (SIGTERM, then SIGKILL after 10 s) and waits until it
// has exited, so that its disk files are complete. It returns an error
// only if QEMU had already failed by itself. Calling it again is harmless.
func (in *Instance) Stop() error {
	in.stop()
	<-in.done
	return in.err
}
