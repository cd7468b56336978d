// Package dhcp answers DHCPv4 for Foundry. It is a coredhcp plugin run by
// coredhcp's own server (one server per served interface and port): the
// plugin picks the segment of a packet (by interface, or by giaddr for
// relayed segments), looks the machine up in the store, decides whether and
// what to boot (boot.go, a pure function), and in dhcp mode allocates the
// address from its own lease allocator backed by the store (leases.go).
// DHCPDECLINE, which coredhcp drops before plugins, is read from a packet
// socket beside it and handed to the same handler (decline.go).
package dhcp

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/foundry-appliance/foundry/names"
)

// Mode says whether Foundry hands out addresses on a segment.
type Mode int

// Segment modes.
const (
	// ModeDHCP: Foundry is the DHCP server of the segment and allocates
	// addresses from the segment's range.
	ModeDHCP Mode = iota
	// ModeProxy: another server hands out addresses; Foundry answers only
	// network-boot clients with boot information (proxyDHCP, ports 67 and
	// 4011).
	ModeProxy
)

// String returns the configuration name of the mode.
func (m Mode) String() string {
	switch m {
	case ModeDHCP:
		return "dhcp"
	case ModeProxy:
		return "proxy"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// ParseMode is the inverse of String.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "dhcp":
		return ModeDHCP, nil
	case "proxy":
		return ModeProxy, nil
	}
	return 0, fmt.Errorf("unknown segment mode %q (want dhcp or proxy)", s)
}

// Defaults of Segment fields.
const (
	DefaultLeaseTime  = time.Hour
	DefaultUEFIBinary = "ipxe.efi"
)

// Segment is one network served by Foundry: the unit of DHCP configuration
// (docs/spec.md §2). cmd/foundry parses the YAML configuration into Segments and
// validates them with CheckConfig, the code Serve runs before it opens a
// socket, so that `foundry check-config` and `foundry serve` accept the
// same files. Each field's doc names its configuration key.
type Segment struct {
	// Name (key name) identifies the segment in leases, machine records and
	// logs: a resource name (names.CheckName). Required.
	Name string
	// Interface (interface) is the network interface the segment is served
	// on directly. It is empty for a relayed segment.
	Interface string
	// Relayed (relayed) segments are not served on an interface of their
	// own: a packet belongs to the relayed segment whose Subnet contains its
	// giaddr. Default false.
	Relayed bool
	// Subnet (subnet) is the segment's IPv4 network, /8 to /30 (option 1
	// comes from its mask). Required.
	Subnet netip.Prefix
	// RangeStart and RangeEnd (range) bound, inclusively, the addresses
	// handed out in dhcp mode, where they are required. Unused in proxy mode.
	RangeStart, RangeEnd netip.Addr
	// Router (router) is option 3; zero means none.
	Router netip.Addr
	// DNS (dns) is option 6; empty means none.
	DNS []netip.Addr
	// DomainName (domain) is option 15; empty means none.
	DomainName string
	// LeaseTime (lease_time) is option 51; default DefaultLeaseTime (1h).
	LeaseTime time.Duration
	// Mode (mode) is dhcp (default) or proxy.
	Mode Mode
	// Discovery (discovery) lets unknown MACs on this segment be discovered:
	// they get a temporary record and the discovery boot. Default false.
	Discovery bool
	// AllowUnknown (allow_unknown) gives unknown MACs an address (but no
	// boot) on a dhcp-mode segment without discovery. Default false: unknown
	// MACs are ignored.
	AllowUnknown bool
	// UEFIBinary (uefi_binary) is the x86-64 UEFI iPXE binary offered over
	// TFTP: "ipxe.efi" (default) or "snponly.efi". A machine record may
	// override it.
	UEFIBinary string
	// ServerIP (server_ip) is Foundry's address on this segment: the server
	// identifier (option 54) and the TFTP next-server (siaddr). Default: the
	// first IPv4 address of the segment's interface, looked up at Serve (of
	// the interface the packet arrived on, for a relayed segment).
	ServerIP netip.Addr
	// MaxDiscovered (max_discovered) bounds the temporary records DHCP
	// keeps for unknown MACs discovered on this segment: at the bound an
	// unknown MAC gets no answer, while every machine with a record, and
	// every client holding an offer or lease, is served as before. Default
	// (0): the segment's Capacity, at least MinDefaultMaxDiscovered and at
	// most MaxDefaultMaxDiscovered — so that a boot storm filling the
	// range is never refused, and a flood leaves at most that many records
	// (about 1 KB each) until they expire.
	MaxDiscovered int
	// MaxPendingOffers (max_pending_offers) bounds the addresses held by
	// offers not yet taken up by a REQUEST (dhcp mode): past it, a client
	// that is neither a known machine nor the holder of an offer or lease
	// gets no offer until one is taken up or its hold (30 s) ends. Default
	// (0): half the range, at least one, so that a flood of DISCOVERs
	// cannot hold the whole pool.
	MaxPendingOffers int
}

