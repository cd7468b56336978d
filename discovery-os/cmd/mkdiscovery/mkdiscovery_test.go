package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

// fakeModules is kmodtest.Debian plus the remaining required drivers and a
// few optional ones (package drivers tests the selection itself).
func fakeModules() []kmodtest.Module {
	return append(slices.Clone(kmodtest.Debian),
		kmodtest.Module{Path: "kernel/drivers/scsi/virtio_scsi.ko", Depends: []string{"scsi_mod"}},
		kmodtest.Module{Path: "kernel/drivers/ata/ahci.ko", Depends: []string{"libahci", "libata"}},
		kmodtest.Module{Path: "kernel/drivers/ata/libahci.ko", Depends: []string{"libata"}},
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/intel/igb/igb.ko", Depends: []string{"dca", "i2c_algo_bit"}},
		kmodtest.Module{Path: "kernel/drivers/dca/dca.ko"},
		kmodtest.Module{Path: "kernel/drivers/i2c/algos/i2c-algo-bit.ko"},
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/realtek/r8169.ko", Depends: []string{"libphy"}, Softdep: "pre: realtek",
			Firmware: []string{"rtl_nic/rtl8168e-3.fw", "rtl_nic/rtl8168h-9.fw"}},
		kmodtest.Module{Path: "kernel/drivers/net/phy/realtek.ko", Depends: []string{"libphy"}},
		kmodtest.Module{Path: "kernel/drivers/net/phy/libphy.ko"},
	)
}

// fakeDeb builds a package from a directory tree with dpkg-deb.
func fakeDeb(t *testing.T, root, name, version, out string) {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte("Package: "+name+
		"\nVersion: "+version+"\nArchitecture: all\nMaintainer: test <t@example.org>\nDescription: fake\n"), 0o644)
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "-b", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -b: %v\n%s", err, b)
	}
}

// TestRun builds a fake linux-image .deb with dpkg-deb and runs the whole
// command on it.
func TestRun(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	const rel = "6.1.0-99-amd64"
	kmodtest.Tree(t, filepath.Join(pkg, "lib/modules", rel), fakeModules())
	os.MkdirAll(filepath.Join(pkg, "boot"), 0o755)
	os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755)
	vmlinuz := bytes.Repeat([]byte("kernel"), 1000)
	os.WriteFile(filepath.Join(pkg, "boot", "vmlinuz-"+rel), vmlinuz, 0o644)
	os.WriteFile(filepath.Join(pkg, "DEBIAN", "control"), []byte("Package: linux-image-"+rel+
		"\nVersion: 6.1.999-1\nArchitecture: amd64\nMaintainer: test <t@example.org>\nDescription: fake kernel\n"), 0o644)
	deb := filepath.Join(dir, "kernel.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "-b", pkg, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -b: %v\n%s", err, out)
	}
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("\x7fELF agent"), 0o755)
	out := filepath.Join(dir, "out")
	fwDir := filepath.Join(dir, "firmware")
	fwRoot := filepath.Join(dir, "fwpkg")
	os.MkdirAll(filepath.Join(fwRoot, "lib/firmware/rtl_nic"), 0o755)
	os.WriteFile(filepath.Join(fwRoot, "lib/firmware/rtl_nic/rtl8168e-3.fw"), bytes.Repeat([]byte("fw"), 500), 0o644)
	os.WriteFile(filepath.Join(fwRoot, "lib/firmware/rtl_nic/unrelated.fw"), []byte("x"), 0o644)
	os.MkdirAll(fwDir, 0o755)
	fakeDeb(t, fwRoot, "firmware-realtek", "20230210-5", filepath.Join(fwDir, "firmware-realtek_20230210-5_all.deb"))

	var stdout bytes.Buffer
	err := run(context.Background(), []string{"-kernel-deb", deb, "-firmware", fwDir, "-agent", agent, "-pciids", "", "-out", out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vmlinuz", "total", "coverage: 24 modules", "Ethernet", "firmware from firmware-realtek                    1 files     0.00 MB"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	var m Manifest
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.KernelPackage != "linux-image-"+rel || m.KernelVersion != "6.1.999-1" || m.KernelRelease != rel {
		t.Errorf("kernel identity %q %q %q", m.KernelPackage, m.KernelVersion, m.KernelRelease)
	}
	// The rule's 16 drivers (e1000, virtio_net, igb, r8169, virtio_pci,
	// virtio_blk, ata_piix, ahci, libata, libahci, scsi_mod, scsi_common,
	// sd_mod, virtio_scsi, nvme, nvme_core), plus 8 dependencies:
	// failover, net_failover, the two virtio_pci helpers, dca,
	// i2c_algo_bit, libphy and realtek (r8169's soft dependency).
	if m.ModuleCount != 24 || len(m.Modules) != 24 || slices.Contains(m.Modules, "snd") || !slices.Contains(m.Modules, "realtek") {
		t.Errorf("modules (%d): %v", m.ModuleCount, m.Modules)
	}
	c := m.Coverage
	if len(c.Firmware) != 1 || c.Firmware[0].Name != "rtl_nic/rtl8168e-3.fw" || c.Firmware[0].Raw != 1000 || c.Firmware[0].Bytes == 0 {
		t.Errorf("firmware %+v", c.Firmware)
	}
	if len(c.FirmwareSkipped) != 1 || c.FirmwareSkipped[0].Name != "rtl_nic/rtl8168h-9.fw" {
		t.Errorf("firmware skipped %+v", c.FirmwareSkipped)
	}
	if c.Dependencies != 8 || len(c.Classes) == 0 || c.Classes[0].Class != "Ethernet" || c.Classes[0].Drivers != 4 {
		t.Errorf("coverage %+v", c)
	}
	for _, name := range []string{"vmlinuz", "initrd"} {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if f := m.Files[name]; f.Size != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: manifest says %+v, file has %d bytes", name, f, len(data))
		}
	}
	if m.TotalBytes != m.Files["vmlinuz"].Size+m.Files["initrd"].Size {
		t.Errorf("total %d", m.TotalBytes)
	}

	err = run(context.Background(), []string{"-kernel-deb", deb, "-agent", agent, "-pciids", "", "-out", out, "-budget", "100"}, &stdout)
	if err == nil || !strings.Contains(err.Error(), "over the budget") {
		t.Errorf("budget not enforced: %v", err)
	}
}

// TestRunErrorsSayWhat checks that a failure names the step and the file
// it was working on, not only the system call's error.
func TestRunErrorsSayWhat(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing kernel package", []string{"-kernel-deb", filepath.Join(dir, "none.deb"), "-agent", "a"},
			[]string{"build discovery image in", "kernel package " + filepath.Join(dir, "none.deb")}},
		{"unknown flag", []string{"-nope"}, []string{"parse flags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "missing kernel package" {
				if _, err := exec.LookPath("dpkg-deb"); err != nil {
					t.Skip("dpkg-deb not installed")
				}
			}
			err := run(context.Background(), append(tt.args, "-out", filepath.Join(dir, "out")), io.Discard)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestWriteAtomicErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "taken", "x"), nil, 0o644)
	tests := []struct{ name, path, want string }{
		{"no directory", filepath.Join(dir, "missing", "f"), "write temporary file"},
		{"target is a non-empty directory", filepath.Join(dir, "taken"), "rename into place"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := writeAtomic(tt.path, []byte("x"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if _, err := os.Stat(tt.path + ".tmp"); err == nil {
				t.Error("temporary file left behind")
			}
		})
	}
}
