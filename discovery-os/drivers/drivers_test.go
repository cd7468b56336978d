package drivers

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

func TestClassify(t *testing.T) {
	tests := map[string]Class{
		"kernel/drivers/net/ethernet/intel/e1000/e1000.ko":     Ethernet,
		"kernel/drivers/net/ethernet/realtek/8139too.ko.xz":    Ethernet,
		"kernel/drivers/net/vmxnet3/vmxnet3.ko":                Ethernet,
		"kernel/drivers/net/virtio_net.ko":                     Ethernet,
		"kernel/drivers/net/hyperv/hv_netvsc.ko":               Ethernet,
		"kernel/drivers/net/xen-netfront.ko.zst":               Ethernet,
		"kernel/drivers/net/usb/r8152.ko":                      USBEthernet,
		"kernel/drivers/ata/ahci.ko":                           ATA,
		"kernel/drivers/scsi/megaraid/megaraid_sas.ko":         SCSI,
		"kernel/drivers/scsi/sd_mod.ko":                        SCSI,
		"kernel/drivers/nvme/host/nvme.ko":                     NVMe,
		"kernel/drivers/block/virtio_blk.ko":                   Block,
		"kernel/drivers/block/mtip32xx/mtip32xx.ko":            Block,
		"kernel/drivers/mmc/host/sdhci-pci.ko":                 MMC,
		"kernel/drivers/mmc/core/mmc_block.ko":                 MMC,
		"kernel/drivers/usb/storage/uas.ko":                    USBStorage,
		"kernel/drivers/usb/host/xhci-pci.ko":                  USBStorage,
		"kernel/drivers/virtio/virtio_pci.ko":                  Bus,
		"kernel/drivers/pci/controller/vmd.ko":                 Bus,
		"kernel/drivers/block/loop.ko":                         None,
		"kernel/drivers/block/nbd.ko":                          None,
		"kernel/drivers/nvme/target/nvmet.ko":                  None,
		"kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko": None,
		"kernel/drivers/net/virtio_net.ko.bak":                 None,
		"kernel/drivers/net/ethernetx/y.ko":                    None,
		"kernel/drivers/mmc/core/mmc_core.ko":                  None, // a dependency, not a driver
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko":       None,
		"kernel/sound/pci/hda/snd-hda-intel.ko":                None,
		"kernel/drivers/net/hyperv/hv_netvsc.ko.extra/more.ko": None,
	}
	for path, want := range tests {
		if got := Classify(path); got != want {
			t.Errorf("Classify(%q) = %v, want %v", path, got, want)
		}
	}
}

