package datadisk

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultSkip is what Scan leaves out when Scanner.Skip is nil, by name
// prefix: loop devices (the appliance makes none; on a build host they
// are other people's images), RAM disks (ram, zram), floppies (fd),
// network block devices (nbd), CD-ROMs (sr: the appliance's own boot
// medium among them, and read-only anyway), md arrays and device-mapper
// volumes (md, dm-: the appliance has no mdadm or LVM to manage them; the
// disks under them show holders, so they are never Blank either) and MTD
// flash (mtdblock). eMMC boot and RPMB areas (mmcblkNbootM, mmcblkNrpmb)
// are always left out, whatever Skip says: they are parts of the chip's
// firmware, not disks.
var DefaultSkip = []string{"loop", "ram", "zram", "fd", "nbd", "sr", "md", "dm-", "mtdblock"}

// zeroSpan is how much of each end of a disk must be zeros for Blank:
// partition tables, their GPT backups and every common file system or
// volume signature live within the first or last MiB.
const zeroSpan = 1 << 20

// Scanner lists block devices from sysfs and probes their device nodes.
type Scanner struct {
	// SysRoot is where sysfs is mounted; default "/sys".
	SysRoot string
	// DevRoot holds the device nodes (devtmpfs in the initramfs); default "/dev".
	DevRoot string
	// Skip lists device-name prefixes to leave out; nil means DefaultSkip,
	// an empty non-nil slice leaves nothing out.
	Skip []string
}

// Scan returns every block device in <SysRoot>/class/block that Skip does
// not leave out, sorted by name, each probed through its node under
// DevRoot. A device whose sysfs entry vanishes during the scan (hot
// unplug) is left out; one whose node cannot be read is listed with Err
// set. Only failing to list the directory is an error.
func (s Scanner) Scan() ([]Device, error) {
	sys, dev, skip := s.SysRoot, s.DevRoot, s.Skip
	if sys == "" {
		sys = "/sys"
	}
	if dev == "" {
		dev = "/dev"
	}
	if skip == nil {
		skip = DefaultSkip
	}
	class := filepath.Join(sys, "class", "block")
	entries, err := os.ReadDir(class) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var devs []Device
	for _, e := range entries {
		name := e.Name()
		if skipped(name, skip) {
			continue
		}
		if d, ok := readDevice(filepath.Join(class, name), dev, name); ok {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

func skipped(name string, skip []string) bool {
	if rest, ok := strings.CutPrefix(name, "mmcblk"); ok {
		rest = strings.TrimLeft(rest, "0123456789")
		if strings.HasPrefix(rest, "boot") || strings.HasPrefix(rest, "rpmb") {
			return true
		}
	}
	for _, p := range skip {
		if p != "" && strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// readDevice reads one device's sysfs attributes, then probes its node.
func readDevice(entry, devRoot, name string) (Device, bool) {
	// class/block/<name> is a symlink into /sys/devices; a partition's
	// directory sits inside its disk's, which is how the parent is found.
	dir, err := filepath.EvalSymlinks(entry)
	if err != nil {
		dir = entry
	}
	sectors, err := readInt(filepath.Join(dir, "size"))
	if err != nil || sectors < 0 || sectors > math.MaxInt64/512 {
		return Device{}, false
	}
	d := Device{
		Name: name,
		Path: devRoot + "/" + strings.ReplaceAll(name, "!", "/"),
		Size: sectors * 512,
	}
	disk := dir
	if exists(filepath.Join(dir, "partition")) {
		d.Partition = true
		disk = filepath.Dir(dir)
		d.Parent = filepath.Base(disk)
	}
	d.Removable = readFlag(filepath.Join(disk, "removable"))
	d.ReadOnly = readFlag(filepath.Join(dir, "ro")) || readFlag(filepath.Join(disk, "ro"))
	if b, err := os.ReadFile(filepath.Join(disk, "device", "model")); err == nil {
		d.Model = cleanLabel(b)
	}
	d.Holders = listNames(filepath.Join(dir, "holders"))
	if !d.Partition {
		for _, sub := range listNames(dir) {
			if exists(filepath.Join(dir, sub, "partition")) {
				d.Partitions++
			}
		}
	}
	if d.Size > 0 {
		probeNode(&d)
	}
	return d, true
}

// probeNode fills FSType, Label, Blank and Err from the device node.
func probeNode(d *Device) {
	f, err := os.Open(d.Path)
	if err != nil {
		d.Err = err
		return
	}
	defer f.Close()
	fstype, label, blank, err := inspect(f, d.Size)
	d.FSType, d.Label, d.Err = fstype, label, err
	d.Blank = blank && !d.Partition && !d.ReadOnly && len(d.Holders) == 0 && d.Partitions == 0
}

// inspect probes f and, when Probe found nothing and f is exactly
// wantSize long, checks that both ends are zeros. Used by Scan and again
// by Format right before it writes.
func inspect(f *os.File, wantSize int64) (fstype, label string, blank bool, err error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", "", false, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	fstype, label, err = Probe(f, size)
	if err != nil {
		return "", "", false, fmt.Errorf("probe %s: %w", f.Name(), err)
	}
	if fstype != "" || size != wantSize || size == 0 {
		return fstype, label, false, nil
	}
	zero, err := zeroEnds(f, size)
	if err != nil {
		return "", "", false, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return "", "", zero, nil
}

// zeroEnds reports whether the first and last zeroSpan bytes of r (of
// length size) are all zeros.
func zeroEnds(r io.ReaderAt, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	spans := [][2]int64{{0, min(zeroSpan, size)}, {max(size-zeroSpan, 0), size}}
	for _, sp := range spans {
		for off := sp[0]; off < sp[1]; {
			n := int(min(int64(len(buf)), sp[1]-off))
			got, err := r.ReadAt(buf[:n], off)
			if got < n {
				if err == nil {
					err = io.ErrUnexpectedEOF
				}
				return false, err
			}
			for _, c := range buf[:n] {
				if c != 0 {
					return false, nil
				}
			}
			off += int64(n)
		}
	}
	return true, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func readFlag(path string) bool {
	n, err := readInt(path)
	return err == nil && n != 0
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// listNames returns the entries of dir (none when it cannot be read).
func listNames(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil
	}
	return names
}
