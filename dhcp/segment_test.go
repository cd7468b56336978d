package dhcp

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestModeNames(t *testing.T) {
	for _, m := range []Mode{ModeDHCP, ModeProxy} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("relay"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
	if s := Mode(7).String(); s != "mode(7)" {
		t.Errorf("Mode(7) = %q", s)
	}
}

func TestSegmentValidate(t *testing.T) {
	good := labSegment("10.77.0.100", "10.77.0.199")
	tests := []struct {
		name string
		edit func(*Segment)
		want string // the key of the error, then a substring of its text; "" = valid
	}{
		{"valid", func(*Segment) {}, ""},
		{"valid proxy without range", func(s *Segment) { s.Mode, s.RangeStart, s.RangeEnd = ModeProxy, netip.Addr{}, netip.Addr{} }, ""},
		{"valid relayed", func(s *Segment) { s.Interface, s.Relayed = "", true }, ""},
		{"valid relayed server ip elsewhere", func(s *Segment) { s.Interface, s.Relayed, s.ServerIP = "", true, mustAddr("10.99.0.1") }, ""},
		{"valid name alphabet", func(s *Segment) { s.Name = "Rack_2.lab-A" }, ""},
		{"valid /8 and /30", func(s *Segment) {
			s.Subnet, s.RangeStart, s.RangeEnd, s.Router = netip.MustParsePrefix("10.0.0.0/30"), mustAddr("10.0.0.2"), mustAddr("10.0.0.2"), mustAddr("10.0.0.1")
		}, ""},
		{"valid domain", func(s *Segment) { s.DomainName = "Lab.Example" }, ""},
		{"valid lease bounds", func(s *Segment) { s.LeaseTime = MinLeaseTime }, ""},
		{"empty name", func(s *Segment) { s.Name = "" }, "name: "},
		{"slash in name", func(s *Segment) { s.Name = "a/b" }, "name: "},
		{"space in name", func(s *Segment) { s.Name = "lab 1" }, "name: "},
		{"leading dash in name", func(s *Segment) { s.Name = "-lab" }, "name: "},
		{"control char in name", func(s *Segment) { s.Name = "a\nb" }, `name: "a\nb"`},
		{"no interface", func(s *Segment) { s.Interface = "" }, "interface: required"},
		{"relayed with interface", func(s *Segment) { s.Relayed = true }, "interface: a relayed segment"},
		{"no subnet", func(s *Segment) { s.Subnet = netip.Prefix{} }, "subnet: (none)"},
		{"ipv6 subnet", func(s *Segment) { s.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet: fd00::/64"},
		{"host bits", func(s *Segment) { s.Subnet = netip.MustParsePrefix("10.77.0.1/24") }, "subnet: 10.77.0.1/24 has host bits"},
		{"/31", func(s *Segment) { s.Subnet = netip.MustParsePrefix("10.77.0.0/31") }, "subnet: 10.77.0.0/31 is not"},
		{"/32", func(s *Segment) { s.Subnet = netip.MustParsePrefix("10.77.0.1/32") }, "subnet: 10.77.0.1/32 is not"},
		{"/4", func(s *Segment) { s.Subnet = netip.MustParsePrefix("0.0.0.0/4") }, "subnet: 0.0.0.0/4 is not"},
		{"dhcp mode without range", func(s *Segment) { s.RangeStart, s.RangeEnd = netip.Addr{}, netip.Addr{} }, "range: required in dhcp mode"},
		{"half a range", func(s *Segment) { s.RangeEnd = netip.Addr{} }, "range[1]: (none) is not an IPv4"},
		{"range outside subnet", func(s *Segment) { s.RangeEnd = mustAddr("10.77.1.5") }, "range[1]: 10.77.1.5 is outside subnet 10.77.0.0/24"},
		{"proxy range outside subnet", func(s *Segment) { s.Mode, s.RangeStart = ModeProxy, mustAddr("10.1.0.1") }, "range[0]: 10.1.0.1 is outside"},
		{"range reversed", func(s *Segment) { s.RangeStart, s.RangeEnd = s.RangeEnd, s.RangeStart }, "range: start 10.77.0.199 is after end 10.77.0.100"},
		{"ipv6 router", func(s *Segment) { s.Router = mustAddr("fd00::1") }, "router: fd00::1 is not an IPv4"},
		{"router outside subnet", func(s *Segment) { s.Router = mustAddr("10.1.1.1") }, "router: 10.1.1.1 is outside"},
		{"ipv6 dns", func(s *Segment) { s.DNS = []netip.Addr{srvIP, mustAddr("fd00::1")} }, "dns[1]: fd00::1"},
		{"too many dns", func(s *Segment) { s.DNS = make([]netip.Addr, 64); fillAddrs(s.DNS) }, "dns: 64 servers"},
		{"domain with newline", func(s *Segment) { s.DomainName = "lab\nnameserver 6.6.6.6" }, `domain: "lab\nnameserver 6.6.6.6"`},
		{"domain too long", func(s *Segment) { s.DomainName = strings.Repeat("a.", 127) + "aa" }, "domain: "},
		{"short lease", func(s *Segment) { s.LeaseTime = 5 * time.Second }, "lease_time: 5s is shorter than 10s"},
		{"negative lease", func(s *Segment) { s.LeaseTime = -time.Hour }, "lease_time: -1h0m0s is negative"},
		{"lease beyond option 51", func(s *Segment) { s.LeaseTime = MaxLeaseTime + time.Second }, "lease_time: "},
		{"bad uefi binary", func(s *Segment) { s.UEFIBinary = "../../etc/passwd" }, `uefi_binary: "../../etc/passwd"`},
		{"bad mode", func(s *Segment) { s.Mode = 9 }, "mode: mode(9)"},
		{"server ip outside subnet", func(s *Segment) { s.ServerIP = mustAddr("192.0.2.1") }, "server_ip: 192.0.2.1 is outside"},
		{"ipv6 server ip on relayed", func(s *Segment) { s.Interface, s.Relayed, s.ServerIP = "", true, mustAddr("fd00::1") }, "server_ip: fd00::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
			var errs ConfigErrors
			if err != nil && (!errors.As(err, &errs) || len(errs) != 1) {
				t.Errorf("want exactly one ConfigError, got %#v", err)
			}
		})
	}
}

func fillAddrs(a []netip.Addr) {
	for i := range a {
		a[i] = netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)})
	}
}