// fakeTree has drivers of every class, a few that are left out by rule,
// and modules outside the rule's trees.
func fakeTree(t *testing.T) *kmod.Tree {
	t.Helper()
	mods := append(slices.Clone(kmodtest.Debian),
		kmodtest.Module{Path: "kernel/drivers/scsi/virtio_scsi.ko", Depends: []string{"scsi_mod"}},
		kmodtest.Module{Path: "kernel/drivers/ata/ahci.ko", Depends: []string{"libahci", "libata"}, Aliases: []string{"pci:v*d*sv*sd*bc01sc06i01*"}},
		kmodtest.Module{Path: "kernel/drivers/ata/libahci.ko", Depends: []string{"libata"}},
		kmodtest.Module{Path: "kernel/drivers/ata/pata_pcmcia.ko", Depends: []string{"libata", "pcmcia"}, Aliases: []string{"pcmcia:m*c*f*fn*pfn*pa*pb5A362506pc*pd*"}},
		kmodtest.Module{Path: "kernel/drivers/pcmcia/pcmcia.ko"},
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/broadcom/b44.ko", Depends: []string{"ssb"}, Aliases: []string{"ssb:v4243id0806rev*"}},
		kmodtest.Module{Path: "kernel/drivers/ssb/ssb.ko", Depends: []string{"pcmcia"}, Aliases: []string{"pci:v000014E4d00004401sv*sd*bc*sc*i*", "pcmcia:m02D0c0448f*fn*pfn*pa*pb*pc*pd*"}},
		kmodtest.Module{Path: "kernel/drivers/net/usb/r8152.ko", Firmware: []string{"rtl_nic/rtl8153a-2.fw"}},
		kmodtest.Module{Path: "kernel/drivers/scsi/scsi_debug.ko", Depends: []string{"scsi_mod"}},
		kmodtest.Module{Path: "kernel/drivers/scsi/st.ko", Depends: []string{"scsi_mod"}, Aliases: []string{"scsi:t-0x01*"}},
		kmodtest.Module{Path: "kernel/drivers/scsi/hv_storvsc.ko", Depends: []string{"scsi_mod", "hv_vmbus"}},
		kmodtest.Module{Path: "kernel/drivers/hv/hv_vmbus.ko"},
		kmodtest.Module{Path: "kernel/drivers/mmc/host/sdhci-pci.ko"},
		kmodtest.Module{Path: "kernel/drivers/mmc/core/mmc_block.ko", Depends: []string{"mmc_core"}},
		kmodtest.Module{Path: "kernel/drivers/mmc/core/mmc_core.ko"},
		kmodtest.Module{Path: "kernel/drivers/mmc/core/sdio_uart.ko", Depends: []string{"mmc_core"}},
		kmodtest.Module{Path: "kernel/drivers/pci/controller/vmd.ko"},
		kmodtest.Module{Path: "kernel/drivers/block/loop.ko"},
		kmodtest.Module{Path: "kernel/drivers/char/hw_random/virtio-rng.ko"},
		kmodtest.Module{Path: "kernel/drivers/char/ipmi/ipmi_si.ko"},
	)
	tree, err := kmod.OpenTree(kmodtest.Tree(t, t.TempDir(), mods))
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestDecide(t *testing.T) {
	p, err := Decide(fakeTree(t))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Class{}
	for _, d := range p.Drivers {
		byName[d.Name] = d.Class
	}
	want := map[string]Class{
		"e1000": Ethernet, "virtio_net": Ethernet, "b44": Ethernet, "r8152": USBEthernet,
		"ata_piix": ATA, "ahci": ATA, "libata": ATA, "libahci": ATA,
		"scsi_mod": SCSI, "scsi_common": SCSI, "sd_mod": SCSI, "virtio_scsi": SCSI, "hv_storvsc": SCSI,
		"nvme": NVMe, "nvme_core": NVMe, "virtio_blk": Block,
		"sdhci_pci": MMC, "mmc_block": MMC, "virtio_pci": Bus, "vmd": Bus,
		"virtio_rng": Platform, "ipmi_si": Platform,
	}
	for n, c := range want {
		if byName[n] != c {
			t.Errorf("%s: class %v, want %v", n, byName[n], c)
		}
	}
	for n := range byName {
		if _, ok := want[n]; !ok {
			t.Errorf("%s selected (%v)", n, byName[n])
		}
	}
	if !slices.IsSorted(p.Names()) {
		t.Errorf("names not sorted: %v", p.Names())
	}
	var excluded []string
	for _, e := range p.Excluded {
		excluded = append(excluded, e.Name)
		if e.Reason == "" || e.Path == "" {
			t.Errorf("exclusion %+v without a reason or path", e)
		}
	}
	// b44 stays although ssb, its bus, can also serve PC Cards: only a
	// driver whose every alias is a PC Card is left out.
	if !slices.Equal(excluded, []string{"pata_pcmcia", "scsi_debug", "st"}) {
		t.Errorf("excluded %v", excluded)
	}

	names, err := Select(fakeTree(t))
	if err != nil || !slices.Equal(names, p.Names()) {
		t.Errorf("Select = %v, %v", names, err)
	}
}

func TestDecideRequired(t *testing.T) {
	tree, err := kmod.OpenTree(kmodtest.Tree(t, t.TempDir(), kmodtest.Debian))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Decide(tree)
	if err == nil || !strings.Contains(err.Error(), "[virtio_scsi ahci]") {
		t.Fatalf("err = %v, want it to name virtio_scsi and ahci", err)
	}
}

func TestExcludedAreUnderTheTrees(t *testing.T) {
	// An exclusion of a module the rule would not take anyway is a stale
	// entry: every name must be a module file name under a tree of the
	// rule in Debian's package (checked against the real package by
	// TestDebianKernel; here only the spelling).
	for n, why := range Excluded {
		if n != kmod.Normalize(n) || why == "" {
			t.Errorf("exclusion %q (%q): module names use underscores and need a reason", n, why)
		}
	}
	for _, n := range append(slices.Clone(required), platform...) {
		if _, ok := Excluded[n]; ok {
			t.Errorf("%s both required and excluded", n)
		}
	}
}

func TestNewest(t *testing.T) {
	in := []string{"bnx2x/bnx2x-e2-7.13.15.0.fw", "bnx2x/bnx2x-e1-7.13.21.0.fw", "bnx2x/bnx2x-e2-7.13.21.0.fw",
		"bnx2x/bnx2x-e1-7.13.15.0.fw", "bnx2x/bnx2x-e1h-7.13.9.0.fw", "bnx2x/bnx2x-e1h-7.13.15.0.fw",
		"rtl_nic/rtl8168d-1.fw", "rtl_nic/rtl8168d-2.fw", "ql2500_fw.bin"}
	want := []string{"bnx2x/bnx2x-e2-7.13.21.0.fw", "bnx2x/bnx2x-e1-7.13.21.0.fw", "bnx2x/bnx2x-e1h-7.13.15.0.fw",
		"rtl_nic/rtl8168d-1.fw", "rtl_nic/rtl8168d-2.fw", "ql2500_fw.bin"}
	if got := newest(in); !slices.Equal(got, want) {
		t.Errorf("newest = %v\nwant     %v", got, want)
	}
}

func TestFirmware(t *testing.T) {
	dir := t.TempDir()
	write := func(pkg, name, content string) {
		p := filepath.Join(dir, pkg, "lib/firmware", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	write("firmware-realtek", "rtl_nic/rtl8168e-3.fw", "rtl")
	write("firmware-bnx2x", "bnx2x/bnx2x-e1-7.13.15.0.fw", "old")
	write("firmware-bnx2x", "bnx2x/bnx2x-e1-7.13.21.0.fw", "new")
	write("firmware-misc-nonfree", "intel/ice/ddp/ice-1.3.30.0.pkg", "ddp")
	os.Symlink("ice-1.3.30.0.pkg", filepath.Join(dir, "firmware-misc-nonfree/lib/firmware/intel/ice/ddp/ice.pkg"))
	write("firmware-misc-nonfree", "cxgb4/t4fw.bin", "t4")
	write("firmware-netxen", "phanfw.bin", "phan")
	os.Symlink("/etc/passwd", filepath.Join(dir, "firmware-misc-nonfree/lib/firmware/evil.bin"))
	pkgs := []Package{{"firmware-realtek", filepath.Join(dir, "firmware-realtek")},
		{"firmware-bnx2x", filepath.Join(dir, "firmware-bnx2x")},
		{"firmware-misc-nonfree", filepath.Join(dir, "firmware-misc-nonfree")},
		{"firmware-netxen", filepath.Join(dir, "firmware-netxen")}}
	mods := []kmod.Module{
		{Name: "r8169", Firmware: []string{"rtl_nic/rtl8168e-3.fw"}},
		{Name: "r8152", Firmware: []string{"rtl_nic/rtl8168e-3.fw", "rtl_nic/rtl8153a-2.fw"}},
		{Name: "bnx2x", Firmware: []string{"bnx2x/bnx2x-e1-7.13.15.0.fw", "bnx2x/bnx2x-e1-7.13.21.0.fw"}},
		{Name: "ice", Firmware: []string{"intel/ice/ddp/ice.pkg"}},
		{Name: "cxgb4", Firmware: []string{"cxgb4/t4fw.bin"}},
		{Name: "netxen_nic", Firmware: []string{"phanfw.bin"}},
		// Both drivers that name it start their cards without it.
		{Name: "qlcnic", Firmware: []string{"phanfw.bin"}},
		{Name: "e1000"},
	}
	plan, err := Firmware(mods, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range plan.Files {
		files = append(files, f.Name+" "+f.Package+" "+strings.Join(f.Modules, ","))
		if b, _ := os.ReadFile(f.Src); int64(len(b)) != f.Size {
			t.Errorf("%s: size %d, file has %d", f.Name, f.Size, len(b))
		}
	}
	wantFiles := []string{
		"bnx2x/bnx2x-e1-7.13.21.0.fw firmware-bnx2x bnx2x",
		"intel/ice/ddp/ice.pkg firmware-misc-nonfree ice",
		"rtl_nic/rtl8168e-3.fw firmware-realtek r8152,r8169",
	}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("files\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
	}
	var skipped []string
	for _, s := range plan.Skipped {
		skipped = append(skipped, s.Name+": "+s.Reason)
	}
	wantSkipped := []string{
		"bnx2x/bnx2x-e1-7.13.15.0.fw: an older version of a file its module also names",
		"cxgb4/t4fw.bin: the card starts without it: cxgb4 runs the firmware on the card when it is compatible (t4_prep_fw)",
		"phanfw.bin: the card starts without it: netxen_nic falls back to the card's flash image (NX_FLASH_ROMIMAGE)",
		"rtl_nic/rtl8153a-2.fw: in none of the firmware packages the build reads",
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped\n%s\nwant\n%s", strings.Join(skipped, "\n"), strings.Join(wantSkipped, "\n"))
	}

	// A name that leads out of the package is refused.
	mods = append(mods, kmod.Module{Name: "evil", Firmware: []string{"evil.bin"}})
	if _, err := Firmware(mods, pkgs); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("a link to the build host's /etc/passwd: err = %v", err)
	}
}
