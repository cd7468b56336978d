package inventory

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/u-root/u-root/pkg/smbios"
)

const dmiID = "/sys/class/dmi/id/"

// dmiID fills the SMBIOS identity the kernel decodes for us.
func (r *reader) dmiID(inv *Inventory) {
	if _, err := os.Stat(r.path(dmiID)); err != nil {
		r.warn("no DMI identity (%s missing): system, board, BIOS and chassis unknown", dmiID)
		return
	}
	f := func(name string) string { return cleanDMI(r.read(dmiID + name)) }
	inv.System = System{
		Vendor:  f("sys_vendor"),
		Product: f("product_name"),
		Version: f("product_version"),
		Serial:  f("product_serial"),
		UUID:    strings.ToLower(f("product_uuid")),
		SKU:     f("product_sku"),
		Family:  f("product_family"),
	}
	inv.Baseboard = Baseboard{
		Vendor:   f("board_vendor"),
		Product:  f("board_name"),
		Version:  f("board_version"),
		Serial:   f("board_serial"),
		AssetTag: f("board_asset_tag"),
	}
	inv.BIOS = BIOS{Vendor: f("bios_vendor"), Version: f("bios_version"), Date: f("bios_date")}
	inv.Chassis = Chassis{
		Vendor:   f("chassis_vendor"),
		Type:     chassisType(f("chassis_type")),
		Version:  f("chassis_version"),
		Serial:   f("chassis_serial"),
		AssetTag: f("chassis_asset_tag"),
	}
}

// cleanDMI drops the placeholders firmware writers leave in unused fields.
func cleanDMI(s string) string {
	s = validText(s)
	switch strings.ToLower(s) {
	case "", "to be filled by o.e.m.", "default string", "not specified", "none", "n/a", "0123456789":
		return ""
	}
	return s
}

// chassisTypes are the SMBIOS 3.x chassis type names (DSP0134 7.4.1).
var chassisTypes = [...]string{
	1: "Other", "Unknown", "Desktop", "Low Profile Desktop", "Pizza Box", "Mini Tower",
	"Tower", "Portable", "Laptop", "Notebook", "Hand Held", "Docking Station",
	"All in One", "Sub Notebook", "Space-saving", "Lunch Box", "Main Server Chassis",
	"Expansion Chassis", "SubChassis", "Bus Expansion Chassis", "Peripheral Chassis",
	"RAID Chassis", "Rack Mount Chassis", "Sealed-case PC", "Multi-system chassis",
	"Compact PCI", "Advanced TCA", "Blade", "Blade Enclosure", "Tablet", "Convertible",
	"Detachable", "IoT Gateway", "Embedded PC", "Mini PC", "Stick PC",
}

func chassisType(s string) string {
	n, err := strconv.Atoi(s)
	if err != nil {
		return s
	}
	n &= 0x7f // bit 7 is the lock flag
	if n > 0 && n < len(chassisTypes) {
		return chassisTypes[n]
	}
	return fmt.Sprintf("type %d", n)
}

// smbiosData is what the collector takes from the raw SMBIOS table.
type smbiosData struct {
	dimms    []DIMM
	ipmi     *BMC // from type 38
	redfish  *BMC // from type 42
	tableErr error
}

const dmiTable = "/sys/firmware/dmi/tables/DMI"

// smbios decodes the raw table; its absence (virtual machines without
// SMBIOS, kernels without DMI sysfs) leaves the DIMM list empty.
func (r *reader) smbios() smbiosData {
	b, err := readLimited(r.path(dmiTable))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.warn("read SMBIOS table: %v", err)
		}
		return smbiosData{}
	}
	d := parseSMBIOS(b)
	if d.tableErr != nil {
		r.warn("SMBIOS table: %v", d.tableErr)
	}
	return d
}

