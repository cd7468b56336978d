package api

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// Tinkerbell Hardware (tinkerbell.org/v1alpha1), the part Foundry fills
// in. The field names are the CRD's, from github.com/tinkerbell/tink
// api/v1alpha1/hardware_types.go (the object is YAML with the JSON field
// names Kubernetes uses).
const (
	TinkAPIVersion = "tinkerbell.org/v1alpha1"
	TinkKind       = "Hardware"
)

// TinkHardware is one Tinkerbell Hardware object.
type TinkHardware struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   TinkMeta `yaml:"metadata"`
	Spec       TinkSpec `yaml:"spec"`
}

// TinkMeta is the Kubernetes object metadata.
type TinkMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// TinkSpec is HardwareSpec.
type TinkSpec struct {
	Interfaces []TinkInterface `yaml:"interfaces,omitempty"`
	Metadata   *TinkMetadata   `yaml:"metadata,omitempty"`
	Disks      []TinkDisk      `yaml:"disks,omitempty"`
}

// TinkInterface is one network interface: its DHCP reservation and
// whether Tinkerbell may netboot it.
type TinkInterface struct {
	DHCP    *TinkDHCP    `yaml:"dhcp,omitempty"`
	Netboot *TinkNetboot `yaml:"netboot,omitempty"`
}

// TinkDHCP is what Tinkerbell's DHCP server (smee) hands the interface.
type TinkDHCP struct {
	MAC         string   `yaml:"mac,omitempty"`
	Hostname    string   `yaml:"hostname,omitempty"`
	LeaseTime   int64    `yaml:"lease_time,omitempty"`
	NameServers []string `yaml:"name_servers,omitempty"`
	Arch        string   `yaml:"arch,omitempty"`
	UEFI        bool     `yaml:"uefi"`
	IfaceName   string   `yaml:"iface_name,omitempty"`
	IP          *TinkIP  `yaml:"ip,omitempty"`
}

// TinkIP is an address with its netmask and gateway.
type TinkIP struct {
	Address string `yaml:"address,omitempty"`
	Netmask string `yaml:"netmask,omitempty"`
	Gateway string `yaml:"gateway,omitempty"`
	Family  int64  `yaml:"family,omitempty"`
}

// TinkNetboot says whether Tinkerbell may PXE-boot the machine and run
// workflows on it.
type TinkNetboot struct {
	AllowPXE      *bool `yaml:"allowPXE,omitempty"`
	AllowWorkflow *bool `yaml:"allowWorkflow,omitempty"`
}

// TinkMetadata is HardwareMetadata.
type TinkMetadata struct {
	Manufacturer *TinkManufacturer `yaml:"manufacturer,omitempty"`
	Instance     *TinkInstance     `yaml:"instance,omitempty"`
}

// TinkManufacturer names the vendor.
type TinkManufacturer struct {
	Slug string `yaml:"slug,omitempty"`
}

// TinkInstance is MetadataInstance, what Tinkerbell's metadata service
// (and its templates) show the machine.
type TinkInstance struct {
	ID       string   `yaml:"id,omitempty"`
	Hostname string   `yaml:"hostname,omitempty"`
	Ips      []TinkIP `yaml:"ips,omitempty"`
	SSHKeys  []string `yaml:"ssh_keys,omitempty"`
}

// TinkDisk is a disk device.
type TinkDisk struct {
	Device string `yaml:"device,omitempty"`
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelValue   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
)

