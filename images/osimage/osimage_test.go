package osimage

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		name            string
		espMiB, freeMiB int
		content         int64
		wantRootMiB     int64
	}{
		// 500 MiB + 50 + 256 = 806, rounded up to 64 MiB steps.
		{"typical", 64, 256, 500 * mib, 832},
		{"empty tree still gets the free space", 64, 256, 0, 256},
		{"exact multiple stays", 32, 64, 0, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLayout(tt.espMiB, tt.content, tt.freeMiB)
			if l.RootSize != tt.wantRootMiB*mib {
				t.Errorf("root %d MiB, want %d", l.RootSize/mib, tt.wantRootMiB)
			}
			if l.ESPStart != mib || l.ESPSize != int64(tt.espMiB)*mib || l.RootStart != l.ESPStart+l.ESPSize {
				t.Errorf("partitions not back to back from 1 MiB: %+v", l)
			}
			// The backup GPT (33 sectors) needs the last MiB.
			if l.Total != l.RootStart+l.RootSize+mib {
				t.Errorf("total %d, want root end + 1 MiB", l.Total)
			}
			tbl := l.table()
			if len(tbl.Partitions) != 2 {
				t.Fatalf("%d partitions", len(tbl.Partitions))
			}
			esp, root := tbl.Partitions[0], tbl.Partitions[1]
			if esp.Type != gpt.EFISystemPartition || esp.Attributes != 0 {
				t.Errorf("ESP %+v", esp)
			}
			if root.Type != gpt.LinuxFilesystem || root.Attributes != 1<<2 {
				t.Errorf("root %+v: want Linux file system flagged LegacyBIOSBootable (bit 2)", root)
			}
			for _, p := range tbl.Partitions {
				if (p.End-p.Start+1)*sectorSize != p.Size {
					t.Errorf("partition %d: sectors %d..%d but size %d", p.Index, p.Start, p.End, p.Size)
				}
			}
			if root.Start != esp.End+1 || int64(root.End+1)*sectorSize != l.Total-mib {
				t.Errorf("root %d..%d does not follow the ESP (ends %d) up to the last MiB", root.Start, root.End, esp.End)
			}
		})
	}
}

func TestBootConfig(t *testing.T) {
	c, err := newBootConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(c.RootUUID) {
		t.Errorf("root UUID %q is not a version 4 UUID", c.RootUUID)
	}
	if !regexp.MustCompile(`^[0-9A-F]{4}-[0-9A-F]{4}$`).MatchString(c.ESPSerial) {
		t.Errorf("ESP serial %q is not FAT's XXXX-XXXX", c.ESPSerial)
	}
	if d, _ := newBootConfig(); d == c {
		t.Error("two builds got the same identifiers")
	}
	root := "root=UUID=" + c.RootUUID + " "
	for name, cfg := range map[string]string{"extlinux": c.extlinux(), "grub": c.grubCfg()} {
		// Both boot paths boot the same kernel the same way, through the
		// links that kernel upgrades keep current.
		if !strings.Contains(cfg, root) || !strings.Contains(cfg, "/vmlinuz ") && !strings.Contains(cfg, "LINUX /vmlinuz\n") ||
			!strings.Contains(cfg, "/initrd.img") {
			t.Errorf("%s config:\n%s", name, cfg)
		}
		if !strings.HasSuffix(strings.TrimSpace(strings.Split(cfg[strings.Index(cfg, root):], "\n")[0]), "console=ttyS0,115200n8") {
			t.Errorf("%s: the serial console must be the last console= (it becomes /dev/console):\n%s", name, cfg)
		}
	}
	if e := c.grubEmbedded(); !strings.Contains(e, "insmod part_gpt\ninsmod ext2\nsearch --no-floppy --fs-uuid --set=root "+c.RootUUID+"\n") ||
		strings.Contains(e, "prefix") {
		t.Errorf("embedded grub config must load its modules, find the root by UUID and keep the memdisk prefix:\n%s", e)
	}
	if f := c.fstab(); !strings.HasPrefix(f, "UUID="+c.RootUUID+" / ext4 ") || !strings.Contains(f, "UUID="+c.ESPSerial+" /boot/efi vfat ") ||
		!strings.Contains(f, "nofail") {
		t.Errorf("fstab:\n%s", f)
	}
}

func TestMmdebstrapArgs(t *testing.T) {
	b := Builder{}.withDefaults()
	args := mmdebstrapArgs(b, "/w/root")
	want := []string{"--variant=minbase", `--aptopt=APT::Install-Recommends "false"`,
		"--include=" + strings.Join(DefaultPackages, ","), "--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright"}
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("missing %q in %q", w, args)
		}
	}
	// Suite, target, then the sources, in that order at the end.
	n := len(args)
	tailWant := append([]string{"bookworm", "/w/root"}, DefaultSources...)
	if !slices.Equal(args[n-len(tailWant):], tailWant) {
		t.Errorf("args end %q, want %q", args[n-len(tailWant):], tailWant)
	}
	// dpkg applies the last matching filter: includes after excludes.
	if slices.Index(args, "--dpkgopt=path-include=/usr/share/doc/*/copyright") < slices.Index(args, "--dpkgopt=path-exclude=/usr/share/doc/*") {
		t.Error("path-include comes before path-exclude")
	}
	for _, p := range []string{"cloud-init", "openssh-server", "linux-image-amd64", "ifupdown", "isc-dhcp-client"} {
		if !slices.Contains(DefaultPackages, p) {
			t.Errorf("DefaultPackages lacks %s", p)
		}
	}
}