// parseSMBIOS walks the structures of a raw SMBIOS table. It keeps what it
// decoded before a malformed structure and reports the error.
func parseSMBIOS(b []byte) smbiosData {
	var d smbiosData
	d.dimms = []DIMM{}
	for len(b) > 0 {
		t, rest, err := smbios.ParseTable(b)
		if t == nil {
			if err != nil {
				d.tableErr = err
			}
			break
		}
		switch t.Type {
		case smbios.TableTypeMemoryDevice:
			if md, err := smbios.NewMemoryDevice(t); err == nil && md.GetSizeBytes() > 0 {
				d.dimms = append(d.dimms, DIMM{
					Locator:      cleanDMI(md.DeviceLocator),
					Bank:         cleanDMI(md.BankLocator),
					SizeBytes:    md.GetSizeBytes(),
					Type:         md.Type.String(),
					FormFactor:   md.FormFactor.String(),
					SpeedMTs:     int(md.Speed),
					Manufacturer: cleanDMI(md.Manufacturer),
					Serial:       cleanDMI(md.SerialNumber),
					PartNumber:   cleanDMI(md.PartNumber),
				})
			}
		case smbios.TableTypeIPMIDeviceInfo:
			if di, err := smbios.ParseIPMIDeviceInfo(t); err == nil {
				d.ipmi = &BMC{Interface: "ipmi", Type: ipmiType(uint8(di.InterfaceType))}
			}
		case 42:
			if addr, ok := redfishAddress(t); ok {
				d.redfish = &BMC{Interface: "redfish", Address: addr}
			}
		}
		if err != nil || len(rest) == len(b) {
			break // end-of-table marker (type 127) or no progress
		}
		b = rest
	}
	return d
}

func ipmiType(t uint8) string {
	switch t {
	case 1:
		return "KCS"
	case 2:
		return "SMIC"
	case 3:
		return "BT"
	case 4:
		return "SSIF"
	}
	return ""
}

// redfishAddress reads the Redfish service address from an SMBIOS type 42
// Management Controller Host Interface structure (DSP0134 7.43 and the
// Redfish Host Interface specification DSP0270): a network host interface
// (type 0x40) whose protocol record 0x04 "Redfish over IP" carries the
// service IP at offset 36 of its data, after the UUID, the host address
// assignment, format, address and mask.
func redfishAddress(t *smbios.Table) (string, bool) {
	it, err := t.GetByteAt(0x04)
	if err != nil || it != 0x40 {
		return "", false
	}
	n, err := t.GetByteAt(0x05)
	if err != nil {
		return "", false
	}
	off := 0x06 + int(n)
	count, err := t.GetByteAt(off)
	if err != nil {
		return "", false
	}
	off++
	for range count {
		ptype, err1 := t.GetByteAt(off)
		plen, err2 := t.GetByteAt(off + 1)
		if err1 != nil || err2 != nil {
			return "", false
		}
		data, err := t.GetBytesAt(off+2, int(plen))
		if err != nil {
			return "", false
		}
		off += 2 + int(plen)
		if ptype != 0x04 || len(data) < 68 {
			continue
		}
		// 16 UUID, 1 host assignment, 1 host format, 16 host IP, 16 host
		// mask, 1 service discovery type, then service format and address.
		format, ip := data[51], data[52:68]
		switch format {
		case 1:
			return netip.AddrFrom4([4]byte(ip[:4])).String(), true
		case 2:
			return netip.AddrFrom16([16]byte(ip)).String(), true
		}
	}
	return "", false
}

// bmc picks the most useful BMC description: a Redfish address beats an
// IPMI interface without one; the IPMI LAN address is asked for last.
func (r *reader) bmc(d smbiosData) *BMC {
	if d.redfish != nil {
		return d.redfish
	}
	b := d.ipmi
	if b == nil && len(r.list("/sys/class/ipmi")) > 0 {
		b = &BMC{Interface: "ipmi"}
	}
	if b != nil && r.c.BMCAddress != nil {
		addr, err := r.c.BMCAddress()
		if err != nil {
			r.warn("read BMC LAN address: %v", err)
		} else {
			b.Address = addr
		}
	}
	if b != nil && r.c.BMCMAC != nil {
		if mac, err := r.c.BMCMAC(); err != nil {
			r.warn("read BMC LAN MAC: %v", err)
		} else {
			b.MAC = mac
		}
	}
	return b
}
