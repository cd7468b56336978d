package api

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/crypto/ssh"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// The approval rules of docs/spec.md §4, each a function of its input that returns
// the normalised value or an error detail naming the field. They read
// nothing but their arguments, so the handler can run all of them before
// it writes anything.

// checkHostname trims h and applies the one host name rule, names.Hostname
// (RFC 1123, returned lower-cased).
func checkHostname(h string) (string, *huma.ErrorDetail) {
	h = strings.TrimSpace(h)
	norm, err := names.Hostname(h)
	if err != nil {
		return "", &huma.ErrorDetail{Location: "body.hostname", Message: err.Error(), Value: h}
	}
	return norm, nil
}

// checkSSHKeys accepts authorized_keys lines (options allowed), one key per
// entry; it returns them trimmed.
func checkSSHKeys(keys []string) ([]string, []error) {
	var out []string
	var errs []error
	for i, k := range keys {
		k = strings.TrimSpace(k)
		loc := fmt.Sprintf("body.ssh_keys[%d]", i)
		if !names.OneLine(k) {
			// Also what the discovery agent refuses to put in the seed.
			errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "one authorized_keys line per entry; this one has a line break or another control character"})
			continue
		}
		if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil || len(rest) > 0 {
			errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "not an authorized_keys line (e.g. \"ssh-ed25519 AAAA… user@host\")", Value: shorten(k)})
			continue
		}
		out = append(out, k)
	}
	return out, errs
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// diskChoice picks the approval's target disk from the inventory. A named
// disk may be given by device path, by-path name (bare or under
// /dev/disk/by-path/) or kernel name. The default is the first
// non-removable, writable, non-empty disk in order of its stable by-path
// name, so the choice does not depend on which disk the kernel happened to
// call sda. The result is the disk's stable path when it has one.
func diskChoice(inv *inventory.Inventory, want string, required bool) (string, *huma.ErrorDetail) {
	if inv == nil {
		if want == "" && !required {
			return "", nil
		}
		return "", &huma.ErrorDetail{Location: "body.disk", Message: "the machine has not reported a readable inventory, so no disk can be chosen"}
	}
	if want != "" {
		for _, d := range inv.Disks {
			if want == d.Path || want == d.Name || d.ByPath != "" && (want == d.ByPath || want == byPathName(d.ByPath)) {
				if d.ReadOnly {
					return "", &huma.ErrorDetail{Location: "body.disk", Message: "disk is read-only", Value: want}
				}
				return stableDisk(d), nil
			}
		}
		var names []string
		for _, d := range inv.Disks {
			names = append(names, d.Path)
		}
		return "", &huma.ErrorDetail{Location: "body.disk", Value: want,
			Message: "not one of the machine's disks (" + strings.Join(names, ", ") + ")"}
	}
	var cands []inventory.Disk
	for _, d := range inv.Disks {
		if d.Fixed() {
			cands = append(cands, d)
		}
	}
	if len(cands) == 0 {
		if !required {
			return "", nil
		}
		return "", &huma.ErrorDetail{Location: "body.disk", Message: "the machine reported no fixed, writable disk; name one"}
	}
	slices.SortStableFunc(cands, func(a, b inventory.Disk) int {
		// Disks with a stable path come first, in its order.
		if (a.ByPath == "") != (b.ByPath == "") {
			if a.ByPath == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(strings.Compare(a.ByPath, b.ByPath), strings.Compare(a.Name, b.Name))
	})
	return stableDisk(cands[0]), nil
}

func byPathName(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/dev/disk/by-path/" + p
}

func stableDisk(d inventory.Disk) string {
	if d.ByPath != "" {
		return byPathName(d.ByPath)
	}
	return d.Path
}

// findDisk resolves a stored disk reference against a (fresh) inventory.
func findDisk(inv *inventory.Inventory, ref string) (inventory.Disk, bool) {
	if inv == nil {
		return inventory.Disk{}, false
	}
	for _, d := range inv.Disks {
		if ref == d.Path || d.ByPath != "" && (ref == d.ByPath || ref == byPathName(d.ByPath)) {
			return d, true
		}
	}
	return inventory.Disk{}, false
}

// checkNetwork validates the requested network against the machine's
// segment: a static address must lie in the segment's subnet (with a
// prefix at least as long), be a usable host address outside the DHCP
// range (that it belongs to no other machine is checked by the store when
// the approval is written); the gateway must be on-link.
// Missing gateway and DNS default to the segment's router and DNS.
func checkNetwork(req *Network, seg *SegmentInfo) (store.Network, []error) {
	if req == nil || req.Mode == "" || req.Mode == "dhcp" {
		var errs []error
		if req != nil && req.Address != "" {
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.address", Message: "an address needs mode static", Value: req.Address})
		}
		if req != nil && req.Gateway != "" {
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.gateway", Message: "a gateway needs mode static", Value: req.Gateway})
		}
		n := store.Network{Mode: "dhcp"}
		if req != nil {
			dns, derrs := parseDNS(req.DNS)
			n.DNS, errs = dns, append(errs, derrs...)
		}
		return n, errs
	}
	if req.Mode != "static" {
		return store.Network{}, []error{&huma.ErrorDetail{Location: "body.network.mode", Message: "want dhcp or static", Value: req.Mode}}
	}
	if seg == nil {
		return store.Network{}, []error{&huma.ErrorDetail{Location: "body.network.mode",
			Message: "the machine's segment is not configured on this appliance, so a static address cannot be checked; use dhcp"}}
	}
	var errs []error
	n := store.Network{Mode: "static"}
	pfx, err := netip.ParsePrefix(strings.TrimSpace(req.Address))
	switch {
	case req.Address == "":
		errs = append(errs, &huma.ErrorDetail{Location: "body.network.address", Message: "static mode needs an address with prefix length, e.g. 10.77.0.50/24"})
	case err != nil:
		errs = append(errs, &huma.ErrorDetail{Location: "body.network.address", Message: "not an address/prefix like 10.77.0.50/24", Value: req.Address})
	default:
		if msg := hostAddrProblem(pfx, seg); msg != "" {
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.address", Message: msg, Value: req.Address})
		} else {
			n.Address = pfx
		}
	}
	switch gw := strings.TrimSpace(req.Gateway); {
	case gw == "" && seg.Router.IsValid():
		n.Gateway = seg.Router
	case gw != "":
		a, err := netip.ParseAddr(gw)
		switch {
		case err != nil:
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.gateway", Message: "not an IP address", Value: gw})
		case !seg.Subnet.Contains(a) || pfx.IsValid() && !pfx.Masked().Contains(a):
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.gateway", Value: gw,
				Message: fmt.Sprintf("the gateway must be inside the segment's subnet %s and the machine's prefix", seg.Subnet)})
		case pfx.IsValid() && a == pfx.Addr():
			errs = append(errs, &huma.ErrorDetail{Location: "body.network.gateway", Message: "the gateway cannot be the machine's own address", Value: gw})
		default:
			n.Gateway = a
		}
	}
	dns, derrs := parseDNS(req.DNS)
	errs = append(errs, derrs...)
	n.DNS = dns
	if len(req.DNS) == 0 {
		n.DNS = slices.Clone(seg.DNS)
	}
	return n, errs
}

