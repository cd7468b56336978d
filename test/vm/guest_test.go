package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// These tests boot real guests under TCG.

func needQEMU(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots an emulated machine")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86 is not installed")
	}
}

// discoveryKernel is Debian's kernel as `make images` leaves it.
const discoveryKernel = "../../images/discovery/vmlinuz"

// echoInitramfs builds testdata/echoinit as a static /init and packs it,
// with the /dev/console the kernel opens for it, into a cpio.gz.
func echoInitramfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "init"), "./testdata/echoinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the guest's init: %v\n%s", err, out)
	}
	init, err := os.ReadFile(filepath.Join(dir, "init"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := cpio.Newc.Writer(zw)
	if err := cpio.WriteRecords(w, []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticFile("init", string(init), 0o755),
	}); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initrd.cpio.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSerialInput types into a Linux guest's serial console through
// QEMU's standard input (-nographic's multiplexer, serial and monitor on
// stdio) and reads the guest's answers; the guest powers itself off when
// told to, and WaitExit sees QEMU end by itself.
func TestSerialInput(t *testing.T) {
	needQEMU(t)
	if _, err := os.Stat(discoveryKernel); err != nil {
		t.Skipf("no kernel (run make images): %v", err)
	}
	m := Machine{MemoryMiB: 256, Input: true, ExitOnReboot: true,
		Extra: []string{"-kernel", discoveryKernel, "-initrd", echoInitramfs(t), "-append", "console=ttyS0 panic=-1"}}
	start := time.Now()
	in, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	if !in.WaitConsole(3*time.Minute, "ECHOINIT READY") {
		t.Fatalf("the guest's init did not start; console:\n%s", in.Console())
	}
	t.Logf("guest reading after %s", time.Since(start).Round(time.Millisecond))

	if err := in.Type("a\x01c"); err == nil || !strings.Contains(err.Error(), "Ctrl-A") {
		t.Errorf("Type with Ctrl-A = %v", err)
	}
	if err := in.Type("hello\n"); err != nil {
		t.Fatal(err)
	}
	if !in.WaitConsole(time.Minute, "ECHO:hello\r\n") {
		t.Fatalf("no echo of hello; console:\n%s", in.Console())
	}
	// A burst far beyond the UART's 16-byte FIFO and QEMU's multiplexer
	// buffer, several lines in one write: nothing lost, nothing reordered.
	long := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz-", 12)
	typed := time.Now()
	if err := in.Type("first line\n" + long + "\n10.0.2.15/24\n"); err != nil {
		t.Fatal(err)
	}
	// The guest turned its terminal's echo off: only its answers come
	// back, each after the previous one.
	if !in.WaitConsole(time.Minute, "ECHO:10.0.2.15/24\r\n") {
		t.Fatalf("the burst's last line did not come back; console:\n%s", in.Console())
	}
	rest := in.Console()
	for _, want := range []string{"ECHO:first line\r\n", "ECHO:" + long + "\r\n", "ECHO:10.0.2.15/24\r\n"} {
		i := strings.Index(rest, want)
		if i < 0 {
			t.Fatalf("no %q in order; console:\n%s", want, in.Console())
		}
		rest = rest[i+len(want):]
	}
	t.Logf("%d bytes typed and echoed in %s", len(long)+25, time.Since(typed).Round(time.Millisecond))

	if in.WaitExit(time.Second) {
		t.Fatal("QEMU exited before the guest was told to power off")
	}
	if err := in.Type("off\n"); err != nil {
		t.Fatal(err)
	}
	if !in.WaitExit(time.Minute) {
		t.Fatalf("the guest did not power off; console:\n%s", in.Console())
	}
	if err := in.Wait(); err != nil || !strings.Contains(in.Console(), "reboot: Power down") {
		t.Errorf("Wait = %v; console:\n%s", err, in.Console())
	}
	if err := in.Type("late\n"); err == nil {
		t.Error("Type after QEMU exited: no error")
	}
}

// TestPowerButton presses the ACPI power button over QMP: QEMU accepts it
// while it runs (SeaBIOS with nothing to boot ignores it, so the machine
// stays on), refuses an unknown command, and PowerButton fails once QEMU
// is gone. A machine that never asked for Input cannot be typed into.
func TestPowerButton(t *testing.T) {
	needQEMU(t)
	in, err := Machine{MemoryMiB: 64}.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	// Straight after Start: the socket may not exist yet.
	if err := in.PowerButton(); err != nil {
		t.Fatalf("PowerButton = %v; console:\n%s", err, in.Console())
	}
	if err := in.PowerButton(); err != nil {
		t.Fatalf("second PowerButton = %v", err)
	}
	if err := in.command("no_such_command", qmpTimeout); err == nil {
		t.Error("an unknown QMP command succeeded")
	}
	if in.WaitExit(2 * time.Second) {
		t.Errorf("QEMU exited; console:\n%s", in.Console())
	}
	if err := in.Type("x"); err == nil {
		t.Error("Type without Input: no error")
	}
	if err := in.Stop(); err != nil {
		t.Fatal(err)
	}
	if in.WaitExit(time.Second) {
		t.Error("WaitExit counts Stop as an exit by itself")
	}
	if err := in.PowerButton(); err == nil {
		t.Error("PowerButton after Stop: no error")
	}
}

// grubISO makes a hybrid ISO the way `make iso` does (grub-mkrescue,
// BIOS and UEFI), whose GRUB says FOUNDRY-GRUB-BOOTED on the serial port.
func grubISO(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("grub-mkrescue"); err != nil {
		t.Skip("grub-mkrescue is not installed")
	}
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "boot/grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "serial --unit=0 --speed=115200\nterminal_output serial console\necho FOUNDRY-GRUB-BOOTED\nsleep 600\n"
	if err := os.WriteFile(filepath.Join(root, "boot/grub/grub.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "grub.iso")
	if out, err := exec.Command("grub-mkrescue", "-o", iso, root).CombinedOutput(); err != nil {
		t.Skipf("grub-mkrescue cannot make a BIOS+UEFI image here: %v\n%s", err, out)
	}
	return iso
}

// TestBootOrder boots a hybrid ISO as a CD-ROM and as a hard disk, on BIOS
// and UEFI, beside a first disk that would say so and a network card whose
// option ROM would PXE-boot, with or without a boot index of its own: the
// ISO must come first every time.
func TestBootOrder(t *testing.T) {
	needQEMU(t)
	iso := grubISO(t)
	sector, err := BootSector("FOUNDRY-FIRST-DISK\r\n")
	if err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(t.TempDir(), "first.img")
	if err := os.WriteFile(first, append(sector, make([]byte, 1<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	// What each candidate says when it boots: the firmware's PXE (SeaBIOS
	// runs iPXE's ROM, OVMF names its PXE boot option), the first disk, or
	// GRUB from the ISO.
	const grub = "FOUNDRY-GRUB-BOOTED"
	markers := []string{grub, "FOUNDRY-FIRST-DISK", "iPXE initialising", "PXEv4"}
	// OVMF names each boot option it tries.
	uefiTry := regexp.MustCompile(`BdsDxe: loading Boot[0-9A-F]{4} "([^"]*)"`)
	firstDisk := Disk{Path: first, Snapshot: true}
	isoDisk := Disk{Path: iso, Snapshot: true, BootIndex: 1}
	tests := []struct {
		name     string
		m        Machine
		uefiWant string // the first boot option OVMF tries
	}{
		{"BIOS CD-ROM, card without boot index", Machine{CDROM: iso, Disks: []Disk{firstDisk},
			NIC: &NIC{User: true, Restrict: true}}, ""},
		{"UEFI CD-ROM, card with boot index 1", Machine{Firmware: UEFI, CDROM: iso, Disks: []Disk{firstDisk},
			NIC: &NIC{User: true, Restrict: true, BootIndex: 1}}, "DVD-ROM"},
		{"BIOS ISO as disk 1, card without boot index", Machine{Disks: []Disk{firstDisk, isoDisk},
			NIC: &NIC{User: true, Restrict: true}}, ""},
		{"UEFI ISO as disk 1, card with boot index 2", Machine{Firmware: UEFI, Disks: []Disk{firstDisk, isoDisk},
			NIC: &NIC{User: true, Restrict: true, BootIndex: 2}}, "HARDDISK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.m.MemoryMiB, tt.m.ExitOnReboot = 256, true
			start := time.Now()
			in, err := tt.m.Start(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer in.Stop()
			if got := waitFirst(in, 3*time.Minute, markers); got != grub {
				t.Fatalf("booted %q, want the ISO's GRUB; console:\n%s", got, in.Console())
			}
			t.Logf("GRUB after %s", time.Since(start).Round(time.Millisecond))
			in.Stop()
			if tt.uefiWant != "" {
				if m := uefiTry.FindStringSubmatch(in.Console()); m == nil || !strings.Contains(m[1], tt.uefiWant) {
					t.Errorf("OVMF tried %q first, want a %s; console:\n%s", m, tt.uefiWant, in.Console())
				}
			}
		})
	}
}

// waitFirst returns the first of markers that the console shows, or ""
// when none shows within timeout or before QEMU exits.
func waitFirst(in *Instance, timeout time.Duration, markers []string) string {
	deadline := time.Now().Add(timeout)
	for {
		console := in.Console()
		best, at := "", len(console)
		for _, m := range markers {
			if i := strings.Index(console, m); i >= 0 && i < at {
				best, at = m, i
			}
		}
		if best != "" || time.Now().After(deadline) {
			return best
		}
		select {
		case <-in.Done():
			return ""
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// TestUserNetwork boots iPXE with two user-mode cards offering a boot file
// from a host server on loopback: the restricted first card gets its
// address from QEMU but cannot reach the host, the second one can; the
// first card's forwarded port listens on the host's loopback.
func TestUserNetwork(t *testing.T) {
	needQEMU(t)
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	guestURL := "http://10.0.2.2:" + port

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fwd := l.Addr().String()
	l.Close()
	m := Machine{MemoryMiB: 128, ExitOnReboot: true,
		NIC: &NIC{User: true, Restrict: true, BootFile: guestURL + "/restricted",
			HostForward: []string{"tcp:" + fwd + "-:8080"}},
		MoreNICs: []NIC{{User: true, BootFile: guestURL + "/open", MAC: "52:54:00:12:34:57"}}}
	in, err := m.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	for _, s := range []string{"net0: 10.0.2.15", "net1: 10.0.2.15", guestURL + "/open"} {
		if !in.WaitConsole(2*time.Minute, s) {
			t.Fatalf("no %q; console:\n%s", s, in.Console())
		}
	}
	c, err := net.DialTimeout("tcp", fwd, 5*time.Second)
	if err != nil {
		t.Errorf("forwarded port %s: %v", fwd, err)
	} else {
		c.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(paths)
		mu.Unlock()
		if slices.Contains(got, "/open") || time.Now().After(deadline) {
			if !slices.Equal(got, []string{"/open"}) {
				t.Errorf("the host server saw %q, want only the unrestricted card's /open; console:\n%s", got, in.Console())
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}
