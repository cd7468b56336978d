// Package drivers decides which kernel drivers Foundry's own Linux images
// carry: the discovery OS and the appliance ISO both take their NIC, disk
// and BMC modules from Select, so a machine the discovery OS can inventory
// is one the appliance can run on.
//
// The rule is by place in the kernel package's module tree, not by a list
// of names: every module under these trees is taken, with its
// dependencies, so a driver Debian adds is covered without a change here.
//
//	Ethernet      kernel/drivers/net/ethernet/**, kernel/drivers/net/vmxnet3/**,
//	              and the paravirtual NICs virtio_net, hv_netvsc, xen-netfront
//	USB Ethernet  kernel/drivers/net/usb/**
//	ATA           kernel/drivers/ata/** (AHCI, SATA and PATA controllers)
//	SCSI          kernel/drivers/scsi/** (SAS, RAID and Fibre Channel HBAs, the
//	              paravirtual ones: virtio_scsi, hv_storvsc, vmw_pvscsi,
//	              xen-scsifront; sd_mod and sr_mod)
//	NVMe          kernel/drivers/nvme/host/**
//	Block         virtio_blk, xen-blkfront and kernel/drivers/block/mtip32xx/**
//	              (not loop, nbd, rbd, zram, drbd, brd, null_blk: no hardware)
//	MMC           kernel/drivers/mmc/host/** and mmc_block
//	USB storage   kernel/drivers/usb/storage/** and the host controllers,
//	              kernel/drivers/usb/host/**
//	Bus           virtio_pci (the transport of every virtio device) and vmd
//	              (Intel VMD, behind which NVMe drives of recent servers sit)
//
// Left out although under those trees, each for a reason stated in
// excluded: drivers that cannot give the discovery OS a disk or a link
// without a userspace daemon it does not have (software and offload
// iSCSI, FCoE, NVMe over TCP and RDMA), SCSI devices that are not disks
// (tape, changers, enclosures, the generic sg), the scsi_debug fake, the
// LIO target, and PC Card drivers (no server has a slot, no firmware
// network-boots from one, and the image has no socket driver).
//
// The platform helpers (virtio_rng for entropy in VMs, ipmi_si and
// ipmi_devintf for the BMC's address) are named, not found by rule.
package drivers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

// Class is what a selected driver is for.
type Class int

const (
	None Class = iota
	Ethernet
	USBEthernet
	ATA
	SCSI
	NVMe
	Block
	MMC
	USBStorage
	Bus
	Platform
)

// Classes lists the classes in the order the coverage report uses.
var Classes = []Class{Ethernet, USBEthernet, ATA, SCSI, NVMe, Block, MMC, USBStorage, Bus, Platform}