// Bounds of the default of Segment.MaxDiscovered: small segments still
// discover a rack's worth of machines, very large ones stay bounded.
const (
	MinDefaultMaxDiscovered = 1024
	MaxDefaultMaxDiscovered = 65536
)

// Capacity is how many machines the segment can address: the size of the
// range in dhcp mode, the subnet's host addresses in proxy mode (another
// server leases them). It is 0 for a segment that does not validate.
func (s *Segment) Capacity() int {
	switch {
	case s.Mode == ModeDHCP && s.RangeStart.Is4() && s.RangeEnd.Is4() && !s.RangeEnd.Less(s.RangeStart):
		return int(u32(s.RangeEnd) - u32(s.RangeStart) + 1)
	case s.Mode == ModeProxy && s.Subnet.IsValid() && s.Subnet.Addr().Is4() && s.Subnet.Bits() <= 30:
		return 1<<(32-s.Subnet.Bits()) - 2
	}
	return 0
}

func (s *Segment) maxDiscovered() int {
	if s.MaxDiscovered > 0 {
		return s.MaxDiscovered
	}
	return min(max(s.Capacity(), MinDefaultMaxDiscovered), MaxDefaultMaxDiscovered)
}

func (s *Segment) maxPendingOffers() int {
	if s.MaxPendingOffers > 0 {
		return s.MaxPendingOffers
	}
	return max(1, s.Capacity()/2)
}

func (s *Segment) leaseTime() time.Duration {
	if s.LeaseTime <= 0 {
		return DefaultLeaseTime
	}
	return s.LeaseTime
}

func (s *Segment) uefiBinary() string {
	if s.UEFIBinary == "" {
		return DefaultUEFIBinary
	}
	return s.UEFIBinary
}

// Limits of segment values.
const (
	// MinLeaseTime is the shortest lease_time: shorter leases turn clients
	// into a renewal storm.
	MinLeaseTime = 10 * time.Second
	// MaxLeaseTime is the longest lease_time option 51 can carry
	// (0xffffffff seconds would mean "infinite", RFC 2131 §3.3).
	MaxLeaseTime = 0xfffffffe * time.Second
	// maxDNS is how many servers fit option 6 (4 bytes each, 255 at most).
	maxDNS = 63
)

// Validate reports everything wrong with s on its own (ConfigErrors, keys
// within the segment); ValidateSegments adds the relations between
// segments, CheckConfig the interfaces.
func (s *Segment) Validate() error { return s.problems().err() }