func TestInputs(t *testing.T) {
	base, err := Builder{}.inputs("mmdebstrap=1.3.5")
	if err != nil {
		t.Fatal(err)
	}
	same, _ := Builder{Dir: "elsewhere", Force: true}.inputs("mmdebstrap=1.3.5")
	if same != base {
		t.Error("where the image goes and -force changed the inputs")
	}
	changes := map[string]func() (string, error){
		"tool version": func() (string, error) { return Builder{}.inputs("mmdebstrap=1.3.6") },
		"packages": func() (string, error) {
			return Builder{Packages: []string{"linux-image-amd64"}}.inputs("mmdebstrap=1.3.5")
		},
		"free space": func() (string, error) { return Builder{RootFreeMiB: 512}.inputs("mmdebstrap=1.3.5") },
		"suite":      func() (string, error) { return Builder{Suite: "trixie"}.inputs("mmdebstrap=1.3.5") },
	}
	for name, f := range changes {
		if h, err := f(); err != nil || h == base {
			t.Errorf("changing the %s left the inputs %s (err %v)", name, h, err)
		}
	}
	// The builder's own sources are inputs (and its tests are not).
	if data, err := sources.ReadFile("disk.go"); err != nil || !strings.Contains(string(data), "func makeDisk") {
		t.Errorf("disk.go is not among the hashed sources: %v", err)
	}
}

func TestCurrent(t *testing.T) {
	dir := t.TempDir()
	p := Builder{Dir: dir}.Paths()
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := current(p, "abc"); ok {
		t.Fatal("current with nothing built")
	}
	for _, f := range []string{p.Raw, p.Zst, p.Sums} {
		write(f, "x")
	}
	write(p.Manifest, `{"name":"debian-12-amd64","raw_bytes":5}`)
	write(p.Stamp, "abc\n")
	if m, ok := current(p, "abc"); !ok || m.RawBytes != 5 {
		t.Errorf("current = %+v, %v; want the manifest", m, ok)
	}
	if _, ok := current(p, "abd"); ok {
		t.Error("current with other inputs")
	}
	os.Remove(p.Zst)
	if _, ok := current(p, "abc"); ok {
		t.Error("current with the compressed image missing")
	}
	if filepath.Base(p.Zst) != "debian-12-amd64.raw.zst" || filepath.Dir(p.Raw) != dir {
		t.Errorf("paths %+v", p)
	}
}

func TestConfigure(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"boot/vmlinuz-6.1.0-99-amd64", "etc/ssh/ssh_host_ed25519_key", "etc/ssh/ssh_host_ed25519_key.pub", "etc/ssh/sshd_config", "etc/machine-id"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte("build host"), 0o644)
	}
	c := bootConfig{RootUUID: "0e9b6a4c-1d2f-4a3b-8c5d-6e7f8a9b0c1d", ESPSerial: "ABCD-1234"}
	if _, err := configure(root, c); err == nil || !strings.Contains(err.Error(), "/vmlinuz") {
		t.Fatalf("configure without the kernel links: %v", err)
	}
	os.Symlink("boot/vmlinuz-6.1.0-99-amd64", filepath.Join(root, "vmlinuz"))
	os.Symlink("boot/vmlinuz-6.1.0-99-amd64", filepath.Join(root, "initrd.img"))
	release, err := configure(root, c)
	if err != nil {
		t.Fatal(err)
	}
	if release != "6.1.0-99-amd64" {
		t.Errorf("release %q", release)
	}
	read := func(f string) string { b, _ := os.ReadFile(filepath.Join(root, f)); return string(b) }
	if got := read("etc/cloud/cloud.cfg.d/90_foundry.cfg"); !strings.Contains(got, "datasource_list: [ NoCloud, None ]") {
		t.Errorf("cloud.cfg.d: %q", got)
	}
	if got := read("etc/cloud/cloud.cfg.d/90_foundry.cfg"); !strings.Contains(got, "\nlocale: C.UTF-8\n") || read("etc/default/locale") != "LANG=C.UTF-8\n" {
		t.Errorf("the locale is not C.UTF-8 for both cloud-init and the system: %q", got)
	}
	if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) != 0 {
		t.Errorf("host keys left in the image: %v", keys)
	}
	if read("etc/ssh/sshd_config") == "" {
		t.Error("configure removed sshd_config")
	}
	if read("etc/machine-id") != "" {
		t.Error("machine-id not emptied")
	}
	if read("boot/extlinux/extlinux.conf") != c.extlinux() || read("boot/grub/grub.cfg") != c.grubCfg() || read("etc/fstab") != c.fstab() {
		t.Error("boot configuration not written")
	}
}

func TestMountsUnder(t *testing.T) {
	const info = `22 1 0:21 / / rw - ext4 /dev/vda rw
90 22 0:5 / /work/build/os/.work-x/root/proc rw - proc proc rw
91 22 0:6 / /work/build/os/.work-x/root/dev rw - devtmpfs udev rw
92 91 0:7 / /work/build/os/.work-x/root/dev/pts rw - devpts devpts rw
93 22 7:0 / /work/build/os/.work-x/mnt\040dir rw - ext4 /dev/loop0 rw
94 22 7:1 / /work/build/os/.work-xy rw - ext4 /dev/loop1 rw
`
	got := mountsUnder(info, "/work/build/os/.work-x")
	want := []string{"/work/build/os/.work-x/root/dev/pts", "/work/build/os/.work-x/root/proc",
		"/work/build/os/.work-x/root/dev", "/work/build/os/.work-x/mnt dir"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q\nwant %q (deepest first, no sibling with a longer name)", got, want)
	}
	if got := mountsUnder(info, "/elsewhere"); len(got) != 0 {
		t.Errorf("mounts under /elsewhere: %q", got)
	}
}
