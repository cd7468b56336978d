package inventory

import (
	"strings"

	"github.com/foundry-appliance/foundry/names"
)

// nics reads /sys/class/net, keeping interfaces backed by a device (PCI,
// USB, virtio, platform): loopback, bridges, bonds and other virtual
// interfaces have no "device" link and are not hardware.
func (r *reader) nics() []NIC {
	nics := []NIC{}
	for _, name := range r.list("/sys/class/net") {
		base := "/sys/class/net/" + name
		dev := r.realSys(base + "/device")
		if dev == "" {
			continue
		}
		if t := r.read(base + "/type"); t != "" && t != "1" { // ARPHRD_ETHER only
			continue
		}
		// The machine key form; "" for anything but a 6-byte MAC.
		mac, _ := names.ParseMAC(r.read(base + "/address"))
		n := NIC{
			Name:      name,
			MAC:       mac,
			Driver:    r.linkBase(dev + "/driver"),
			OperState: r.read(base + "/operstate"),
			Link:      r.read(base+"/carrier") == "1",
		}
		if s, ok := r.readInt(base + "/speed"); ok && s > 0 && s < 10_000_000 {
			n.SpeedMbps = int(s)
		}
		if pci := lastPCI(dev); pci != "" {
			n.PCIAddress = pci[strings.LastIndex(pci, "/")+1:]
		}
		nics = append(nics, n)
	}
	return nics
}
