// Package drivers is the one list of kernel drivers Foundry's own Linux
// images carry for the hardware they meet: the discovery OS and the
// appliance ISO both take their NIC, disk and BMC modules from Select, so
// a machine the discovery OS can inventory is one the appliance can run on.
package drivers

import (
	"fmt"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

// required must be module files in the kernel package: without them the
// e2e machines (QEMU e1000/virtio/IDE/AHCI) and most servers cannot reach
// the appliance or see their disks.
var required = []string{
	"e1000", "virtio_net", "virtio_pci", "virtio_blk", "virtio_scsi",
	"ahci", "ata_piix", "nvme", "sd_mod",
}

// optional are taken when the kernel has them as modules: the NICs, HBAs
// and management interfaces commonly found in servers.
var optional = []string{
	// Intel, Mellanox, Broadcom, Realtek, QLogic and VMware NICs.
	"e1000e", "igb", "igc", "ixgbe", "i40e", "ice",
	"mlx4_core", "mlx4_en", "mlx5_core", "bnxt_en", "tg3", "bnx2x", "r8169", "qede", "vmxnet3",
	// RAID and SAS HBAs.
	"megaraid_sas", "mpt3sas", "smartpqi", "hpsa",
	// A VM's entropy source: without RDRAND or jitter the kernel's RNG
	// starts slowly.
	"virtio_rng",
	// The BMC's system interface, for its LAN address.
	"ipmi_si", "ipmi_devintf",
	// Built into Debian's kernel; taken only where it is a module.
	"af_packet",
}

// Select returns the required modules and the optional ones present in the
// tree, in list order (dependencies are added by the caller's closure). A
// required driver that is not a module file is an error: it is either
// built in (then drop it from the list) or missing from the package.
func Select(tree *kmod.Tree) ([]string, error) {
	var names, missing []string
	for _, n := range required {
		if !tree.Has(n) {
			missing = append(missing, n)
			continue
		}
		names = append(names, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kernel package lacks required driver modules %v (built in? then drop them from the list)", missing)
	}
	for _, n := range optional {
		if tree.Has(n) {
			names = append(names, n)
		}
	}
	return names, nil
}
