// Package datadisk finds, checks, formats and mounts the appliance's data
// disk: the ext4 file system labelled FOUNDRY-DATA that holds the Badger
// database, the image library and the configuration. The appliance's init
// runs it before anything else touches a disk, without udev or blkid, so it
// lists block devices from sysfs and reads their superblocks itself.
//
// The one destructive operation, Format, only ever writes to a device that
// it has just found blank again: a whole disk, writable, not in use, with
// no partition table or file system Probe knows, and with its first and
// last MiB all zeros. Whether a blank disk is formatted at all is the
// caller's decision (the kernel line or the console says so).
//
// The init's sequence: Scanner.Scan; Find; on success Tools.Check, then
// Mount. On ErrNotFound, when formatting was asked for, pick from Blanks
// (show the operator Device.String of each), Tools.Format, Tools.Check,
// Mount. Otherwise run from RAM. At power-off, Unmount.
package datadisk

import (
	"errors"
	"fmt"
	"strings"
)

// Label is the ext4 volume label of the data disk.
const Label = "FOUNDRY-DATA"

// ErrNotFound is returned by Find when no device holds an ext2/3/4 file
// system labelled Label.
var ErrNotFound = errors.New("no data disk labelled " + Label)

// ErrAmbiguous is returned (wrapped, with the devices named) by Find when
// several devices are labelled Label: choosing one would be a guess about
// which holds the real database.
var ErrAmbiguous = errors.New("several data disks labelled " + Label)

// ErrNotBlank is returned (wrapped, with the reason) by Format when the
// device is not, or is no longer, blank.
var ErrNotBlank = errors.New("device is not blank")

// Device is one block device (whole disk or partition) listed in
// <SysRoot>/class/block.
type Device struct {
	Name      string // "sda", "vdb1"; a "!" in sysfs is a "/" under /dev
	Path      string // DevRoot + "/" + Name
	Size      int64  // bytes (sysfs size * 512)
	Partition bool
	Parent    string // the whole disk's name, for a partition; "" otherwise
	Removable bool   // the disk's removable flag (a partition takes its disk's)
	ReadOnly  bool   // the device's or its disk's ro flag
	Model     string // <sys>/block/<disk>/device/model, trimmed; may be ""
	Holders   []string
	// Partitions is how many partitions the kernel knows on a whole disk.
	Partitions int
	FSType     string // from Probe: "ext4", "ext3", "ext2", "jbd", "iso9660", "vfat", "gpt", "mbr", "" (unknown/none)
	Label      string // from Probe
	// Blank: a whole disk, writable, not held, without partitions, with
	// nothing Probe knows on it, and its first and last MiB all zeros.
	Blank bool
	// Err says why the device node could not be read (no medium, I/O
	// error, no node); such a device is never Blank.
	Err error
}

// String names the device for a person: path, size, model, contents.
func (d Device) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", d.Path, HumanSize(d.Size))
	if d.Model != "" {
		fmt.Fprintf(&b, ", %s", d.Model)
	}
	switch {
	case d.Err != nil:
		fmt.Fprintf(&b, ", unreadable: %v", d.Err)
	case d.FSType != "" && d.Label != "":
		fmt.Fprintf(&b, ", %s %q", d.FSType, d.Label)
	case d.FSType != "":
		fmt.Fprintf(&b, ", %s", d.FSType)
	case d.Blank:
		b.WriteString(", blank")
	}
	b.WriteString(")")
	return b.String()
}

// HumanSize writes a byte count in binary units with one decimal.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Find returns the single device holding an ext2/3/4 file system labelled
// Label. With none it returns ErrNotFound (wrapped with a note when a
// device carries the label on another kind of file system); with several,
// an error wrapping ErrAmbiguous that names them all.
func Find(devs []Device) (Device, error) {
	var found, other []Device
	for _, d := range devs {
		if d.Label != Label {
			continue
		}
		if IsExt(d.FSType) {
			found = append(found, d)
		} else {
			other = append(other, d)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if len(other) > 0 {
			return Device{}, fmt.Errorf("%w (%s is labelled %s but holds %s, not ext4)", ErrNotFound, other[0].Path, Label, other[0].FSType)
		}
		return Device{}, ErrNotFound
	}
	names := make([]string, len(found))
	for i, d := range found {
		names[i] = d.String()
	}
	return Device{}, fmt.Errorf("%w: %s; remove or relabel all but one", ErrAmbiguous, strings.Join(names, ", "))
}

// Blanks returns the devices that are Blank, in the order given.
func Blanks(devs []Device) []Device {
	var out []Device
	for _, d := range devs {
		if d.Blank {
			out = append(out, d)
		}
	}
	return out
}
