package drivers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/debkernel"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

// kernelDeb is Debian's kernel package the images are built from:
// FOUNDRY_KERNEL_DEB, or the one `make images` downloaded.
func kernelDeb(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FOUNDRY_KERNEL_DEB"); p != "" {
		return p
	}
	b, err := os.ReadFile("../../build/kernel/current")
	if err != nil {
		t.Fatalf("no kernel package: run `make images` (or set FOUNDRY_KERNEL_DEB): %v", err)
	}
	p := strings.TrimSpace(string(b))
	if !filepath.IsAbs(p) {
		p = filepath.Join("../..", p)
	}
	return p
}

// ownTrees restates the rule's trees for the test, on purpose apart from
// the package's table: a change to one that the other does not share
// fails here.
var ownTrees = []string{
	"kernel/drivers/net/ethernet/", "kernel/drivers/net/vmxnet3/", "kernel/drivers/net/usb/",
	"kernel/drivers/net/virtio_net.ko", "kernel/drivers/net/hyperv/hv_netvsc.ko", "kernel/drivers/net/xen-netfront.ko",
	"kernel/drivers/ata/", "kernel/drivers/scsi/", "kernel/drivers/nvme/host/",
	"kernel/drivers/block/virtio_blk.ko", "kernel/drivers/block/xen-blkfront.ko", "kernel/drivers/block/mtip32xx/",
	"kernel/drivers/mmc/host/", "kernel/drivers/mmc/core/mmc_block.ko",
	"kernel/drivers/usb/storage/", "kernel/drivers/usb/host/",
}

// qemuDevices are the modaliases of the emulated NICs and disk controllers
// the tests boot machines with (test/e2e_drivers_test.go), as the kernel
// shows them: each must find its driver in the image.
var qemuDevices = map[string]string{
	"e1000":      "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
	"e1000e":     "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00",
	"rtl8139":    "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00",
	"pcnet":      "pci:v00001022d00002000sv00001AF4sd00001100bc02sc00i00",
	"vmxnet3":    "pci:v000015ADd000007B0sv000015ADsd000007B0bc02sc00i00",
	"virtio-net": "virtio:d00000001v00001AF4",
	"virtio-pci": "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
	"megasas":    "pci:v00001000d00000060sv00001000sd00001013bc01sc04i00",
	"lsi53c895a": "pci:v00001000d00000012sv00000000sd00000000bc01sc00i00",
	"nvme":       "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02",
	"ich9-ahci":  "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
	"piix3-ide":  "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80",
	"scsi-disk":  "scsi:t-0x00",
}

// cloud are the paravirtual and cloud drivers the image must have by name.
var cloud = []string{"virtio_net", "hv_netvsc", "xen_netfront", "vmxnet3", "ena", "gve",
	"virtio_blk", "virtio_scsi", "hv_storvsc", "vmw_pvscsi", "xen_blkfront", "nvme"}

var pciStorageOrNetwork = regexp.MustCompile(`^pci:.*(bc01|bc02sc00)`)

// TestDebianKernel is the build test of issue 15: from the kernel package's
// own module tree, no Ethernet or storage driver is left out of the image.
func TestDebianKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("unpacks and reads Debian's whole kernel package (8 s)")
	}
	deb := kernelDeb(t)
	dir := t.TempDir()
	k, err := debkernel.Unpack(context.Background(), deb, dir)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := kmod.OpenTree(k.ModuleDir)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Decide(tree)
	if err != nil {
		t.Fatal(err)
	}
	selected := map[string]bool{}
	for _, d := range plan.Drivers {
		selected[d.Name] = true
	}
	mods, missing, err := tree.Closure(plan.Names())
	if err != nil || len(missing) > 0 {
		t.Fatalf("closure: missing %v, %v", missing, err)
	}
	inImage := map[string]bool{}
	for _, m := range mods {
		inImage[m.Name] = true
	}
	t.Logf("%s %s: %d drivers by rule, %d modules with dependencies, %d left out", k.Package, k.Version,
		len(plan.Drivers), len(mods), len(plan.Excluded))

	// 1. Every module file under the trees, listed by dpkg-deb rather
	// than by kmod's walk, is selected or excluded with a reason.
	out, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "/" + strings.TrimPrefix(strings.TrimPrefix(k.ModuleDir, dir), "/") + "/"
	underTrees, excludedSeen := 0, map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := strings.TrimPrefix(f[5], ".")
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok || !kmod.IsModuleFile(rel) {
			continue
		}
		if !slices.ContainsFunc(ownTrees, func(tr string) bool {
			return strings.HasPrefix(rel, tr) && (strings.HasSuffix(tr, "/") || rel == tr)
		}) {
			continue
		}
		underTrees++
		name := kmod.NameOf(rel)
		if _, ok := Excluded[name]; ok {
			excludedSeen[name] = true
			continue
		}
		if !selected[name] && !slices.ContainsFunc(plan.Excluded, func(e Exclusion) bool { return e.Name == name }) {
			t.Errorf("%s is under the rule's trees but neither selected nor excluded", rel)
		}
	}
	if underTrees < 300 {
		t.Errorf("only %d modules under the rule's trees: has the package's layout changed?", underTrees)
	}
	for n := range Excluded {
		if !excludedSeen[n] {
			t.Errorf("exclusion of %s, which is no module under the rule's trees: a stale entry", n)
		}
	}
	for _, e := range plan.Excluded {
		if _, listed := Excluded[e.Name]; !listed && e.Reason != pcCardReason {
			t.Errorf("%s excluded for %q", e.Name, e.Reason)
		}
	}

	// 2. Every module of the whole package that claims PCI network or
	// mass-storage controllers by class is in the image.
	for _, n := range tree.Names() {
		m, err := tree.Module(n)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range m.Aliases {
			if pciStorageOrNetwork.MatchString(a) && !inImage[n] {
				if _, ok := Excluded[n]; !ok {
					t.Errorf("%s (%s) claims %s but is not in the image", n, m.Path, a)
				}
			}
		}
	}

	// 3. The emulated hardware of the tests finds its drivers.
	ix := &kmod.Index{}
	for _, m := range mods {
		for _, a := range m.Aliases {
			ix.Aliases = append(ix.Aliases, kmod.Alias{Pattern: a, Module: m.Name})
		}
	}
	for dev, alias := range qemuDevices {
		if got := ix.Match(alias); len(got) == 0 {
			t.Errorf("no driver in the image for QEMU's %s (%s)", dev, alias)
		} else {
			t.Logf("%-11s → %v", dev, got)
		}
	}
	for _, n := range cloud {
		if !selected[n] {
			t.Errorf("%s (hypervisor or cloud) not selected", n)
		}
	}
}
