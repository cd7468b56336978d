package iso

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

func TestGrubConfig(t *testing.T) {
	cfg := grubConfig("1.2.3")
	for _, want := range []string{
		"serial --unit=0 --speed=115200\n",
		"terminal_input console serial\n",
		"terminal_output console serial\n",
		"set timeout=3\n",
		"set default=0\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	// Each entry, in menu order (the first is the default), with its
	// whole kernel line.
	const base = "linux /boot/vmlinuz console=tty0 console=ttyS0,115200 panic=10"
	want := []struct{ title, linux string }{
		{"'Foundry 1.2.3'", base},
		{"'Foundry 1.2.3 - format a blank data disk (key f)' --hotkey=f", base + " foundry.format=yes"},
		{"'Foundry 1.2.3 - run from RAM, ignore data disks (key r)' --hotkey=r", base + " foundry.data=ram"},
		{"'Foundry 1.2.3 - run the setup again (key s)' --hotkey=s", base + " foundry.setup=yes"},
	}
	blocks := strings.Split(cfg, "menuentry ")[1:]
	if len(blocks) != len(want) {
		t.Fatalf("%d menu entries, want %d:\n%s", len(blocks), len(want), cfg)
	}
	for i, w := range want {
		lines := strings.Split(strings.TrimSpace(blocks[i]), "\n")
		got := []string{}
		for _, l := range lines {
			got = append(got, strings.TrimSpace(l))
		}
		wantLines := []string{w.title + " {", w.linux, "initrd /boot/initrd.img", "}"}
		if !slices.Equal(got, wantLines) {
			t.Errorf("entry %d:\n%q\nwant\n%q", i, got, wantLines)
		}
	}
	// The serial console is the last console=, so /dev/console is serial.
	if i, j := strings.Index(KernelArgs, "console=tty0"), strings.Index(KernelArgs, "console=ttyS0"); i < 0 || j < i {
		t.Errorf("KernelArgs %q: serial console must come last", KernelArgs)
	}
}

func TestVolumeID(t *testing.T) {
	tests := []struct{ version, want string }{
		{"1.2.3", "FOUNDRY_1_2_3"},
		{"v0.4.0-12-gabcdef0-dirty", "FOUNDRY_V0_4_0_12_GABCDEF0_DIRTY"},
		{"dev", "FOUNDRY_DEV"},
		{"1.2.3+build~rc1", "FOUNDRY_1_2_3_BUILD_RC1"},
		// ISO 9660 allows 32 characters.
		{"0123456789abcdefghijklmnopqrstuvwxyz", "FOUNDRY_0123456789ABCDEFGHIJKLMN"},
	}
	for _, tt := range tests {
		if got := VolumeID(tt.version); got != tt.want || len(got) > 32 {
			t.Errorf("VolumeID(%q) = %q, want %q", tt.version, got, tt.want)
		}
	}
}

// TestLibrariesMke2fs resolves the build host's own mke2fs, as the ISO
// build does.
func TestLibrariesMke2fs(t *testing.T) {
	if _, err := os.Stat("/sbin/mke2fs"); err != nil {
		t.Skip("no /sbin/mke2fs on this host (Debian's e2fsprogs)")
	}
	files, err := libraries([]string{"/sbin/mke2fs", "/sbin/e2fsck"}, hostLibDirs)
	if err != nil {
		t.Fatal(err)
	}
	byBase := map[string]string{}
	for _, f := range files {
		if f.Src != f.Dst {
			t.Errorf("%s installed as %s: libraries keep the path they were found at", f.Src, f.Dst)
		}
		if _, dup := byBase[filepath.Base(f.Dst)]; dup {
			t.Errorf("%s listed twice", filepath.Base(f.Dst))
		}
		byBase[filepath.Base(f.Dst)] = f.Dst
	}
	for _, want := range []string{"libext2fs.so.2", "libc.so.6", "libcom_err.so.2", "libblkid.so.1", "libuuid.so.1", "libe2p.so.2"} {
		if d := byBase[want]; !strings.HasPrefix(d, "/lib/x86_64-linux-gnu/") && !strings.HasPrefix(d, "/usr/lib/x86_64-linux-gnu/") {
			t.Errorf("%s: at %q; all found: %v", want, d, byBase)
		}
	}
	// The interpreter is where the program asks for it, once: libc
	// names it as a DT_NEEDED too.
	if d := byBase["ld-linux-x86-64.so.2"]; d != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("interpreter at %q", d)
	}
}

