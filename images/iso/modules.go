package iso

import (
	"fmt"
	"slices"

	"github.com/foundry-appliance/foundry/discovery-os/drivers"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

// applianceModules are the appliance's drivers beyond the hardware ones
// the discovery OS has too (package drivers): each must be a module file
// in the kernel package, or the build fails (built into a later kernel?
// then drop it here).
var applianceModules = []string{
	// The data disk's file system. ext4 asks the crypto API for crc32c
	// when it mounts, through request_module, and the image has no
	// modprobe: the init loads these by name first.
	"ext4", "crc32c_generic", "crc32c_intel",
	// The ACPI power button (clean shutdown) and the input events it
	// sends.
	"button", "evdev",
	// The ISO written to a USB stick; a data disk on USB.
	"usb_storage", "uas", "xhci_pci", "ehci_pci",
	// A keyboard for the console setup: on servers, and through a BMC's
	// virtual console, it is a USB one (PS/2 is built into the kernel).
	"ohci_pci", "uhci_hcd", "usbhid", "hid_generic",
}

// applianceOptional are taken when the kernel has them as modules.
var applianceOptional = []string{"af_packet", "virtio_rng"}

// selectModules returns the modules the appliance's initramfs carries
// (their dependencies come with them in initramfs.Build).
func selectModules(tree *kmod.Tree) ([]string, error) {
	names, err := drivers.Select(tree)
	if err != nil {
		return nil, fmt.Errorf("hardware drivers: %w", err)
	}
	var missing []string
	for _, n := range applianceModules {
		if !tree.Has(n) {
			missing = append(missing, n)
		}
		names = append(names, n)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kernel package lacks the appliance's modules %v", missing)
	}
	for _, n := range applianceOptional {
		if tree.Has(n) && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}
