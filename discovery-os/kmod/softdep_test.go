package kmod

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

// softTree has the soft dependencies of Debian's kernel that matter to
// the discovery image: r8169 needs the realtek PHY driver (request_module
// would load it, and the image has no modprobe), libcrc32c asks the crypto
// API for "crc32c", an alias two modules carry.
var softTree = []kmodtest.Module{
	{Path: "kernel/drivers/net/ethernet/realtek/r8169.ko", Depends: []string{"libphy"}, Softdep: "pre: realtek",
		Aliases:  []string{"pci:v000010ECd00008168sv*sd*bc*sc*i*"},
		Firmware: []string{"rtl_nic/rtl8168d-1.fw", "rtl_nic/rtl8168e-3.fw"}},
	{Path: "kernel/drivers/net/phy/realtek.ko", Depends: []string{"libphy"}},
	{Path: "kernel/drivers/net/phy/libphy.ko"},
	{Path: "kernel/lib/libcrc32c.ko", Softdep: "pre: crc32c"},
	{Path: "kernel/crypto/crc32c_generic.ko", Aliases: []string{"crypto-crc32c-generic", "crc32c-generic", "crypto-crc32c", "crc32c"}},
	{Path: "kernel/arch/x86/crypto/crc32c-intel.ko", Aliases: []string{"crypto-crc32c", "crc32c", "cpu:type:x86,ven*fam*mod*:feature:*0094*"}},
	{Path: "kernel/drivers/usb/host/ohci-pci.ko", Depends: []string{"ohci_hcd"}, Softdep: "pre: ehci_pci post: nothing_here"},
	{Path: "kernel/drivers/usb/host/ohci-hcd.ko"},
	{Path: "kernel/drivers/usb/host/ehci-pci.ko", Softdep: "post: ohci_pci"}, // a soft cycle
}

func TestParseSoftdep(t *testing.T) {
	tests := []struct {
		in        string
		pre, post []string
	}{
		{"pre: realtek", []string{"realtek"}, nil},
		{"pre: a b-c post: d", []string{"a", "b_c"}, []string{"d"}},
		{"post: x pre: y", []string{"y"}, []string{"x"}},
		{"stray pre:", nil, nil},
		{"", nil, nil},
	}
	for _, tt := range tests {
		pre, post := ParseSoftdep(tt.in)
		if !slices.Equal(pre, tt.pre) || !slices.Equal(post, tt.post) {
			t.Errorf("ParseSoftdep(%q) = %v, %v; want %v, %v", tt.in, pre, post, tt.pre, tt.post)
		}
	}
}

func TestParseModinfoFirmwareAndSoftdep(t *testing.T) {
	dir := kmodtest.Tree(t, t.TempDir(), softTree)
	img, err := ReadFile(filepath.Join(dir, softTree[0].Path))
	if err != nil {
		t.Fatal(err)
	}
	mi, err := ParseModinfo(img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mi.SoftPre, []string{"realtek"}) || len(mi.SoftPost) != 0 ||
		!slices.Equal(mi.Firmware, []string{"rtl_nic/rtl8168d-1.fw", "rtl_nic/rtl8168e-3.fw"}) {
		t.Fatalf("modinfo %+v", mi)
	}
}

func TestClosureSoftdeps(t *testing.T) {
	tree, err := OpenTree(kmodtest.Tree(t, t.TempDir(), softTree))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tree.Resolve("crc32c"); !slices.Equal(got, []string{"crc32c_generic", "crc32c_intel"}) {
		t.Errorf("Resolve(crc32c) = %v", got)
	}
	mods, missing, err := tree.Closure([]string{"r8169", "libcrc32c", "ohci_pci"})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 0 {
		t.Errorf("missing %v: an unresolvable softdep is not missing", missing)
	}
	var names []string
	byName := map[string]Module{}
	for _, m := range mods {
		names = append(names, m.Name)
		byName[m.Name] = m
	}
	want := []string{"libphy", "realtek", "r8169", "crc32c_generic", "crc32c_intel", "libcrc32c", "ohci_hcd", "ehci_pci", "ohci_pci"}
	if !slices.Equal(names, want) {
		t.Fatalf("closure %v\nwant    %v", names, want)
	}
	if p := byName["libcrc32c"].SoftPre; !slices.Equal(p, []string{"crc32c_generic", "crc32c_intel"}) {
		t.Errorf("libcrc32c's softdeps resolved to %v", p)
	}
	if p := byName["ohci_pci"].SoftPost; len(p) != 0 {
		t.Errorf("ohci_pci's post softdep on a module that does not exist kept: %v", p)
	}

	var sd bytes.Buffer
	if err := WriteSoftdep(&sd, mods); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"softdep r8169 pre: realtek\n", "softdep libcrc32c pre: crc32c_generic crc32c_intel\n", "softdep ohci_pci pre: ehci_pci\n"} {
		if !strings.Contains(sd.String(), line) {
			t.Errorf("modules.softdep lacks %q:\n%s", line, sd.String())
		}
	}
	pre, post, err := ParseSoftdepFile(&sd)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pre["libcrc32c"], []string{"crc32c_generic", "crc32c_intel"}) || !slices.Equal(post["ehci_pci"], []string{"ohci_pci"}) {
		t.Errorf("read back pre %v post %v", pre, post)
	}
	if _, _, err := ParseSoftdepFile(strings.NewReader("alias x y\n")); err == nil {
		t.Error("a line that is not a softdep was accepted")
	}
}

