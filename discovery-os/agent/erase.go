package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// ErrNoSecureErase is a disk whose own erase the agent cannot run: it is
// not NVMe, or its controller has no Format NVM.
var ErrNoSecureErase = errors.New("no secure erase")

// NVMe admin commands and fields (NVM Express Base Specification 2.0).
const (
	nvmeAdminIdentify  = 0x06
	nvmeAdminFormatNVM = 0x80
	nvmeCNSNamespace   = 0x00
	nvmeCNSController  = 0x01
	nvmeOACSFormat     = 1 << 1 // Identify Controller OACS: Format NVM supported
	nvmeSESUserData    = 1      // Format NVM SES: user data erase
)

// formatCDW10 is Format NVM's command dword 10 that erases the user data
// of the namespace whose Identify Namespace data is id (4096 bytes) and
// keeps everything else as it is: its LBA format (sector size), metadata
// setting and protection information. A drive reformatted to another
// sector size would be a different disk to the next install.
func formatCDW10(id []byte) (uint32, error) {
	if len(id) < 30 {
		return 0, errors.New("short Identify Namespace data")
	}
	nlbaf, flbas, dps := id[25], id[26], id[29]
	lbaf := uint32(flbas&0x0f) | uint32(flbas>>5&0x03)<<4
	if lbaf > uint32(nlbaf) {
		return 0, fmt.Errorf("the namespace's LBA format %d is not one of its %d", lbaf, nlbaf+1)
	}
	mset, pi, pil := uint32(flbas>>4&1), uint32(dps&0x07), uint32(dps>>3&1)
	return lbaf&0x0f | mset<<4 | pi<<5 | pil<<8 | nvmeSESUserData<<9 | lbaf>>4<<12, nil
}

// SecureEraseDisks has every fixed, writable disk of inv erase itself with
// erase (default SecureErase) and overwrites in full, opened with open,
// each disk that cannot (ErrNoSecureErase) or whose erase fails: a release
// that asked for the drives' own erase still leaves no disk as it was. It
// returns how many disks it erased either way, what it did to each (for
// the report), and every disk's failure joined.
func SecureEraseDisks(ctx context.Context, inv inventory.Inventory, erase func(context.Context, inventory.Disk) error,
	open func(path string) (Disk, error)) (int, string, error) {
	if erase == nil {
		erase = SecureErase
	}
	var errs []error
	var erased, overwritten []string
	for _, d := range inv.Disks {
		if !d.Fixed() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return 0, "", err
		}
		eerr := erase(ctx, d)
		if eerr == nil {
			erased = append(erased, d.Name)
			continue
		}
		if err := wipeDisk(ctx, d, open, true); err != nil {
			errs = append(errs, fmt.Errorf("wipe %s: %w (after its secure erase: %w)", d.Path, err, eerr))
			continue
		}
		why := "no secure erase"
		if !errors.Is(eerr, ErrNoSecureErase) {
			why = "secure erase failed: " + eerr.Error()
		}
		overwritten = append(overwritten, d.Name+" ("+why+")")
	}
	var said []string
	if len(erased) > 0 {
		said = append(said, "the drive's secure erase: "+strings.Join(erased, ", "))
	}
	if len(overwritten) > 0 {
		said = append(said, "every byte overwritten: "+strings.Join(overwritten, ", "))
	}
	return len(erased) + len(overwritten), strings.Join(said, "; "), errors.Join(errs...)
}
