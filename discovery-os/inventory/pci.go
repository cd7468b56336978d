package inventory

import (
	"bufio"
	"io"
	"os"
	"strings"
)

// pci reads /sys/bus/pci/devices and names what it finds from pci.ids.
func (r *reader) pci() []PCIDevice {
	devs := []PCIDevice{}
	for _, addr := range r.list("/sys/bus/pci/devices") {
		base := "/sys/bus/pci/devices/" + addr
		d := PCIDevice{
			Address:           addr,
			VendorID:          hexID(r.read(base + "/vendor")),
			DeviceID:          hexID(r.read(base + "/device")),
			Class:             hexID(r.read(base + "/class")),
			SubsystemVendorID: hexID(r.read(base + "/subsystem_vendor")),
			SubsystemID:       hexID(r.read(base + "/subsystem_device")),
			Driver:            r.linkBase(base + "/driver"),
		}
		devs = append(devs, d)
	}
	if len(devs) == 0 {
		return devs
	}
	path := r.c.PCIIDs
	if path == "" {
		path = r.path("/usr/share/misc/pci.ids")
	}
	f, err := os.Open(path)
	if err != nil {
		r.warn("PCI names unavailable: %v", err)
		return devs
	}
	defer f.Close()
	wanted := map[string]bool{}
	for _, d := range devs {
		wanted[d.VendorID] = true
	}
	names, err := parsePCIIDs(f, wanted)
	if err != nil {
		r.warn("read %s: %v", path, err)
	}
	for i := range devs {
		d := &devs[i]
		d.Vendor = names.vendors[d.VendorID]
		d.Device = names.devices[d.VendorID+":"+d.DeviceID]
		if len(d.Class) == 6 {
			d.ClassName = firstNonEmpty(names.classes[d.Class[:4]], names.classes[d.Class[:2]])
		}
	}
	return devs
}

// hexID turns a sysfs "0x8086" into "8086".
func hexID(s string) string {
	return strings.ToLower(strings.TrimPrefix(s, "0x"))
}

// pciNames holds the names pci.ids gives for the IDs of interest.
type pciNames struct {
	vendors map[string]string // "8086"
	devices map[string]string // "8086:100e"
	classes map[string]string // "02" and "0200"
}

// parsePCIIDs reads the pci.ids format (vendors with indented devices, then
// "C xx" classes with indented subclasses), keeping the devices of the
// wanted vendors and every class. Malformed lines are skipped.
func parsePCIIDs(rd io.Reader, wanted map[string]bool) (pciNames, error) {
	n := pciNames{vendors: map[string]string{}, devices: map[string]string{}, classes: map[string]string{}}
	var vendor, class string
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		tabs := len(line) - len(strings.TrimLeft(line, "\t"))
		body := strings.TrimLeft(line, "\t")
		id, name, ok := strings.Cut(body, "  ")
		switch {
		case tabs == 0 && strings.HasPrefix(line, "C "):
			id, name, ok = strings.Cut(line[2:], "  ")
			if ok && len(id) == 2 {
				class, vendor = strings.ToLower(id), ""
				n.classes[class] = name
			}
		case tabs == 0 && ok && len(id) == 4:
			vendor, class = strings.ToLower(id), ""
			if wanted[vendor] {
				n.vendors[vendor] = name
			}
		case tabs == 0:
			vendor, class = "", "" // another top-level section
		case tabs == 1 && ok && len(id) == 4 && vendor != "" && wanted[vendor]:
			n.devices[vendor+":"+strings.ToLower(id)] = name
		case tabs == 1 && ok && len(id) == 2 && class != "":
			n.classes[class+strings.ToLower(id)] = name
		}
	}
	return n, sc.Err()
}
