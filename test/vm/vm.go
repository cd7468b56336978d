// Package vm starts emulated x86-64 machines for tests: qemu-system-x86_64
// under TCG (no KVM needed), SeaBIOS or OVMF firmware, network cards on tap
// devices, QEMU sockets or QEMU's user-mode network, disks and a CD-ROM,
// and the serial console captured for the test to read and, when asked,
// to type into. Every machine has a QMP socket, through which a test
// presses the ACPI power button. Every test that boots a machine builds
// its command line here, so that firmware paths, boot order and the way
// QEMU is stopped are decided once.
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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// and neither a CDROM nor a disk with a BootIndex boots from the
	// network first (-boot n).
	NIC *NIC
	// MoreNICs are further cards, after NIC (which they need): their
	// backends are n1, n2, … as NIC's is n0. Default none.
	MoreNICs []NIC
	// Disks are attached in order; default none.
	Disks []Disk
	// CDROM is an ISO image attached read-only as an IDE CD-ROM that the
	// firmware boots first (bootindex=0, before any card or disk, on BIOS
	// and UEFI alike); default none.
	CDROM string
	// Input lets the test type into the serial console (Instance.Type):
	// QEMU's standard input is a pipe. Default: it reads /dev/null.
	Input bool
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
	// BootIndex, when above 0, puts the disk at that place in the
	// firmware's boot order (bootindex=), e.g. to boot an ISO file as a
	// hard disk the way a USB stick it was written to boots; Interface
	// "ide" or "virtio" only. Default: not set.
	BootIndex int
}

// Args returns QEMU's arguments for m; vars is the UEFI variable store the
// machine writes (ignored for BIOS). Start adds a QMP socket before Extra.
func (m Machine) Args(vars string) ([]string, error) { return m.args(vars, "") }

func (m Machine) args(vars, qmp string) ([]string, error) {
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 1024
	}
	args := []string{"-accel", "tcg", "-nographic", "-m", strconv.Itoa(mem)}
	switch m.Firmware {
	case BIOS:
		if m.NIC != nil && m.CDROM == "" && !slices.ContainsFunc(m.Disks, func(d Disk) bool { return d.BootIndex > 0 }) {
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
		if len(m.MoreNICs) > 0 {
			return nil, errors.New("vm: MoreNICs without a NIC")
		}
		args = append(args, "-nic", "none")
	}
	for i, n := range append([]*NIC{m.NIC}, pointers(m.MoreNICs)...) {
		if n == nil {
			continue
		}
		nic, err := n.args("n" + strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		args = append(args, nic...)
	}
	if m.CDROM != "" {
		if strings.Contains(m.CDROM, ",") {
			return nil, fmt.Errorf("vm: CD-ROM path %q has a comma", m.CDROM)
		}
		// -device with a bootindex rather than -cdrom and -boot d: the
		// same words put the CD first on SeaBIOS and on OVMF, ahead of
		// the cards' option ROMs.
		args = append(args, "-drive", "if=none,id=cd0,media=cdrom,readonly=on,file="+m.CDROM,
			"-device", "ide-cd,drive=cd0,bootindex=0")
	}
	for i, d := range m.Disks {
		disk, err := d.args("disk" + strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		args = append(args, disk...)
	}
	if qmp != "" {
		args = append(args, "-qmp", "unix:"+qmp+",server=on,wait=off")
	}
	return append(args, m.Extra...), nil
}

func pointers(nics []NIC) []*NIC {
	p := make([]*NIC, len(nics))
	for i := range nics {
		p[i] = &nics[i]
	}
	return p
}

// args returns the -drive (and, with a BootIndex, -device) arguments of
// the disk; id names its drive when it has a -device.
func (d Disk) args(id string) ([]string, error) {
	if d.Path == "" || strings.Contains(d.Path, ",") {
		return nil, fmt.Errorf("vm: disk path %q: empty or with a comma", d.Path)
	}
	snapshot := ""
	if d.Snapshot {
		snapshot = ",snapshot=on"
	}
	file := "file=" + d.Path + ",format=" + or(d.Format, "raw")
	if d.BootIndex <= 0 {
		return []string{"-drive", file + ",if=" + or(d.Interface, "ide") + snapshot}, nil
	}
	dev, ok := map[string]string{"ide": "ide-hd", "virtio": "virtio-blk-pci"}[or(d.Interface, "ide")]
	if !ok {
		return nil, fmt.Errorf("vm: disk %s: BootIndex on interface %q (only ide and virtio)", d.Path, d.Interface)
	}
	return []string{"-drive", file + ",if=none,id=" + id + snapshot,
		"-device", dev + ",drive=" + id + ",bootindex=" + strconv.Itoa(d.BootIndex)}, nil
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
	stopped bool  // set before done is closed: Stop or ctx ended it
	dir     string
	qmp     string // the QMP socket's path

	typing sync.Mutex // one Type at a time, so that texts do not interleave
	stdin  io.WriteCloser
}

// maxSocketPath is the room for a path in a unix socket address
// (sockaddr_un.sun_path, with its NUL).
const maxSocketPath = 108

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
	qmp := filepath.Join(dir, "qmp.sock")
	if len(qmp) >= maxSocketPath {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("vm: QMP socket path %s is too long for a unix socket (set a shorter TMPDIR)", qmp)
	}
	args, err := m.args(vars, qmp)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	in := &Instance{stop: stop, done: make(chan struct{}), dir: dir, qmp: qmp}
	in.cmd = exec.CommandContext(ctx, or(m.Binary, "qemu-system-x86_64"), args...)
	in.cmd.Stdout, in.cmd.Stderr = &in.console, &in.console
	if m.Input {
		// An *os.File pipe that Wait closes once QEMU has exited.
		if in.stdin, err = in.cmd.StdinPipe(); err != nil {
			stop()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
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
			in.err, in.stopped = nil, true
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

// WaitExit says whether QEMU exited by itself (the guest powered off, or
// rebooted with ExitOnReboot) within timeout; an exit caused by Stop or by
// the end of Start's context is not one.
func (in *Instance) WaitExit(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-in.done:
		return !in.stopped
	case <-t.C:
		return false
	}
}

// Stop stops QEMU (SIGTERM, then SIGKILL after 10 s) and waits until it
// has exited, so that its disk files are complete. It returns an error
// only if QEMU had already failed by itself. Calling it again is harmless.
func (in *Instance) Stop() error {
	in.stop()
	<-in.done
	return in.err
}