// tinkerbellHardware converts an accepted machine. seg is its segment
// (nil when not configured) and lease its DHCP lease (nil when none); a
// static address wins over both.
func tinkerbellHardware(m store.Machine, seg *SegmentInfo, lease *store.Lease, namespace string) (TinkHardware, error) {
	if !m.State.Accepted() || m.Approval == nil {
		return TinkHardware{}, fmt.Errorf("machine %s is %s: only approved machines are exported", m.MAC, m.State)
	}
	a := m.Approval
	name := strings.ToLower(m.Hostname)
	if len(name) > 253 || !dnsSubdomain.MatchString(name) {
		name = "foundry-" + strings.ReplaceAll(m.MAC, ":", "")
	}
	no := false
	dhcp := &TinkDHCP{MAC: m.MAC, Hostname: m.Hostname, IP: tinkIP(a.Network, seg, lease, m.IP)}
	dhcp.Arch, dhcp.UEFI = tinkArch(m.Arch)
	for _, d := range a.Network.DNS {
		dhcp.NameServers = append(dhcp.NameServers, d.String())
	}
	if seg != nil {
		if len(dhcp.NameServers) == 0 {
			for _, d := range seg.DNS {
				dhcp.NameServers = append(dhcp.NameServers, d.String())
			}
		}
		dhcp.LeaseTime = int64(seg.LeaseTime.Seconds())
	}
	inv := parseInventory(m.Inventory)
	if inv != nil {
		for _, n := range inv.NICs {
			if strings.EqualFold(n.MAC, m.MAC) {
				dhcp.IfaceName = n.Name
			}
		}
	}
	h := TinkHardware{
		APIVersion: TinkAPIVersion, Kind: TinkKind,
		Metadata: TinkMeta{Name: name, Namespace: namespace, Annotations: map[string]string{
			"foundry/mac":         m.MAC,
			"foundry/approved-by": a.ApprovedBy,
			"foundry/approved-at": a.ApprovedAt.UTC().Format(time.RFC3339),
		}},
		Spec: TinkSpec{
			// Foundry keeps serving this machine's boots: a Tinkerbell that
			// takes it over must be allowed to explicitly.
			Interfaces: []TinkInterface{{DHCP: dhcp, Netboot: &TinkNetboot{AllowPXE: &no, AllowWorkflow: &no}}},
			Metadata: &TinkMetadata{Instance: &TinkInstance{
				ID: m.MAC, Hostname: m.Hostname, SSHKeys: a.SSHKeys,
			}},
		},
	}
	for k, v := range map[string]string{"foundry/cluster": m.Cluster, "foundry/profile": m.Profile} {
		if len(v) <= 63 && labelValue.MatchString(v) {
			if h.Metadata.Labels == nil {
				h.Metadata.Labels = map[string]string{}
			}
			h.Metadata.Labels[k] = v
		}
	}
	if dhcp.IP != nil {
		h.Spec.Metadata.Instance.Ips = []TinkIP{*dhcp.IP}
	}
	if a.Disk != "" {
		h.Spec.Disks = []TinkDisk{{Device: a.Disk}}
	}
	if inv != nil {
		if slug := slugify(inv.System.Vendor); slug != "" {
			h.Spec.Metadata.Manufacturer = &TinkManufacturer{Slug: slug}
		}
	}
	return h, nil
}

// tinkIP is the machine's address: the static one chosen at approval, or
// else the one its DHCP lease (or last report) holds, with the segment's
// netmask and router.
func tinkIP(n store.Network, seg *SegmentInfo, lease *store.Lease, reported string) *TinkIP {
	var (
		addr    netip.Addr
		bits    = -1
		gateway netip.Addr
	)
	if seg != nil {
		bits, gateway = seg.Subnet.Bits(), seg.Router
	}
	switch {
	case n.Mode == "static" && n.Address.IsValid():
		addr, bits = n.Address.Addr(), n.Address.Bits()
		if n.Gateway.IsValid() {
			gateway = n.Gateway
		}
	case lease != nil && lease.IP.IsValid() && !lease.Declined:
		addr = lease.IP
	default:
		a, err := netip.ParseAddr(reported)
		if err != nil {
			return nil
		}
		addr = a
	}
	ip := &TinkIP{Address: addr.String(), Family: 6}
	if addr.Is4() {
		ip.Family = 4
		if bits >= 0 && bits <= 32 {
			ip.Netmask = net.IP(net.CIDRMask(bits, 32)).String()
		}
	}
	if gateway.IsValid() && gateway.Is4() == addr.Is4() {
		ip.Gateway = gateway.String()
	}
	return ip
}

// tinkArch maps the firmware seen in PXE requests to Tinkerbell's arch
// names (uname -m) and its UEFI flag.
func tinkArch(fw string) (string, bool) {
	uefi := strings.HasPrefix(fw, "uefi")
	switch {
	case fw == "bios", strings.HasPrefix(fw, "uefi-x64"):
		return "x86_64", uefi
	case strings.HasPrefix(fw, "uefi-arm64"):
		return "aarch64", uefi
	case fw == "uefi-ia32":
		return "i386", uefi
	}
	return "", uefi
}

// slugify makes "Super Micro Computer, Inc." into "super-micro-computer-inc".
func slugify(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	return b.String()
}
