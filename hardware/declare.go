package hardware

import (
	"net"
	"net/netip"
	"strings"

	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/names"
)

// Declaration is what a person declared about a machine in a Hardware
// file: the approval to give it when it is first seen (docs/gitops.md).
// The approval rules (cluster and profile exist, host name, disk among the
// inventoried ones, static address within the segment) are checked when
// it is applied, as for an approval typed by an administrator.
type Declaration struct {
	// MAC is the machine's boot MAC (canonical).
	MAC      string `json:"mac"`
	Cluster  string `json:"cluster"`
	Profile  string `json:"profile"`
	Hostname string `json:"hostname"`
	// Disk is spec.disks[0].device; "" means the approval's default.
	Disk    string   `json:"disk,omitempty"`
	SSHKeys []string `json:"ssh_keys,omitempty"`
	// Network is "dhcp" or "static". Static takes Address (with its
	// prefix length, from the netmask) and Gateway from the interface's
	// dhcp.ip; DNS comes from dhcp.name_servers in either mode.
	Network string   `json:"network"`
	Address string   `json:"address,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// MACOf is the boot MAC of h: its foundry/mac annotation, or else the MAC
// of its first interface that has one; "" when neither is a MAC.
func MACOf(h *tink.Hardware) string {
	if h == nil {
		return ""
	}
	if m := h.Annotations[AnnotationMAC]; m != "" {
		c, err := names.ParseMAC(m)
		if err != nil {
			return ""
		}
		return c
	}
	for _, in := range h.Spec.Interfaces {
		if in.DHCP != nil && in.DHCP.MAC != "" {
			c, err := names.ParseMAC(in.DHCP.MAC)
			if err != nil {
				return ""
			}
			return c
		}
	}
	return ""
}

// Declared reports whether h declares a machine, and what: a Hardware for
// a machine Foundry has not decided about (no foundry/state annotation, or
// a pending one) with a MAC, the labels foundry/cluster and
// foundry/profile and a host name (spec.metadata.instance.hostname or the
// interface's dhcp.hostname). Foundry never writes those labels on a
// pending machine's Hardware, so they are a person's; a Hardware Foundry
// wrote for an approved or rejected machine is a record of that decision,
// not a declaration.
func Declared(h *tink.Hardware) (Declaration, bool) {
	if h == nil {
		return Declaration{}, false
	}
	if st, ok := h.Annotations[AnnotationState]; ok {
		s, err := lifecycle.ParseState(st)
		if err != nil || !s.Pending() {
			return Declaration{}, false
		}
	}
	d := Declaration{MAC: MACOf(h), Cluster: h.Labels[LabelCluster], Profile: h.Labels[LabelProfile], Network: "dhcp"}
	if d.MAC == "" || d.Cluster == "" || d.Profile == "" {
		return Declaration{}, false
	}
	var dhcp *tink.DHCP
	for _, in := range h.Spec.Interfaces {
		if in.DHCP != nil && strings.EqualFold(in.DHCP.MAC, d.MAC) {
			dhcp = in.DHCP
			break
		}
	}
	if md := h.Spec.Metadata; md != nil && md.Instance != nil {
		d.Hostname = md.Instance.Hostname
		d.SSHKeys = md.Instance.SSHKeys
	}
	if d.Hostname == "" && dhcp != nil {
		d.Hostname = dhcp.Hostname
	}
	if d.Hostname == "" {
		return Declaration{}, false
	}
	if len(h.Spec.Disks) > 0 {
		d.Disk = h.Spec.Disks[0].Device
	}
	if dhcp != nil {
		d.DNS = dhcp.NameServers
		if dhcp.IP != nil && dhcp.IP.Address != "" && h.Annotations[AnnotationNetwork] != "dhcp" {
			d.Network, d.Address, d.Gateway = "static", withPrefix(dhcp.IP.Address, dhcp.IP.Netmask), dhcp.IP.Gateway
		}
	}
	return d, true
}

// withPrefix writes address with the prefix length of netmask
// ("10.77.0.50", "255.255.255.0" → "10.77.0.50/24"); an address without a
// (readable) netmask is returned as it is, for the approval rules to refuse.
func withPrefix(address, netmask string) string {
	a, err := netip.ParseAddr(address)
	if err != nil || netmask == "" {
		return address
	}
	m := net.ParseIP(netmask).To4()
	if m == nil || !a.Is4() {
		return address
	}
	ones, bits := net.IPMask(m).Size()
	if bits == 0 {
		return address
	}
	return netip.PrefixFrom(a, ones).String()
}
