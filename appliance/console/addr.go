package console

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/foundry-appliance/foundry/names"
)

// The setup's address rules. They are those of dhcp.Segment.Validate (IPv4,
// /8 to /30, range inside the subnet and in order) plus what only makes
// sense for the appliance's own segment: the appliance's address is a host
// address and is never handed out, nor offered as the router.

// parseAddress reads the appliance's address with its prefix length.
func parseAddress(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%s is not an address with its prefix length, like %s", names.Label(s), DefaultAddress)
	case !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%v is not an IPv4 address", p)
	case p.Bits() < 8 || p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("%v: the prefix length must be /8 to /30", p)
	}
	if err := hostAddr(p, p.Addr()); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// hostAddr reports whether a can be given to a host of p's subnet.
func hostAddr(p netip.Prefix, a netip.Addr) error {
	net := p.Masked()
	switch {
	case !a.Is4():
		return fmt.Errorf("%v is not an IPv4 address", a)
	case !net.Contains(a):
		return fmt.Errorf("%v is outside the subnet %v", a, net)
	case a == net.Addr():
		return fmt.Errorf("%v is the network address of %v", a, net)
	case a == broadcast(net):
		return fmt.Errorf("%v is the broadcast address of %v", a, net)
	}
	return nil
}

// parseRange reads "first-last" and checks it against the appliance's
// address p.
func parseRange(p netip.Prefix, s string) (start, end netip.Addr, err error) {
	first, last, ok := strings.Cut(s, "-")
	if ok {
		start, err = netip.ParseAddr(strings.TrimSpace(first))
		if err == nil {
			end, err = netip.ParseAddr(strings.TrimSpace(last))
		}
	}
	if !ok || err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%s is not a range like 10.77.0.100-10.77.0.200", names.Label(s))
	}
	if err := checkRange(p, start, end); err != nil {
		return netip.Addr{}, netip.Addr{}, err
	}
	return start, end, nil
}

func checkRange(p netip.Prefix, start, end netip.Addr) error {
	if err := hostAddr(p, start); err != nil {
		return fmt.Errorf("range start: %w", err)
	}
	if err := hostAddr(p, end); err != nil {
		return fmt.Errorf("range end: %w", err)
	}
	switch a := p.Addr(); {
	case end.Less(start):
		return fmt.Errorf("range start %v is after its end %v", start, end)
	case !a.Less(start) && !end.Less(a):
		return fmt.Errorf("range %s contains the appliance's own address %v", rangeText(start, end), a)
	}
	return nil
}

// defaultRange is the range offered for the appliance's address p: the
// addresses from 100/256 to 200/256 of the subnet (.100-.200 in a /24,
// .100.0-.200.0 in a /16), within the host addresses, and on the larger side
// of the appliance's address when the share contains it.
func defaultRange(p netip.Prefix) (start, end netip.Addr) {
	net := p.Masked()
	base := uint64(u32(net.Addr()))
	size := uint64(1) << (32 - net.Bits())
	lo := max(base+size*100/256, base+1)
	hi := min(base+size*200/256, base+size-2)
	if a := uint64(u32(p.Addr())); lo <= a && a <= hi {
		if a-lo >= hi-a {
			hi = a - 1
		} else {
			lo = a + 1
		}
	}
	return addr4(uint32(lo)), addr4(uint32(hi))
}

// parseRouter reads the router answer: "" or "none" for none, else a host
// address of the subnet that the DHCP range does not hand out.
func parseRouter(a Answers, s string) (netip.Addr, error) {
	if s == "" || strings.EqualFold(s, "none") {
		return netip.Addr{}, nil
	}
	r, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s is not an IPv4 address (Enter for none)", names.Label(s))
	}
	if err := hostAddr(a.Address, r); err != nil {
		return netip.Addr{}, err
	}
	switch {
	case r == a.Address.Addr():
		return netip.Addr{}, fmt.Errorf("%v is the appliance's own address, and the appliance does not route", r)
	case !r.Less(a.RangeStart) && !a.RangeEnd.Less(r):
		return netip.Addr{}, fmt.Errorf("%v is inside the DHCP range %s", r, rangeText(a.RangeStart, a.RangeEnd))
	}
	return r, nil
}

func rangeText(start, end netip.Addr) string { return start.String() + "-" + end.String() }

func broadcast(net netip.Prefix) netip.Addr {
	return addr4(u32(net.Addr()) | (1<<(32-net.Bits()) - 1))
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
