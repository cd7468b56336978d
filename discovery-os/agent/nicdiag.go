package agent

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// PCINIC is a network controller on the PCI bus, as sysfs shows it.
type PCINIC struct {
	// Address is the PCI slot ("0000:00:03.0").
	Address string
	// Vendor and Device are the PCI IDs in lower-case hex ("10ec", "8139").
	Vendor, Device string
	// Class is the six-digit class code ("020000": Ethernet).
	Class string
	// Name is the vendor and device name from pci.ids ("" when unknown).
	Name string
	// Driver is the bound driver ("" when none took the device).
	Driver string
	// Modalias is what drivers are matched against.
	Modalias string
	// Interfaces are the network interfaces the device has.
	Interfaces []string
}

// ID is "vendor:device", the form lspci -nn and driver tables use.
func (n PCINIC) ID() string { return n.Vendor + ":" + n.Device }

// NetworkControllers lists the PCI devices of class 0x02 (network) under
// root ("/" on the machine), sorted by address, named from the pci.ids
// file at pciIDs (a missing file leaves the names empty).
func NetworkControllers(root, pciIDs string) []PCINIC {
	base := filepath.Join(root, "sys/bus/pci/devices")
	entries, _ := os.ReadDir(base)
	var out []PCINIC
	for _, e := range entries {
		dir := filepath.Join(base, e.Name())
		read := func(f string) string {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"))
		}
		class := read("class")
		if !strings.HasPrefix(class, "02") {
			continue
		}
		n := PCINIC{Address: e.Name(), Vendor: read("vendor"), Device: read("device"), Class: class}
		if b, err := os.ReadFile(filepath.Join(dir, "modalias")); err == nil {
			n.Modalias = strings.TrimSpace(string(b))
		}
		if target, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
			n.Driver = filepath.Base(target)
		}
		if ifs, err := os.ReadDir(filepath.Join(dir, "net")); err == nil {
			for _, i := range ifs {
				n.Interfaces = append(n.Interfaces, i.Name())
			}
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b PCINIC) int { return strings.Compare(a.Address, b.Address) })
	if len(out) > 0 {
		names := pciNames(pciIDs, out)
		for i := range out {
			out[i].Name = names[out[i].ID()]
		}
	}
	return out
}

// pciNames reads "Vendor Device" names for the controllers' IDs from a
// pci.ids file: vendor lines at the margin, their devices indented by one
// tab.
func pciNames(path string, nics []PCINIC) map[string]string {
	out := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	want := map[string]bool{}
	for _, n := range nics {
		want[n.ID()] = true
	}
	var vendor, vendorName string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || line[0] == '#':
		case strings.HasPrefix(line, "C "):
			return out // the device classes follow the vendors
		case line[0] != '\t':
			id, name, _ := strings.Cut(line, "  ")
			vendor, vendorName = strings.ToLower(id), strings.TrimSpace(name)
			for _, n := range nics {
				if n.Vendor == vendor && out[n.ID()] == "" {
					out[n.ID()] = vendorName
				}
			}
		case !strings.HasPrefix(line, "\t\t"):
			id, name, _ := strings.Cut(strings.TrimPrefix(line, "\t"), "  ")
			key := vendor + ":" + strings.ToLower(id)
			if want[key] {
				out[key] = vendorName + " " + strings.TrimSpace(name)
			}
		}
	}
	return out
}

// NoBootNICMessage says plainly why no interface has the boot MAC and
// what to do, naming each network controller no driver took. match
// returns the image's modules whose aliases match a modalias (nil: not
// known).
func NoBootNICMessage(mac string, nics []PCINIC, match func(modalias string) []string) string {
	var msgs []string
	for _, n := range nics {
		if n.Driver != "" {
			continue
		}
		what := n.ID()
		if n.Name != "" {
			what += " (" + n.Name + ")"
		}
		var mods []string
		if match != nil && n.Modalias != "" {
			mods = match(n.Modalias)
		}
		if len(mods) == 0 {
			msgs = append(msgs, fmt.Sprintf("no driver for the network controller %s at %s: this discovery image cannot use it; "+
				"boot the machine from a network card the image supports (docs/discovery-coverage.md), "+
				"or report the ID %s so that its driver is added", what, n.Address, n.ID()))
			continue
		}
		msgs = append(msgs, fmt.Sprintf("the network controller %s at %s has a driver in this image (%s), but it did not take the card: "+
			"the kernel log says why (missing firmware?); boot the machine from another network card, or report the ID %s",
			what, n.Address, strings.Join(mods, ", "), n.ID()))
	}
	if len(msgs) == 0 {
		var have []string
		for _, n := range nics {
			have = append(have, fmt.Sprintf("%s %s → %s", n.ID(), n.Driver, strings.Join(n.Interfaces, ",")))
		}
		detail := "no network controller on the PCI bus"
		if len(have) > 0 {
			detail = "every PCI network controller has its driver (" + strings.Join(have, "; ") + ")"
		}
		return fmt.Sprintf("no network interface has the boot MAC %s, and %s: the machine booted from a card this system does not show "+
			"(behind a USB or BMC bridge?)", mac, detail)
	}
	return strings.Join(msgs, "; ")
}
