package inventory

import (
	"encoding/binary"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// skipDisk lists kernel block device prefixes that are never install
// targets: memory and loop devices, device-mapper and MD arrays, network
// block devices and floppies.
var skipDisk = []string{"loop", "ram", "zram", "dm-", "md", "nbd", "fd"}

// disks reads /sys/block. Without udev in the initramfs every attribute
// comes from sysfs itself.
func (r *reader) disks() []Disk {
	disks := []Disk{}
	for _, name := range r.list("/sys/block") {
		if hasAnyPrefix(name, skipDisk) {
			continue
		}
		real := r.realSys("/sys/block/" + name)
		if real == "" {
			r.warn("resolve /sys/block/%s", name)
			continue
		}
		if r.read(real+"/hidden") == "1" { // NVMe multipath path devices
			continue
		}
		d := Disk{Name: name, Path: "/dev/" + name}
		if sectors, ok := r.readInt(real + "/size"); ok && sectors > 0 {
			d.SizeBytes = uint64(sectors) * 512 // sysfs size is always in 512-byte units
		}
		d.Removable = r.read(real+"/removable") == "1"
		d.ReadOnly = r.read(real+"/ro") == "1"
		d.Rotational = r.read(real+"/queue/rotational") == "1"
		dev := r.realSys(real + "/device")
		if dev != "" {
			d.Vendor = r.read(dev + "/vendor")
			d.Model = r.read(dev + "/model")
			// libata's SCSI translation says "ATA"; virtio devices give a PCI ID.
			if d.Vendor == "ATA" || strings.HasPrefix(d.Vendor, "0x") {
				d.Vendor = ""
			}
		}
		d.Serial = r.read(real + "/serial") // virtio-blk
		d.WWN = r.read(real + "/wwid")      // NVMe namespaces
		if dev != "" {
			d.Serial = firstNonEmpty(d.Serial, r.read(dev+"/serial"))
			if d.Serial == "" {
				if b, err := readLimited(r.path(dev + "/vpd_pg80")); err == nil {
					d.Serial = parseVPD80(b)
				}
			}
			d.WWN = firstNonEmpty(d.WWN, r.read(dev+"/wwid"))
		}
		d.Driver = r.diskDriver(real, dev)
		d.ByPath = r.byPath(real, name)
		disks = append(disks, d)
	}
	return disks
}

// diskDriver names the driver that matters to an operator: virtio_blk for a
// virtio disk, the controller's driver (ahci, nvme, megaraid_sas) when the
// disk itself is driven by the generic sd/sr layer or is a class device.
func (r *reader) diskDriver(real, dev string) string {
	if dev != "" {
		if d := r.linkBase(dev + "/driver"); d != "" && d != "sd" && d != "sr" {
			return d
		}
	}
	if pci := lastPCI(real); pci != "" {
		return r.linkBase(pci + "/driver")
	}
	return ""
}

// parseVPD80 returns the unit serial number of a SCSI VPD page 0x80.
func parseVPD80(b []byte) string {
	if len(b) < 4 || b[1] != 0x80 {
		return ""
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n > len(b)-4 {
		n = len(b) - 4
	}
	return validText(strings.TrimFunc(string(b[4:4+n]), func(r rune) bool { return r == 0 || unicode.IsSpace(r) }))
}

var (
	pciAddrRE = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)
	scsiRE    = regexp.MustCompile(`^(\d+):(\d+):(\d+):(\d+)$`)
	ataRE     = regexp.MustCompile(`^ata(\d+)$`)
	hostRE    = regexp.MustCompile(`^host(\d+)$`)
	usbIfRE   = regexp.MustCompile(`^\d+-([\d.]+):(\d+\.\d+)$`)
	nvmeNSRE  = regexp.MustCompile(`^nvme\d+(?:c\d+)?n(\d+)$`)
)

// lastPCI returns the sysfs path of the PCI device closest to the device at
// real, "" when it is not on PCI.
func lastPCI(real string) string {
	parts := strings.Split(real, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if pciAddrRE.MatchString(parts[i]) {
			return strings.Join(parts[:i+1], "/")
		}
	}
	return ""
}

// byPath computes the /dev/disk/by-path name that udev's path_id would give
// the disk at sysfs path real, following path_id's rules for the common
// transports: the closest PCI device ("pci-0000:00:1f.2"), then ATA
// ("ata-<port>.<target>", or "ata-<port>.<bus>.<lun>" behind a port
// multiplier), USB ("usb-0:<port>:<config.interface>"), SCSI
// ("scsi-<host>:<bus>:<target>:<lun>", host counted from the controller's
// first host) or NVMe ("nvme-<namespace>"). Virtio disks stop at the PCI
// part. It returns "" for disks without a PCI ancestor.
func (r *reader) byPath(real, name string) string {
	pci := lastPCI(real)
	if pci == "" {
		return ""
	}
	out := []string{"pci-" + pci[strings.LastIndex(pci, "/")+1:]}
	rest := strings.Split(strings.TrimPrefix(real, pci+"/"), "/")
	ata, usb := "", ""
	for i, p := range rest {
		if m := ataRE.FindStringSubmatch(p); m != nil {
			ata = r.read(strings.Join(append([]string{pci}, rest[:i+1]...), "/") + "/ata_port/" + p + "/port_no")
			if ata == "" {
				ata = m[1]
			}
			continue
		}
		if m := usbIfRE.FindStringSubmatch(p); m != nil {
			usb = "usb-0:" + m[1] + ":" + m[2]
			out = append(out, usb)
			continue
		}
		m := scsiRE.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		switch {
		case ata != "" && m[2] != "0":
			out = append(out, "ata-"+ata+"."+m[2]+"."+m[4])
		case ata != "":
			out = append(out, "ata-"+ata+"."+m[3])
		default:
			host := r.relativeHost(pci, rest[:i])
			out = append(out, "scsi-"+strconv.Itoa(host)+":"+m[2]+":"+m[3]+":"+m[4])
		}
		return strings.Join(out, "-")
	}
	if m := nvmeNSRE.FindStringSubmatch(name); m != nil {
		ns := firstNonEmpty(r.read(real+"/nsid"), m[1])
		out = append(out, "nvme-"+ns)
	}
	return strings.Join(out, "-")
}

// relativeHost numbers a SCSI host from the lowest host number on the same
// controller, as path_id does, so the name does not depend on probe order
// across controllers.
func (r *reader) relativeHost(pci string, parts []string) int {
	for i := len(parts) - 1; i >= 0; i-- {
		m := hostRE.FindStringSubmatch(parts[i])
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		parent := strings.Join(append([]string{pci}, parts[:i]...), "/")
		base := n
		for _, sib := range r.list(parent) {
			if sm := hostRE.FindStringSubmatch(sib); sm != nil {
				if v, _ := strconv.Atoi(sm[1]); v < base {
					base = v
				}
			}
		}
		return n - base
	}
	return 0
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
