package kmod

import (
	"bytes"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

func TestParseModinfo(t *testing.T) {
	img := kmodtest.ELF("virtio-net", []string{"net_failover", "failover"}, []string{"virtio:d00000001v*"})
	mi, err := ParseModinfo(img)
	if err != nil {
		t.Fatal(err)
	}
	want := Modinfo{Name: "virtio_net", Depends: []string{"net_failover", "failover"}, Aliases: []string{"virtio:d00000001v*"}}
	if mi.Name != want.Name || !slices.Equal(mi.Depends, want.Depends) || !slices.Equal(mi.Aliases, want.Aliases) {
		t.Fatalf("got %+v, want %+v", mi, want)
	}
	if _, err := ParseModinfo([]byte("not an ELF file")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestNameOf(t *testing.T) {
	tests := map[string]string{
		"kernel/drivers/nvme/host/nvme-core.ko": "nvme_core",
		"kernel/fs/fat/vfat.ko.xz":              "vfat",
		"e1000e.ko.zst":                         "e1000e",
	}
	for in, want := range tests {
		if got := NameOf(in); got != want {
			t.Errorf("NameOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClosureAndIndexRoundTrip(t *testing.T) {
	dir := kmodtest.Tree(t, t.TempDir(), kmodtest.Debian)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, missing, err := tree.Closure([]string{"virtio_net", "ata_piix", "sd_mod", "af_packet", "virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	want := []string{"failover", "net_failover", "virtio_net", "scsi_common", "scsi_mod", "libata", "ata_piix", "sd_mod"}
	if !slices.Equal(names, want) {
		t.Fatalf("closure = %v, want %v", names, want)
	}
	if !slices.Equal(missing, []string{"af_packet"}) {
		t.Fatalf("missing = %v", missing)
	}

	var dep, alias bytes.Buffer
	if err := WriteDep(&dep, mods); err != nil {
		t.Fatal(err)
	}
	if err := WriteAlias(&alias, mods); err != nil {
		t.Fatal(err)
	}
	wantLine := "kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko\n"
	if !strings.Contains(dep.String(), wantLine) {
		t.Errorf("modules.dep lacks %q:\n%s", wantLine, dep.String())
	}
	ix, err := ParseDep(&dep)
	if err != nil {
		t.Fatal(err)
	}
	if ix.Aliases, err = ParseAlias(&alias); err != nil {
		t.Fatal(err)
	}
	if got := ix.Paths["scsi_mod"]; got != "kernel/drivers/scsi/scsi_mod.ko" {
		t.Errorf("path of scsi_mod = %q", got)
	}
	if got := ix.Match("scsi:t-0x00"); !slices.Equal(got, []string{"sd_mod"}) {
		t.Errorf("scsi disk matched %v", got)
	}
}

func TestWriteDepIncomplete(t *testing.T) {
	mods := []Module{{Name: "a", Path: "a.ko", Depends: []string{"b"}}}
	if err := WriteDep(&bytes.Buffer{}, mods); err == nil {
		t.Fatal("a set missing a dependency was written")
	}
}

func TestLoader(t *testing.T) {
	dir := kmodtest.Tree(t, t.TempDir(), kmodtest.Debian)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]string, 0, len(kmodtest.Debian))
	for _, m := range kmodtest.Debian {
		all = append(all, NameOf(m.Path))
	}
	mods, _, err := tree.Closure(all)
	if err != nil {
		t.Fatal(err)
	}
	var dep, alias bytes.Buffer
	WriteDep(&dep, mods)
	WriteAlias(&alias, mods)
	os.WriteFile(filepath.Join(dir, "modules.dep"), dep.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.alias"), alias.Bytes(), 0o644)
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}

	// A QEMU machine: PIIX IDE, e1000 and a virtio disk; loading
	// virtio_pci makes the virtio device appear, as the kernel would.
	sys := t.TempDir()
	device := func(bus, name, modalias string) {
		d := filepath.Join(sys, "bus", bus, "devices", name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "modalias"), []byte(modalias+"\n"), 0o644)
	}
	device("pci", "0000:00:01.1", "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80")
	device("pci", "0000:00:03.0", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00")
	device("pci", "0000:00:04.0", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")
	device("pci", "0000:00:05.0", "pci:v0000DEADd0000BEEFsv00000000sd00000000bc08sc80i00")

	var inserted []string
	l := &Loader{Dir: dir, Index: ix, Insert: func(p string) error {
		rel, _ := filepath.Rel(dir, p)
		inserted = append(inserted, NameOf(rel))
		if NameOf(rel) == "virtio_pci" {
			device("virtio", "virtio0", "virtio:d00000002v00001AF4")
		}
		return nil
	}}
	if err := l.LoadForDevices(sys); err != nil {
		t.Fatal(err)
	}
	// Devices in modalias order, dependencies first, the virtio disk last
	// because its device appeared only after virtio_pci was loaded.
	want := []string{"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "e1000",
		"scsi_common", "scsi_mod", "libata", "ata_piix", "virtio_blk"}
	if !slices.Equal(inserted, want) {
		t.Fatalf("inserted %v\nwant     %v", inserted, want)
	}

	// A failing insert is reported and not retried; the rest stays loaded.
	boom := errors.New("exec format error")
	l2 := &Loader{Dir: dir, Index: ix, Insert: func(p string) error {
		if strings.HasSuffix(p, "/e1000.ko") {
			return boom
		}
		return nil
	}}
	if err := l2.LoadForDevices(sys); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if slices.Contains(l2.Loaded(), "e1000") || !slices.Contains(l2.Loaded(), "ata_piix") {
		t.Fatalf("loaded %v", l2.Loaded())
	}
	if err := l2.Load("nonexistent"); err == nil {
		t.Fatal("unknown module loaded")
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", true},
		{"pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00", false},
		{"pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", true},
		{"pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc06i01", false},
		{"acpi*:IPI0001:*", "acpi:IPI0001:", true},
		{"of:N*T*Cfsl,imx6q-fec", "of:NethernetTCfsl,imx6q-fec", true},
		{"usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*", "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00", true},
		{"a?c", "abc", true},
		{"a[0-9]c", "a5c", true},
		{"a[!0-9]c", "a5c", false},
		{"a[^x]c", "abc", true},
		{"a[]]c", "a]c", true},
		{"a[bc", "ab", false},
		{"*/*", "x/y", true},
		{"", "", true},
		{"*", "", true},
		{"**a", "bba", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.name, func(t *testing.T) {
			if got := Glob(tt.pattern, tt.name); got != tt.want {
				t.Errorf("Glob = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzGlob checks Glob against path.Match where their syntaxes agree (no
// '/', no escapes, no '!' negation, ASCII only: modaliases are ASCII and
// Glob, like modprobe's fnmatch in the C locale, works on bytes).
func FuzzGlob(f *testing.F) {
	f.Add("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02")
	f.Add("a[^0-9]*?", "ax1y")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := Glob(pattern, name)
		if strings.ContainsAny(pattern+name, `/\!`) || !isASCII(pattern+name) {
			return
		}
		want, err := path.Match(pattern, name)
		if err != nil {
			return
		}
		if got != want {
			t.Fatalf("Glob(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