func (c Class) String() string {
	switch c {
	case None:
		return "none"
	case Ethernet:
		return "Ethernet"
	case USBEthernet:
		return "USB Ethernet"
	case ATA:
		return "ATA (AHCI, SATA, PATA)"
	case SCSI:
		return "SCSI (SAS, RAID, Fibre Channel, paravirtual)"
	case NVMe:
		return "NVMe"
	case Block:
		return "paravirtual and PCIe block"
	case MMC:
		return "MMC and SD"
	case USBStorage:
		return "USB storage and host controllers"
	case Bus:
		return "buses (virtio, Intel VMD)"
	case Platform:
		return "platform (entropy, BMC)"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

const d = "kernel/drivers/"

// trees are the rule: module paths under these prefixes (or equal to them,
// for the single-file entries ending in .ko) belong to the class.
var trees = []struct {
	prefix string
	class  Class
}{
	{d + "net/ethernet/", Ethernet},
	{d + "net/vmxnet3/", Ethernet},
	{d + "net/virtio_net.ko", Ethernet},
	{d + "net/hyperv/hv_netvsc.ko", Ethernet},
	{d + "net/xen-netfront.ko", Ethernet},
	{d + "net/usb/", USBEthernet},
	{d + "ata/", ATA},
	{d + "scsi/", SCSI},
	{d + "nvme/host/", NVMe},
	{d + "block/virtio_blk.ko", Block},
	{d + "block/xen-blkfront.ko", Block},
	{d + "block/mtip32xx/", Block},
	{d + "mmc/host/", MMC},
	{d + "mmc/core/mmc_block.ko", MMC},
	{d + "usb/storage/", USBStorage},
	{d + "usb/host/", USBStorage},
	{d + "virtio/virtio_pci.ko", Bus},
	{d + "pci/controller/vmd.ko", Bus},
}

// platform are the helpers taken by name when the kernel has them as
// modules.
var platform = []string{
	// A VM's entropy source: without RDRAND or jitter the kernel's RNG
	// starts slowly.
	"virtio_rng",
	// The BMC's system interface, for its LAN address.
	"ipmi_si", "ipmi_devintf",
}

// Excluded are the modules under the rule's trees that the images leave
// out, with the reason; the build test holds every other module of the
// trees to be selected.
var Excluded = map[string]string{
	"scsi_debug":   "creates fake disks when loaded; drives no hardware",
	"st":           "SCSI tape, not a disk",
	"ch":           "SCSI media changer, not a disk",
	"ses":          "SCSI enclosure services (slot LEDs, fans), not a disk",
	"sg":           "generic SCSI pass-through for userspace tools; disks come from sd_mod",
	"iscsi_tcp":    "software iSCSI: sessions come from iscsid, which the image does not have",
	"libiscsi_tcp": "software iSCSI: sessions come from iscsid, which the image does not have",
	"be2iscsi":     "iSCSI offload: sessions come from iscsid, which the image does not have",
	"bnx2i":        "iSCSI offload: sessions come from iscsid, which the image does not have",
	"cxgb3i":       "iSCSI offload: sessions come from iscsid, which the image does not have",
	"cxgb4i":       "iSCSI offload: sessions come from iscsid, which the image does not have",
	"libcxgbi":     "iSCSI offload: sessions come from iscsid, which the image does not have",
	"qedi":         "iSCSI offload: sessions come from iscsid, which the image does not have",
	"fcoe":         "software FCoE: needs fcoemon/fipvlan, which the image does not have",
	"bnx2fc":       "FCoE offload: needs fcoemon/fipvlan, which the image does not have",
	"nvme_tcp":     "NVMe over TCP: connected by `nvme connect`, not found on a bus",
	"nvme_rdma":    "NVMe over RDMA: connected by `nvme connect`, not found on a bus",
	"tcm_qla2xxx":  "LIO target mode: serves disks to other machines",
}

// pcCardReason is why PC Card drivers are left out.
const pcCardReason = "PC Card driver: no server has a slot, no firmware network-boots from one, and the image has no socket driver"

// Classify returns the class the rule gives a module path ("kernel/drivers/
// net/ethernet/intel/e1000/e1000.ko", with or without .xz/.zst), or None.
func Classify(path string) Class {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		path = strings.TrimSuffix(path, ext)
	}
	for _, t := range trees {
		if strings.HasSuffix(t.prefix, "/") && strings.HasPrefix(path, t.prefix) || path == t.prefix {
			return t.class
		}
	}
	return None
}

// Driver is one module the rule selected.
type Driver struct {
	Name, Path string
	Class      Class
}

// Exclusion is a module under the rule's trees that is left out.
type Exclusion struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Plan is the rule applied to one kernel's module tree.
type Plan struct {
	// Drivers are the selected modules, sorted by name (their dependencies
	// are not listed: Tree.Closure adds them).
	Drivers []Driver
	// Excluded are the modules of the trees left out, sorted by name.
	Excluded []Exclusion
}

// Names returns the selected modules' names, sorted.
func (p Plan) Names() []string {
	out := make([]string, len(p.Drivers))
	for i, d := range p.Drivers {
		out[i] = d.Name
	}
	return out
}

// required must be selected: without them the e2e machines (QEMU e1000,
// virtio, IDE, AHCI, NVMe) and most servers cannot reach the appliance or
// see their disks. One missing means the package moved them (built in? a
// new path?) and the rule must follow.
var required = []string{
	"e1000", "virtio_net", "virtio_pci", "virtio_blk", "virtio_scsi",
	"ahci", "ata_piix", "nvme", "sd_mod",
}

// Decide applies the rule to a module tree. It reads the metadata of the
// modules under the rule's trees (to find PC Card drivers by their
// aliases).
func Decide(tree *kmod.Tree) (Plan, error) {
	var p Plan
	for _, name := range tree.Names() {
		path := tree.Path(name)
		class := Classify(path)
		if class == None {
			if slices.Contains(platform, name) {
				p.Drivers = append(p.Drivers, Driver{Name: name, Path: path, Class: Platform})
			}
			continue
		}
		reason, ok := Excluded[name]
		if !ok {
			m, err := tree.Module(name)
			if err != nil {
				return Plan{}, fmt.Errorf("read %s: %w", path, err)
			}
			if pcCard(m) {
				reason, ok = pcCardReason, true
			}
		}
		if ok {
			p.Excluded = append(p.Excluded, Exclusion{Name: name, Path: path, Reason: reason})
			continue
		}
		p.Drivers = append(p.Drivers, Driver{Name: name, Path: path, Class: class})
	}
	var missing []string
	for _, n := range required {
		if !slices.ContainsFunc(p.Drivers, func(d Driver) bool { return d.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Plan{}, fmt.Errorf("kernel package lacks required driver modules %v where the rule looks (built in, or moved? then follow them)", missing)
	}
	return p, nil
}

// pcCard reports whether a module binds only to PC Card devices.
func pcCard(m kmod.Module) bool {
	found := false
	for _, a := range m.Aliases {
		if !strings.HasPrefix(a, "pcmcia:") {
			return false
		}
		found = true
	}
	return found
}

// Select returns the selected modules' names, sorted (dependencies are
// added by the caller's closure). It is Decide for callers that need only
// the names: the appliance ISO adds its own on top.
func Select(tree *kmod.Tree) ([]string, error) {
	p, err := Decide(tree)
	if err != nil {
		return nil, err
	}
	return p.Names(), nil
}