func (s *Segment) problems() ConfigErrors {
	var errs ConfigErrors
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ConfigError{Index: -1, Segment: s.Name, Key: key, Problem: fmt.Sprintf(format, a...)})
	}
	if err := names.CheckName(s.Name); err != nil {
		bad("name", "%s: %v", names.Label(s.Name), err)
	}
	switch {
	case s.Relayed && s.Interface != "":
		bad("interface", "a relayed segment is chosen by giaddr and has no interface of its own (got %s)", names.Label(s.Interface))
	case !s.Relayed && s.Interface == "":
		bad("interface", "required (or set relayed: true)")
	}
	subnetOK := s.Subnet.IsValid() && s.Subnet.Addr().Is4() && s.Subnet.Bits() >= 8 && s.Subnet.Bits() <= 30
	switch {
	case !subnetOK:
		bad("subnet", "%s is not an IPv4 network between /8 and /30", prefixText(s.Subnet))
	case s.Subnet.Masked() != s.Subnet:
		bad("subnet", "%v has host bits set (want %v)", s.Subnet, s.Subnet.Masked())
	}
	inSubnet := func(key string, a netip.Addr) bool {
		switch {
		case !a.Is4():
			bad(key, "%s is not an IPv4 address", addrText(a))
		case subnetOK && !s.Subnet.Masked().Contains(a):
			bad(key, "%v is outside subnet %v", a, s.Subnet.Masked())
		default:
			return true
		}
		return false
	}
	if s.Mode != ModeDHCP && s.Mode != ModeProxy {
		bad("mode", "%v is not dhcp or proxy", s.Mode)
	}
	switch {
	case !s.RangeStart.IsValid() && !s.RangeEnd.IsValid():
		if s.Mode == ModeDHCP {
			bad("range", "required in dhcp mode: [first, last] address")
		}
	case inSubnet("range[0]", s.RangeStart) && inSubnet("range[1]", s.RangeEnd) && s.RangeEnd.Less(s.RangeStart):
		bad("range", "start %v is after end %v", s.RangeStart, s.RangeEnd)
	}
	if s.Router.IsValid() {
		inSubnet("router", s.Router)
	}
	for i, d := range s.DNS {
		if !d.Is4() {
			bad(fmt.Sprintf("dns[%d]", i), "%s is not an IPv4 address", addrText(d))
		}
	}
	if len(s.DNS) > maxDNS {
		bad("dns", "%d servers, at most %d fit option 6", len(s.DNS), maxDNS)
	}
	if s.DomainName != "" {
		// Clients write option 15 into resolv.conf: a domain, nothing else.
		if _, err := names.Hostname(s.DomainName); err != nil {
			bad("domain", "%s: %v", names.Label(s.DomainName), err)
		}
	}
	switch {
	case s.LeaseTime < 0:
		bad("lease_time", "%v is negative", s.LeaseTime)
	case s.LeaseTime > 0 && s.LeaseTime < MinLeaseTime:
		bad("lease_time", "%v is shorter than %v", s.LeaseTime, MinLeaseTime)
	case s.LeaseTime > MaxLeaseTime:
		bad("lease_time", "%v is longer than option 51 can carry (%v)", s.LeaseTime, MaxLeaseTime)
	}
	switch s.UEFIBinary {
	case "", "ipxe.efi", "snponly.efi":
	default:
		bad("uefi_binary", "%s is not ipxe.efi or snponly.efi", names.Label(s.UEFIBinary))
	}
	switch {
	case !s.ServerIP.IsValid():
	case s.Relayed:
		// Our address as the relay reaches it: not in the relayed subnet.
		if !s.ServerIP.Is4() {
			bad("server_ip", "%v is not an IPv4 address", s.ServerIP)
		}
	default:
		inSubnet("server_ip", s.ServerIP)
	}
	if s.MaxDiscovered < 0 {
		bad("max_discovered", "%d is negative", s.MaxDiscovered)
	}
	switch n := s.Capacity(); {
	case s.MaxPendingOffers < 0:
		bad("max_pending_offers", "%d is negative", s.MaxPendingOffers)
	case s.MaxPendingOffers > 0 && s.Mode == ModeProxy:
		bad("max_pending_offers", "a proxy-mode segment offers no addresses")
	case s.MaxPendingOffers > n && n > 0:
		bad("max_pending_offers", "%d is more than the range's %d addresses", s.MaxPendingOffers, n)
	}
	return errs
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "(none)"
	}
	return a.String()
}

func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return "(none)"
	}
	return p.String()
}
