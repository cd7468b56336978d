package bootgrant

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// KernelNeighbor looks an on-link address up in the kernel's IPv4
// neighbour (ARP) table; usable as Table.Neighbor. Only reachable, stale,
// delayed or probing entries count: an incomplete or failed entry has no
// MAC worth trusting.
func KernelNeighbor(ip netip.Addr) (net.HardwareAddr, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil, false
	}
	neighs, err := netlink.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return nil, false
	}
	const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT
	for _, n := range neighs {
		if a, ok := netip.AddrFromSlice(n.IP.To4()); ok && a == ip && n.State&usable != 0 && len(n.HardwareAddr) == 6 {
			return n.HardwareAddr, true
		}
	}
	return nil, false
}
