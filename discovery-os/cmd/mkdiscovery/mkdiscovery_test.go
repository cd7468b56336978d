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
	)
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

	var stdout bytes.Buffer
	err := run(context.Background(), []string{"-kernel-deb", deb, "-agent", agent, "-pciids", "", "-out", out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "vmlinuz") || !strings.Contains(stdout.String(), "total") {
		t.Errorf("sizes not printed:\n%s", stdout.String())
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
	// 9 required + igb, plus 11 dependencies: failover, net_failover, the
	// two virtio_pci helpers, scsi_common, scsi_mod, libata, libahci,
	// nvme_core, dca and i2c_algo_bit.
	if m.ModuleCount != 21 || len(m.Modules) != 21 || slices.Contains(m.Modules, "snd") {
		t.Errorf("modules (%d): %v", m.ModuleCount, m.Modules)
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