// TestValidateReportsEverything: one run names every problem, each with its
// own key, so an administrator fixes a file in one go.
func TestValidateReportsEverything(t *testing.T) {
	s := labSegment("10.77.0.100", "10.78.0.1")
	s.Name, s.LeaseTime, s.Router = "lab 1", time.Second, mustAddr("fd00::1")
	err := ValidateSegments([]Segment{labSegment("10.77.0.10", "10.77.0.20"), s})
	var errs ConfigErrors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not ConfigErrors", err)
	}
	var keys []string
	for _, e := range errs {
		keys = append(keys, e.Key)
		if e.Index != 1 {
			t.Errorf("%v: index %d, want 1", e, e.Index)
		}
	}
	if got := strings.Join(keys, " "); got != "name range[1] router lease_time" {
		t.Errorf("keys %q in %v", got, err)
	}
	if !strings.HasPrefix(errs[0].Error(), `segments[1] ("lab 1").name: `) {
		t.Errorf("first error %q", errs[0])
	}
}

func TestValidateSegmentsTogether(t *testing.T) {
	a := labSegment("10.77.0.100", "10.77.0.199")
	relayed := func(name, subnet, first, last string) Segment {
		return Segment{Name: name, Relayed: true, Subnet: netip.MustParsePrefix(subnet), RangeStart: mustAddr(first), RangeEnd: mustAddr(last)}
	}
	other := labSegment("10.77.0.100", "10.77.0.199")
	other.Name = "other"
	sameName := labSegment("10.77.0.100", "10.77.0.199")
	sameName.Interface = "veth9"
	prod := Segment{Name: "prod", Interface: "veth1", Subnet: netip.MustParsePrefix("10.78.0.0/24"),
		RangeStart: mustAddr("10.78.0.100"), RangeEnd: mustAddr("10.78.0.199")}
	tests := []struct {
		name string
		segs []Segment
		want string // "" = valid
	}{
		{"two direct segments", []Segment{a, prod}, ""},
		{"direct and relayed apart", []Segment{a, relayed("r", "10.88.0.0/24", "10.88.0.10", "10.88.0.20")}, ""},
		{"one interface twice", []Segment{a, other}, "segments[1] (other).interface: veth0 is already served by segment lab"},
		{"name twice", []Segment{a, sameName}, "segments[1] (lab).name: lab is used twice (also segments[0])"},
		{"relayed subnets overlap", []Segment{relayed("r1", "10.88.0.0/24", "10.88.0.10", "10.88.0.20"), relayed("r2", "10.88.0.0/16", "10.88.5.1", "10.88.5.9")},
			"segments[1] (r2).subnet: 10.88.0.0/16 overlaps subnet 10.88.0.0/24 of segment r1"},
		{"relayed overlaps direct", []Segment{a, relayed("r", "10.77.0.0/16", "10.77.5.1", "10.77.5.9")}, "segments[1] (r).subnet"},
		{"ranges overlap", []Segment{a, func() Segment {
			s := prod
			s.Subnet, s.RangeStart, s.RangeEnd = netip.MustParsePrefix("10.77.0.0/16"), mustAddr("10.77.0.150"), mustAddr("10.77.0.250")
			return s
		}()}, "segments[1] (prod).range: 10.77.0.150-10.77.0.250 overlaps range 10.77.0.100-10.77.0.199 of segment lab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSegments(tt.segs)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeInterfaces has veth0 (10.77.0.1), veth1 (10.78.0.1), relay0
// (10.99.0.1) and bare0 (no IPv4 address).
func fakeInterfaces(name string) ([]netip.Addr, bool) {
	switch name {
	case "veth0":
		return []netip.Addr{srvIP}, true
	case "veth1":
		return []netip.Addr{mustAddr("10.78.0.1")}, true
	case "relay0":
		return []netip.Addr{mustAddr("10.99.0.1")}, true
	case "bare0":
		return nil, true
	}
	return nil, false
}

func TestCheckConfigInterfaces(t *testing.T) {
	lab := labSegment("10.77.0.100", "10.77.0.199")
	remote := Segment{Name: "remote", Relayed: true, Subnet: netip.MustParsePrefix("10.88.0.0/24"),
		RangeStart: mustAddr("10.88.0.100"), RangeEnd: mustAddr("10.88.0.199")}
	with := func(edit func(*Segment)) Segment { s := lab; edit(&s); return s }
	via := func(ifaces ...string) Relays { return Relays{Interfaces: ifaces} }
	from := func(sources ...string) Relays {
		r := via("relay0")
		for _, p := range sources {
			r.Sources = append(r.Sources, netip.MustParsePrefix(p))
		}
		return r
	}
	tests := []struct {
		name   string
		segs   []Segment
		relays Relays
		want   string // "" = valid
	}{
		{"direct", []Segment{lab}, Relays{}, ""},
		{"no segments", nil, Relays{}, ""},
		{"relayed through a relay interface", []Segment{remote}, via("relay0"), ""},
		{"relayed through a direct segment's interface listed as a relay interface", []Segment{lab, remote}, via("veth0"), ""},
		{"a direct segment's interface and a relay interface", []Segment{lab, remote}, via("veth0", "relay0"), ""},
		{"relay sources", []Segment{remote}, from("10.99.0.2/32", "10.98.0.0/30"), ""},
		{"bare interface with server ip", []Segment{with(func(s *Segment) { s.Interface, s.ServerIP = "bare0", srvIP })}, Relays{}, ""},
		{"missing interface", []Segment{with(func(s *Segment) { s.Interface = "eth9" })}, Relays{}, `segments[0] (lab).interface: "eth9" does not exist on this host`},
		{"bare interface", []Segment{with(func(s *Segment) { s.Interface = "bare0" })}, Relays{}, "segments[0] (lab).interface: bare0 has no IPv4 address"},
		{"relayed only, nothing to listen on", []Segment{remote}, Relays{}, "dhcp.relay_interfaces: relayed segments need"},
		// A host of the lab segment must not pose as the relay of another:
		// the segment's interface receives relayed packets only when listed.
		{"relayed beside a direct segment, no relay interface", []Segment{lab, remote}, Relays{}, "dhcp.relay_interfaces: relayed segments need"},
		{"missing relay interface", []Segment{remote}, via("relay0", "nope"), `dhcp.relay_interfaces[1]: "nope" does not exist`},
		{"empty relay interface", []Segment{lab}, via(""), "dhcp.relay_interfaces[0]: empty"},
		{"relay interface listed twice", []Segment{remote}, via("relay0", "relay0"), `dhcp.relay_interfaces[1]: "relay0" is listed twice`},
		{"direct relay interface without an IPv4 address", []Segment{with(func(s *Segment) { s.Interface, s.ServerIP = "bare0", srvIP }), remote}, via("bare0"),
			"dhcp.relay_interfaces[0]: bare0 serves a segment directly and has no IPv4 address"},
		{"IPv6 relay source", []Segment{remote}, from("fd00::/64"), "dhcp.relay_sources[0]: fd00::/64 is not an IPv4 address or network"},
		{"relay source with host bits", []Segment{remote}, from("10.99.0.2/32", "10.99.0.1/30"), "dhcp.relay_sources[1]: 10.99.0.1/30 has host bits set (want 10.99.0.0/30)"},
		{"no relay source", []Segment{remote}, Relays{Interfaces: []string{"relay0"}, Sources: []netip.Prefix{{}}}, "dhcp.relay_sources[0]: (none) is not an IPv4"},
		{"relay sources without a relay interface", []Segment{lab}, Relays{Sources: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32")}}, "dhcp.relay_sources: no interface receives"},
		{"segment and interface problems together", []Segment{with(func(s *Segment) { s.Interface, s.LeaseTime = "eth9", time.Second })}, Relays{},
			`segments[0] (lab).lease_time: 1s is shorter than 10s; segments[0] (lab).interface: "eth9" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConfig(tt.segs, tt.relays, fakeInterfaces)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
			// Serve's own check agrees: it fails exactly when CheckConfig does.
			srv := Server{Segments: tt.segs, Relays: tt.relays, Machines: nopMachines{}, Leases: nopLeases{}}
			serr := srv.Check(fakeInterfaces)
			if len(tt.segs) > 0 && (serr == nil) != (err == nil) {
				t.Errorf("Server.Check = %v, CheckConfig = %v", serr, err)
			}
		})
	}
}

func TestServerPlanOrder(t *testing.T) {
	srv := Server{Segments: testSegments(), Relays: Relays{Interfaces: []string{"relay0", "veth0"}}, Machines: nopMachines{}, Leases: nopLeases{}}
	lookup := func(name string) ([]netip.Addr, bool) {
		if name == "veth2" {
			return []netip.Addr{mustAddr("fd00::1"), mustAddr("10.79.0.1")}, true // IPv6 first
		}
		return fakeInterfaces(name)
	}
	ifaces, ips, err := srv.plan(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ifaces, " "); got != "veth0 veth1 veth2 relay0" {
		t.Errorf("interfaces %q", got)
	}
	// IPv4 only: relay sockets are bound to each of them.
	if !slices.Equal(ips["veth2"], []netip.Addr{mustAddr("10.79.0.1")}) || !slices.Equal(ips["relay0"], []netip.Addr{mustAddr("10.99.0.1")}) {
		t.Errorf("addresses %v", ips)
	}
}

// Serve's checks only need the stores to be there; nothing is called.
type (
	nopMachines struct{ MachineStore }
	nopLeases   struct{ LeaseStore }
)

func TestServerAddr(t *testing.T) {
	lab := labSegment("10.77.0.100", "10.77.0.199")
	set := lab
	set.ServerIP = mustAddr("10.77.0.2")
	bare := lab
	bare.Interface = "bare0"
	remote := Segment{Name: "remote", Relayed: true}
	tests := []struct {
		name string
		seg  Segment
		want string
	}{
		{"from the interface", lab, "10.77.0.1"},
		{"server_ip wins", set, "10.77.0.2"},
		{"interface without address", bare, "invalid IP"},
		{"relayed: the arrival interface's, not known here", remote, "invalid IP"},
	}
	for _, tt := range tests {
		if got := ServerAddr(tt.seg, fakeInterfaces); got.String() != tt.want {
			t.Errorf("%s: ServerAddr = %v, want %s", tt.name, got, tt.want)
		}
	}
}