func TestLibrariesErrors(t *testing.T) {
	if _, err := os.Stat("/sbin/mke2fs"); err != nil {
		t.Skip("no /sbin/mke2fs on this host")
	}
	tests := []struct {
		name  string
		progs []string
		dirs  []string
		want  string
	}{
		{"library not found", []string{"/sbin/mke2fs"}, []string{t.TempDir()}, "/sbin/mke2fs needs libext2fs.so.2: not found in"},
		{"not ELF", []string{"/etc/mke2fs.conf"}, hostLibDirs, "libraries of /etc/mke2fs.conf: read ELF"},
		{"missing program", []string{"/nonexistent"}, hostLibDirs, "libraries of /nonexistent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := libraries(tt.progs, tt.dirs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCheckStatic builds a static and a dynamically linked Go program:
// only the static one may be /init or foundry.
func TestCheckStatic(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no C compiler for the dynamically linked case")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nimport \"net\"\nfunc main() { net.Dial(\"tcp\", \"\") }\n"), 0o644)
	build := func(cgo, out string) string {
		cmd := exec.Command(gobin, "build", "-o", out, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		return out
	}
	if err := checkStatic(build("0", filepath.Join(dir, "static"))); err != nil {
		t.Errorf("static program refused: %v", err)
	}
	if err := checkStatic(build("1", filepath.Join(dir, "dynamic"))); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("dynamic program: err = %v", err)
	}
	if err := checkStatic(src); err == nil || !strings.Contains(err.Error(), "read ELF") {
		t.Errorf("source file: err = %v", err)
	}
}

func TestSelectModules(t *testing.T) {
	full := append(slices.Clone(kmodtest.Debian),
		kmodtest.Module{Path: "kernel/drivers/scsi/virtio_scsi.ko", Depends: []string{"scsi_mod"}},
		kmodtest.Module{Path: "kernel/drivers/ata/ahci.ko", Depends: []string{"libata"}},
		kmodtest.Module{Path: "kernel/drivers/char/hw_random/virtio-rng.ko"},
	)
	for _, n := range applianceModules {
		full = append(full, kmodtest.Module{Path: "kernel/x/" + strings.ReplaceAll(n, "_", "-") + ".ko"})
	}
	tree, err := kmod.OpenTree(kmodtest.Tree(t, t.TempDir(), full))
	if err != nil {
		t.Fatal(err)
	}
	got, err := selectModules(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"e1000", "virtio_blk", "ext4", "crc32c_generic", "crc32c_intel", "button", "evdev", "usb_storage", "usbhid", "virtio_rng"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s not selected: %v", want, got)
		}
	}
	if slices.Contains(got, "af_packet") {
		t.Error("af_packet selected though it is built in")
	}
	seen := map[string]bool{}
	for _, n := range got {
		if seen[n] {
			t.Errorf("%s selected twice", n)
		}
		seen[n] = true
	}

	// Without ext4 as a module the appliance could not mount its disk.
	noExt4 := slices.DeleteFunc(slices.Clone(full), func(m kmodtest.Module) bool { return strings.HasSuffix(m.Path, "/ext4.ko") })
	tree, err = kmod.OpenTree(kmodtest.Tree(t, t.TempDir(), noExt4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := selectModules(tree); err == nil || !strings.Contains(err.Error(), "[ext4]") {
		t.Errorf("ext4 missing: err = %v", err)
	}
}

func TestBuildSpecErrors(t *testing.T) {
	dir := t.TempDir()
	ok := Spec{KernelDeb: "k.deb", Foundry: "foundry", DiscoveryDir: dir, IPXEDir: dir, Out: filepath.Join(dir, "x.iso")}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"no kernel", func(s *Spec) { s.KernelDeb = "" }, "KernelDeb is required"},
		{"no output", func(s *Spec) { s.Out = "" }, "Out is required"},
		{"quote in version", func(s *Spec) { s.Version = "1'2" }, `version "1'2"`},
		{"space in version", func(s *Spec) { s.Version = "1 2" }, `version "1 2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.modify(&s)
			_, err := Build(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	s, err := ok.withDefaults()
	if err != nil || s.Version != "dev" || s.PCIIDs != "/usr/share/misc/pci.ids" || s.GrubMkrescue != "grub-mkrescue" ||
		s.Mke2fs != "/sbin/mke2fs" || !slices.Equal(s.LibDirs, hostLibDirs) || s.Log == nil {
		t.Errorf("defaults: %+v, %v", s, err)
	}
}

func TestCheckDiscovery(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantErr  string
		wantGood bool
	}{
		{"same kernel", map[string]string{"vmlinuz": "k", "initrd": "i", "manifest.json": `{"kernel_release":"6.1.0-9-amd64"}`}, "", true},
		{"other kernel", map[string]string{"vmlinuz": "k", "initrd": "i", "manifest.json": `{"kernel_release":"6.1.0-8-amd64"}`},
			`built from kernel "6.1.0-8-amd64", the ISO's is "6.1.0-9-amd64"`, false},
		{"no initrd", map[string]string{"vmlinuz": "k", "manifest.json": `{}`}, "initrd:", false},
		{"no manifest", map[string]string{"vmlinuz": "k", "initrd": "i"}, "manifest:", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tt.files {
				os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644)
			}
			err := checkDiscovery(dir, "6.1.0-9-amd64")
			if tt.wantGood != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