func hostAddrProblem(pfx netip.Prefix, seg *SegmentInfo) string {
	a := pfx.Addr()
	switch {
	case !seg.Subnet.Contains(a):
		return fmt.Sprintf("outside the segment's subnet %s", seg.Subnet)
	case pfx.Bits() < seg.Subnet.Bits():
		return fmt.Sprintf("prefix /%d is wider than the segment's subnet %s", pfx.Bits(), seg.Subnet)
	case a == pfx.Masked().Addr() && a.Is4() && pfx.Bits() < 31:
		return "that is the network address, not a host address"
	case a.Is4() && pfx.Bits() < 31 && a == lastAddr(pfx):
		return "that is the broadcast address, not a host address"
	case seg.Router.IsValid() && a == seg.Router:
		return "that is the segment's router"
	case seg.Mode == "dhcp" && seg.RangeStart.IsValid() && seg.RangeEnd.IsValid() &&
		seg.RangeStart.Compare(a) <= 0 && a.Compare(seg.RangeEnd) <= 0:
		return fmt.Sprintf("inside the segment's DHCP range %s-%s, where it could be leased to another machine", seg.RangeStart, seg.RangeEnd)
	}
	return ""
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32(1)<<host - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func parseDNS(in []string) ([]netip.Addr, []error) {
	var out []netip.Addr
	var errs []error
	for i, s := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || a.Zone() != "" {
			errs = append(errs, &huma.ErrorDetail{Location: fmt.Sprintf("body.network.dns[%d]", i), Message: "not an IP address (without a zone)", Value: s})
			continue
		}
		out = append(out, a)
	}
	return out, errs
}
