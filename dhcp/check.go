package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/foundry-appliance/foundry/names"
)

// One validation path: cmd/foundry (`check-config`, and `serve` while it
// loads its configuration) calls CheckConfig, and Serve calls the same
// functions through Server.Check before it opens a socket, so a file one
// accepts the other accepts too.

// ConfigError is one problem in a DHCP configuration, named by its key in
// the configuration file (docs/spec.md §6), so that `foundry check-config` and
// `foundry serve` report it in the same words.
type ConfigError struct {
	// Index is the segment's position in the list checked; -1 when the
	// segment was checked alone (Validate) or the problem is not one
	// segment's (then Key is the whole key).
	Index int
	// Segment is the segment's name; "" when the problem is not a segment's.
	Segment string
	// Key is the key within the segment ("lease_time", "range[1]"), or the
	// whole key when the problem is not a segment's
	// ("dhcp.relay_interfaces[0]").
	Key string
	// Problem says what is wrong.
	Problem string
}

// Path is the key as the configuration file spells it, with the segment's
// position and name: "segments[0] (lab).lease_time".
func (e *ConfigError) Path() string {
	switch {
	case e.Index >= 0:
		key := fmt.Sprintf("segments[%d]", e.Index)
		if e.Segment != "" {
			key += " (" + names.Ref(e.Segment) + ")"
		}
		return key + "." + e.Key
	case e.Segment != "":
		return "segment " + names.Ref(e.Segment) + "." + e.Key
	}
	return e.Key
}

// Error is the path and the problem:
// "segments[0] (lab).lease_time: 5s is shorter than 10s".
func (e *ConfigError) Error() string { return e.Path() + ": " + e.Problem }

// ConfigErrors is every problem found in a configuration, in its order.
type ConfigErrors []*ConfigError

func (errs ConfigErrors) Error() string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// err is errs as an error, nil when there is none.
func (errs ConfigErrors) err() error {
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ValidateSegments checks every segment (Validate) and the relations
// between them: unique names, one direct segment per interface, relayed
// subnets that identify their segment, and ranges that do not overlap. The
// error is ConfigErrors, with each problem's Index set.
func ValidateSegments(segs []Segment) error { return validateSegments(segs).err() }

func validateSegments(segs []Segment) ConfigErrors {
	var errs ConfigErrors
	ok := make([]bool, len(segs))
	for i := range segs {
		p := segs[i].problems()
		for _, e := range p {
			e.Index = i
		}
		errs = append(errs, p...)
		ok[i] = len(p) == 0
	}
	// Relations only between segments that are sound on their own: a
	// broken one would only add echoes of its own problem.
	for i := range segs {
		s := &segs[i]
		bad := func(key, format string, a ...any) {
			errs = append(errs, &ConfigError{Index: i, Segment: s.Name, Key: key, Problem: fmt.Sprintf(format, a...)})
		}
		for j := 0; j < i && ok[i]; j++ {
			o := &segs[j]
			if !ok[j] {
				continue
			}
			if s.Name == o.Name {
				bad("name", "%s is used twice (also segments[%d])", s.Name, j)
			}
			if s.Interface != "" && s.Interface == o.Interface {
				// A packet without giaddr is told apart only by the
				// interface it arrived on.
				bad("interface", "%s is already served by segment %s", s.Interface, o.Name)
			}
			if (s.Relayed || o.Relayed) && s.Subnet.Overlaps(o.Subnet) {
				bad("subnet", "%v overlaps subnet %v of segment %s: a relayed segment's subnet must identify it", s.Subnet, o.Subnet, o.Name)
			}
			if s.RangeStart.IsValid() && o.RangeStart.IsValid() && !(s.RangeEnd.Less(o.RangeStart) || o.RangeEnd.Less(s.RangeStart)) {
				bad("range", "%v-%v overlaps range %v-%v of segment %s", s.RangeStart, s.RangeEnd, o.RangeStart, o.RangeEnd, o.Name)
			}
		}
	}
	return errs
}

// Interfaces looks a network interface up by name: its IPv4 addresses in
// the order the system lists them, and whether it exists at all.
type Interfaces func(name string) (addrs []netip.Addr, exists bool)

// HostInterfaces looks interfaces up on this host; Serve uses it.
func HostInterfaces(name string) ([]netip.Addr, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, false
	}
	var out []netip.Addr
	addrs, _ := ifi.Addrs() // an interface without addresses is still there
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP.To4()); ok {
				out = append(out, ip)
			}
		}
	}
	return out, true
}

// ServerAddr is the address Serve answers from on seg: ServerIP when set,
// else the first IPv4 address lookup finds on the segment's interface. It
// is zero for a relayed segment without ServerIP, which answers from the
// interface each packet arrives on.
func ServerAddr(seg Segment, lookup Interfaces) netip.Addr {
	if seg.ServerIP.IsValid() || seg.Relayed || seg.Interface == "" {
		return seg.ServerIP
	}
	addrs, _ := lookup(seg.Interface)
	return firstIPv4(addrs)
}

