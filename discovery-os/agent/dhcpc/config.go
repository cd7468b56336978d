package dhcpc

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// config is what the interface gets from a lease.
type config struct {
	// addr is the address with its prefix length.
	addr netip.Prefix
	// routes are installed in order: on-link host routes come before the
	// default route that needs one of them as its gateway.
	routes []route
}

// route is one IPv4 route on the interface.
type route struct {
	// dst is the destination; 0.0.0.0/0 is the default route.
	dst netip.Prefix
	// gw is the next hop; the zero Addr means on-link (scope link).
	gw netip.Addr
}

func (r route) String() string {
	if !r.gw.IsValid() {
		return r.dst.String() + " on-link"
	}
	return r.dst.String() + " via " + r.gw.String()
}

var defaultRoute = netip.PrefixFrom(netip.IPv4Unspecified(), 0)

// plan turns a lease into the interface's address and routes.
//
// When the server sends no subnet mask (option 1), the agent does not guess
// one. The old /24 guess, or a classful one, claims that a whole range of
// addresses is on this link; when it is not, the machine ARPs for hosts
// that are elsewhere (the appliance among them) instead of sending to the
// router, and discovery fails in a way nobody can see from the console.
// Instead the address is configured as a /32, which claims no neighbours,
// and exactly the hosts the lease proves are on the link get on-link host
// routes: the router (option 3), through which the default route then
// goes, and the DHCP server that answered, unless the answer came through
// a relay (giaddr), in which case the server is reached through the router.
// Everything else is sent to the router, which forwards it or redirects.
// A lease with neither a mask nor a router reaches only its server, which
// in dhcp mode is the appliance itself.
//
// A router outside a mask's subnet (a misconfigured server) gets an on-link
// host route too, since the default route is useless without it.
func plan(b binding) (config, error) {
	if !b.addr.Is4() || b.addr.IsUnspecified() || b.addr.IsLoopback() || b.addr.IsMulticast() {
		return config{}, errors.New("the server offered no usable address")
	}
	ones, bits := b.mask.Size()
	// Size is 0, 0 for a missing or non-contiguous mask; a /0 mask is
	// as good as none.
	masked := bits == 32 && ones > 0
	if !masked {
		ones = 32
	}
	c := config{addr: netip.PrefixFrom(b.addr, ones)}
	onLink := func(a netip.Addr) {
		dst := netip.PrefixFrom(a, 32)
		if c.addr.Contains(a) && masked {
			return // the subnet route covers it
		}
		if !slices.ContainsFunc(c.routes, func(r route) bool { return r.dst == dst }) {
			c.routes = append(c.routes, route{dst: dst})
		}
	}
	var router netip.Addr
	for _, r := range b.routers {
		if r.Is4() && !r.IsUnspecified() && r != b.addr {
			router = r
			break
		}
	}
	if router.IsValid() {
		onLink(router)
	}
	if b.server.Is4() && !b.server.IsUnspecified() && b.server != b.addr && !b.relayed {
		onLink(b.server)
	}
	if router.IsValid() {
		c.routes = append(c.routes, route{dst: defaultRoute, gw: router})
	}
	return c, nil
}

// String shows a configuration for logs and test failures.
func (c config) String() string {
	s := fmt.Sprint(c.addr)
	for _, r := range c.routes {
		s += ", " + r.String()
	}
	return s
}
