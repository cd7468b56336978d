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
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
// (SPEC §2). The YAML configuration is parsed and validated in cmd/foundry;
// Serve checks again with Validate so that a bad value can never reach the
// packet path.
type Segment struct {
	// Name identifies the segment in leases, machine records and logs.
	Name string
	// Interface is the network interface the segment is served on directly.
	// It is empty for a relayed segment.
	Interface string
	// Relayed segments are not served on an interface of their own: a packet
	// belongs to the relayed segment whose Subnet contains its giaddr.
	Relayed bool
	// Subnet is the segment's IPv4 network (option 1 comes from its mask).
	Subnet netip.Prefix
	// RangeStart and RangeEnd bound (inclusively) the addresses handed out
	// in dhcp mode. Unused in proxy mode.
	RangeStart, RangeEnd netip.Addr
	// Router is option 3; zero means none.
	Router netip.Addr
	// DNS is option 6; empty means none.
	DNS []netip.Addr
	// DomainName is option 15; empty means none.
	DomainName string
	// LeaseTime is option 51; default DefaultLeaseTime (1h).
	LeaseTime time.Duration
	// Mode is dhcp (default) or proxy.
	Mode Mode
	// Discovery lets unknown MACs on this segment be discovered: they get a
	// temporary record and the discovery boot. Default false.
	Discovery bool
	// AllowUnknown gives unknown MACs an address (but no boot) on a dhcp-mode
	// segment without discovery. Default false: unknown MACs are ignored.
	AllowUnknown bool
	// UEFIBinary is the x86-64 UEFI iPXE binary offered over TFTP:
	// "ipxe.efi" (default) or "snponly.efi". A machine record may override it.
	UEFIBinary string
	// ServerIP is Foundry's address on this segment: the server identifier
	// (option 54) and the TFTP next-server (siaddr). Default: the first IPv4
	// address of the interface the packet arrived on, looked up at Serve.
	ServerIP netip.Addr
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

// Validate reports the first thing wrong with s, naming the field.
func (s *Segment) Validate() error {
	if s.Name == "" || len(s.Name) > 64 || !utf8.ValidString(s.Name) || strings.ContainsFunc(s.Name, func(r rune) bool { return r == '/' || !unicode.IsPrint(r) }) {
		return fmt.Errorf("segment %q: name must be 1-64 printable characters without '/'", s.Name)
	}
	wrap := func(format string, a ...any) error {
		return fmt.Errorf("segment %s: %s", s.Name, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Relayed && s.Interface != "":
		return wrap("a relayed segment has no interface (got %q)", s.Interface)
	case !s.Relayed && s.Interface == "":
		return wrap("interface is empty (or mark the segment relayed)")
	}
	if !s.Subnet.IsValid() || !s.Subnet.Addr().Is4() || s.Subnet.Bits() > 30 || s.Subnet.Bits() < 8 {
		return wrap("subnet %v is not an IPv4 network between /8 and /30", s.Subnet)
	}
	if s.Subnet.Masked() != s.Subnet {
		return wrap("subnet %v has host bits set (want %v)", s.Subnet, s.Subnet.Masked())
	}
	if s.Mode != ModeDHCP && s.Mode != ModeProxy {
		return wrap("unknown mode %v", s.Mode)
	}
	if s.Mode == ModeDHCP {
		if !s.Subnet.Contains(s.RangeStart) || !s.Subnet.Contains(s.RangeEnd) {
			return wrap("range %v-%v is not inside subnet %v", s.RangeStart, s.RangeEnd, s.Subnet)
		}
		if s.RangeEnd.Less(s.RangeStart) {
			return wrap("range start %v is after range end %v", s.RangeStart, s.RangeEnd)
		}
	}
	if s.Router.IsValid() && !s.Router.Is4() {
		return wrap("router %v is not an IPv4 address", s.Router)
	}
	for _, d := range s.DNS {
		if !d.Is4() {
			return wrap("dns %v is not an IPv4 address", d)
		}
	}
	if len(s.DNS) > 63 {
		return wrap("too many dns servers (%d)", len(s.DNS))
	}
	if len(s.DomainName) > 255 {
		return wrap("domain name is longer than 255 bytes")
	}
	if s.LeaseTime < 0 || s.LeaseTime > 0xffffffff*time.Second {
		return wrap("lease time %v is out of range", s.LeaseTime)
	}
	if s.LeaseTime > 0 && s.LeaseTime < 10*time.Second {
		return wrap("lease time %v is shorter than 10s", s.LeaseTime)
	}
	switch s.UEFIBinary {
	case "", "ipxe.efi", "snponly.efi":
	default:
		return wrap("uefi binary %q is not ipxe.efi or snponly.efi", s.UEFIBinary)
	}
	if s.ServerIP.IsValid() && !s.ServerIP.Is4() {
		return wrap("server ip %v is not an IPv4 address", s.ServerIP)
	}
	return nil
}

// validateSegments checks every segment and the relations between them.
func validateSegments(segs []Segment) error {
	names := map[string]bool{}
	ifaces := map[string]string{}
	for i := range segs {
		s := &segs[i]
		if err := s.Validate(); err != nil {
			return err
		}
		if names[s.Name] {
			return fmt.Errorf("segment %s: name used twice", s.Name)
		}
		names[s.Name] = true
		if s.Interface != "" {
			// One direct segment per interface: a packet without giaddr
			// is told apart only by the interface it arrived on.
			if other, ok := ifaces[s.Interface]; ok {
				return fmt.Errorf("segment %s: interface %s is already served by segment %s", s.Name, s.Interface, other)
			}
			ifaces[s.Interface] = s.Name
		}
		for j := range i {
			o := &segs[j]
			if s.Relayed && o.Relayed && s.Subnet.Overlaps(o.Subnet) {
				return fmt.Errorf("segment %s: relayed subnet %v overlaps segment %s (%v)", s.Name, s.Subnet, o.Name, o.Subnet)
			}
		}
	}
	return nil
}