func firstIPv4(addrs []netip.Addr) netip.Addr {
	for _, a := range addrs {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// CheckConfig validates a DHCP configuration exactly as Serve does before
// it opens a socket (Server.Check is the same with the wiring checks):
// the segments (ValidateSegments), the relay settings and the interfaces,
// looked up with lookup. Every interface served must exist; a direct
// segment without server_ip needs an IPv4 address on its interface;
// relayed segments need a relay interface (a direct segment's interface
// counts only when listed there, and then needs an IPv4 address for relays
// to send to); relay sources are IPv4 addresses or networks, and only mean
// something with a relay interface. The error is ConfigErrors, naming every
// problem's key.
func CheckConfig(segs []Segment, relays Relays, lookup Interfaces) error {
	errs := validateSegments(segs)
	_, _, ifErrs := listenPlan(segs, relays, lookup)
	return append(errs, ifErrs...).err()
}

// listenPlan looks up the interfaces Serve listens on: those of direct
// segments, then the relay interfaces, in configuration order, each with
// its IPv4 addresses; and checks the relay settings.
func listenPlan(segs []Segment, relays Relays, lookup Interfaces) ([]string, map[string][]netip.Addr, ConfigErrors) {
	var errs ConfigErrors
	var ifaces []string
	ifaceAddrs := map[string][]netip.Addr{}
	use := func(name string) (netip.Addr, bool) {
		addrs, ok := lookup(name)
		if !ok {
			return netip.Addr{}, false
		}
		ifaces = append(ifaces, name)
		for _, a := range addrs {
			if a.Is4() {
				ifaceAddrs[name] = append(ifaceAddrs[name], a)
			}
		}
		return firstIPv4(addrs), true
	}
	for i := range segs {
		s := &segs[i]
		if s.Relayed || s.Interface == "" || slices.Contains(ifaces, s.Interface) {
			continue // no interface of its own, or looked up already
		}
		bad := func(format string, a ...any) {
			errs = append(errs, &ConfigError{Index: i, Segment: s.Name, Key: "interface", Problem: fmt.Sprintf(format, a...)})
		}
		switch ip, ok := use(s.Interface); {
		case !ok:
			bad("%s does not exist on this host", names.Label(s.Interface))
		case !ip.IsValid() && !s.ServerIP.IsValid():
			bad("%s has no IPv4 address (give it one, or set server_ip)", s.Interface)
		}
	}
	direct := func(name string) bool {
		return slices.ContainsFunc(segs, func(s Segment) bool { return !s.Relayed && s.Interface == name })
	}
	for i, name := range relays.Interfaces {
		bad := func(format string, a ...any) {
			errs = append(errs, &ConfigError{Index: -1, Key: fmt.Sprintf("dhcp.relay_interfaces[%d]", i), Problem: fmt.Sprintf(format, a...)})
		}
		switch {
		case name == "":
			bad("empty interface name")
		case slices.Index(relays.Interfaces, name) < i:
			bad("%s is listed twice", names.Label(name))
		case slices.Contains(ifaces, name):
			if direct(name) && len(ifaceAddrs[name]) == 0 {
				// Relays unicast to one of its addresses, where our own
				// socket sees their source (Server.build).
				bad("%s serves a segment directly and has no IPv4 address for relays to send to", name)
			}
		default:
			if _, ok := use(name); !ok {
				bad("%s does not exist on this host", names.Label(name))
			}
		}
	}
	for i, p := range relays.Sources {
		key := fmt.Sprintf("dhcp.relay_sources[%d]", i)
		switch {
		case !p.IsValid() || !p.Addr().Is4():
			errs = append(errs, &ConfigError{Index: -1, Key: key, Problem: prefixText(p) + " is not an IPv4 address or network"})
		case p.Masked() != p:
			errs = append(errs, &ConfigError{Index: -1, Key: key, Problem: fmt.Sprintf("%v has host bits set (want %v)", p, p.Masked())})
		}
	}
	if len(relays.Sources) > 0 && len(relays.Interfaces) == 0 {
		errs = append(errs, &ConfigError{Index: -1, Key: "dhcp.relay_sources",
			Problem: "no interface receives relayed packets: list the relays' interfaces in dhcp.relay_interfaces"})
	}
	if slices.ContainsFunc(segs, func(s Segment) bool { return s.Relayed }) && len(relays.Interfaces) == 0 {
		errs = append(errs, &ConfigError{Index: -1, Key: "dhcp.relay_interfaces",
			Problem: "relayed segments need an interface that receives relayed packets: list it here (a direct segment's interface counts only when listed)"})
	}
	return ifaces, ifaceAddrs, errs
}

// Check validates s as Serve does before it opens a socket, looking
// interfaces up with lookup (Serve uses HostInterfaces): the wiring (a
// machine store; a lease store when a segment is in dhcp mode), the
// segments (ValidateSegments) and the interfaces, as CheckConfig does.
func (s *Server) Check(lookup Interfaces) error {
	_, _, err := s.plan(lookup)
	return err
}

// plan is Serve's validation; it returns the interfaces to listen on and
// each one's IPv4 addresses.
func (s *Server) plan(lookup Interfaces) ([]string, map[string][]netip.Addr, error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	ifaces, addrs, errs := listenPlan(s.Segments, s.Relays, lookup)
	if err := errs.err(); err != nil {
		return nil, nil, fmt.Errorf("dhcp: %w", err)
	}
	return ifaces, addrs, nil
}