// TestLoaderSoftdeps: the loader inserts a module's soft pre-dependencies
// first and its post ones after, carries on when one fails, and follows a
// soft cycle only once.
func TestLoaderSoftdeps(t *testing.T) {
	dir := kmodtest.Tree(t, t.TempDir(), softTree)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, _, err := tree.Closure(tree.Names())
	if err != nil {
		t.Fatal(err)
	}
	writeIndex(t, dir, mods)
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var inserted []string
	l := &Loader{Dir: dir, Index: ix, Insert: func(p string) error {
		n := NameOf(p)
		if n == "crc32c_intel" {
			return errors.New("no such device") // a CPU without SSE 4.2
		}
		inserted = append(inserted, n)
		return nil
	}}
	for _, m := range []string{"r8169", "libcrc32c", "ohci_pci"} {
		if err := l.Load(m); err != nil {
			t.Fatalf("load %s: %v", m, err)
		}
	}
	want := []string{"libphy", "realtek", "r8169", "crc32c_generic", "libcrc32c", "ehci_pci", "ohci_hcd", "ohci_pci"}
	if !slices.Equal(inserted, want) {
		t.Fatalf("inserted %v\nwant     %v", inserted, want)
	}
}

func writeIndex(t *testing.T, dir string, mods []Module) {
	t.Helper()
	var dep, alias, soft bytes.Buffer
	for _, w := range []error{WriteDep(&dep, mods), WriteAlias(&alias, mods), WriteSoftdep(&soft, mods)} {
		if w != nil {
			t.Fatal(w)
		}
	}
	for name, b := range map[string][]byte{"modules.dep": dep.Bytes(), "modules.alias": alias.Bytes(), "modules.softdep": soft.Bytes()} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProbe: what request_module asks for by name or by alias loads, with
// dependencies; an unknown name is an error.
func TestProbe(t *testing.T) {
	dir := kmodtest.Tree(t, t.TempDir(), append(slices.Clone(softTree),
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/mellanox/mlx4/mlx4_en.ko", Depends: []string{"mlx4_core"}},
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/mellanox/mlx4/mlx4_core.ko", Aliases: []string{"pci:v000015B3d00001003sv*sd*bc*sc*i*"}},
		kmodtest.Module{Path: "kernel/drivers/net/phy/marvell.ko", Depends: []string{"libphy"}, Aliases: []string{"mdio:0000000101000001000011001101????"}},
	))
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, _, err := tree.Closure(tree.Names())
	if err != nil {
		t.Fatal(err)
	}
	writeIndex(t, dir, mods)
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var inserted []string
	l := &Loader{Dir: dir, Index: ix, Insert: func(p string) error { inserted = append(inserted, NameOf(p)); return nil }}
	tests := []struct {
		name    string
		want    []string
		inserts []string
	}{
		{"mlx4-en", []string{"mlx4_en"}, []string{"mlx4_core", "mlx4_en"}},
		{"mdio:00000001010000010000110011010001", []string{"marvell"}, []string{"libphy", "marvell"}},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}, []string{"crc32c_generic", "crc32c_intel"}},
		{"mlx4_en", []string{"mlx4_en"}, nil}, // already loaded
	}
	for _, tt := range tests {
		inserted = nil
		got, err := l.Probe(tt.name)
		if err != nil || !slices.Equal(got, tt.want) || !slices.Equal(inserted, tt.inserts) {
			t.Errorf("Probe(%q) = %v, %v, inserting %v; want %v inserting %v", tt.name, got, err, inserted, tt.want, tt.inserts)
		}
	}
	if _, err := l.Probe("net-pf-99"); err == nil {
		t.Error("an unknown alias was found")
	}
}
