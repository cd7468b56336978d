package iso

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/vm"
)

// TestQEMUBoot builds a small ISO — the real kernel package and module
// selection, the host's e2fsprogs, and testdata/testinit as foundry (so
// as /init), with stand-ins for the discovery and iPXE images — and boots it
// three ways at once under emulation: from a CD under BIOS, from a CD
// under UEFI, and as a BIOS hard disk, as a written USB stick is. Each
// machine has a blank virtio disk, which the init formats with the ISO's
// mke2fs, mounts as ext4 and checks with its e2fsck.
func TestQEMUBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots three emulated machines (make test runs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"qemu-system-x86_64", "grub-mkrescue", "xorriso", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	cur, err := os.ReadFile("../../build/kernel/current")
	if err != nil {
		t.Fatalf("the kernel package is not downloaded (make images does it; make test does first): %v", err)
	}
	deb := filepath.Join("../..", strings.TrimSpace(string(cur)))
	out, err := exec.Command("dpkg-deb", "-f", deb, "Package").Output()
	if err != nil {
		t.Fatalf("read %s: %v", deb, err)
	}
	release := strings.TrimPrefix(strings.TrimSpace(string(out)), "linux-image-")

	dir := t.TempDir()
	init := filepath.Join(dir, "testinit")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", init, "./testdata/testinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test init: %v\n%s", err, b)
	}
	discovery := filepath.Join(dir, "discovery")
	ipxe := filepath.Join(dir, "ipxe")
	os.MkdirAll(discovery, 0o755)
	os.MkdirAll(ipxe, 0o755)
	os.WriteFile(filepath.Join(discovery, "vmlinuz"), []byte("stand-in kernel"), 0o644)
	os.WriteFile(filepath.Join(discovery, "initrd"), []byte("stand-in initrd"), 0o644)
	os.WriteFile(filepath.Join(discovery, "manifest.json"), []byte(`{"kernel_release":"`+release+`"}`), 0o644)
	for _, n := range ipxeRequired {
		os.WriteFile(filepath.Join(ipxe, n), []byte("stand-in "+n), 0o644)
	}

	const version = "0.0.0-test"
	iso := filepath.Join(dir, "foundry-test.iso")
	start := time.Now()
	r, err := Build(context.Background(), Spec{KernelDeb: deb, Foundry: init,
		DiscoveryDir: discovery, IPXEDir: ipxe, Version: version, Out: iso})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ISO built in %s: %d bytes (kernel %d, initrd %d, GRUB %d), %d modules",
		time.Since(start).Round(time.Second), r.Bytes, r.Kernel, r.Initrd, r.GRUB, len(r.Modules))
	for _, want := range []string{"ext4", "crc32c_generic", "virtio_blk", "button", "evdev", "usb_storage"} {
		if !slices.Contains(r.Modules, want) {
			t.Errorf("module %s not in the ISO: %v", want, r.Modules)
		}
	}
	if st, err := os.Stat(iso + ".json"); err != nil || st.Size() == 0 {
		t.Errorf("manifest next to the ISO: %v", err)
	}

	for _, f := range []string{vm.DefaultOVMFCode, vm.DefaultOVMFVars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("OVMF (make deps installs it): %v", err)
		}
	}
	// Each machine has a blank virtio disk for the init to format; the
	// test's own launcher (package test/vm) builds the command lines.
	cases := []struct {
		name string
		m    vm.Machine
	}{
		{"bios-cdrom", vm.Machine{CDROM: iso}},
		{"uefi-cdrom", vm.Machine{Firmware: vm.UEFI, CDROM: iso}},
		// What a USB stick is to the firmware: a hard disk holding the
		// ISO's MBR. Snapshot leaves the ISO file as it was.
		{"bios-disk", vm.Machine{Disks: []vm.Disk{{Path: iso, Snapshot: true, BootIndex: 1}}}},
	}
	// Started together rather than as parallel subtests, which go test
	// would run at most GOMAXPROCS at a time.
	boots := make([]qemuRun, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			boots[i] = runQEMU(dir, c.name, c.m)
		}()
	}
	wg.Wait()

	marker := regexp.MustCompile(`FOUNDRY-ISO-TEST-INIT (\d+) mke2fs=(\w+) disk=(\w+)`)
	var times []string
	for i, c := range cases {
		b := boots[i]
		times = append(times, fmt.Sprintf("%s %s", c.name, b.took.Round(time.Second)))
		t.Run(c.name, func(t *testing.T) {
			m := marker.FindStringSubmatch(b.console)
			switch {
			case b.err != nil:
				t.Errorf("qemu (%s): %v", b.took.Round(time.Second), b.err)
			case m == nil:
				t.Errorf("no marker from the test init within %s", b.took.Round(time.Second))
			default:
				// The modules, modules.dep, modules.alias and modules.softdep.
				if n, _ := strconv.Atoi(m[1]); n != len(r.Modules)+3 {
					t.Errorf("%s files under /lib/modules, want %d", m[1], len(r.Modules)+3)
				}
				if m[2] != "ok" || m[3] != "ok" {
					t.Errorf("mke2fs=%s disk=%s", m[2], m[3])
				}
			}
			// GRUB read our menu, showed it on the serial console and
			// booted its default entry.
			for _, e := range entries {
				if title := "Foundry " + version + e.suffix; !strings.Contains(b.console, title) {
					t.Errorf("the GRUB menu entry %q is not on the serial console", title)
				}
			}
			if !regexp.MustCompile(`testinit: cmdline: BOOT_IMAGE=/boot/vmlinuz ` + regexp.QuoteMeta(KernelArgs) + `\r?\n`).MatchString(b.console) {
				t.Errorf("the default entry's kernel line is not %q", KernelArgs)
			}
			if t.Failed() {
				t.Logf("console:\n%s", tail(b.console, 6000))
			} else {
				t.Logf("power-off after %s: %s", b.took.Round(time.Second), m[0])
			}
		})
	}
	t.Logf("boot to power-off, three machines at once: %s", strings.Join(times, ", "))
}

// qemuRun is one machine's boot: its serial console, how long until QEMU
// exited, and how it exited.
type qemuRun struct {
	console string
	took    time.Duration
	err     error
}

// runQEMU boots m with a blank 64 MiB virtio disk added, without reboots,
// until it powers off (or ten minutes pass); the serial console is
// returned and kept in dir/<name>.console.
func runQEMU(dir, name string, m vm.Machine) (b qemuRun) {
	data := filepath.Join(dir, name+".data.raw")
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		b.err = fmt.Errorf("create the data disk: %w", err)
		return b
	}
	if err := os.Truncate(data, 64<<20); err != nil {
		b.err = fmt.Errorf("size the data disk: %w", err)
		return b
	}
	m.Disks = append(m.Disks, vm.Disk{Path: data, Interface: "virtio"})
	m.ExitOnReboot = true
	start := time.Now()
	inst, err := m.Start(context.Background())
	if err != nil {
		b.err = err
		return b
	}
	const limit = 10 * time.Minute
	exited := inst.WaitExit(limit)
	b.took = time.Since(start)
	if err := inst.Stop(); err != nil {
		b.err = err
	} else if !exited {
		b.err = fmt.Errorf("no power-off within %s", limit)
	}
	b.console = inst.Console()
	os.WriteFile(filepath.Join(dir, name+".console"), []byte(b.console), 0o644)
	return b
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
