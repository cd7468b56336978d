package dhcpc

import (
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// forever stands for a lease that never expires (option 51 absent, or
// 0xffffffff seconds): about 136 years, far enough that no timer fires.
const forever = time.Duration(1<<32-1) * time.Second

// lease is a bound lease: the server's ACK and when it was received.
type lease struct {
	ack      *dhcpv4.DHCPv4
	acquired time.Time
}

// times are RFC 2131's lease timers as points in time.
type times struct {
	// renew is T1: from here the client asks its server, unicast.
	renew time.Time
	// rebind is T2: from here the client asks any server, broadcast.
	rebind time.Time
	// expire is the end of the lease: the address must go.
	expire time.Time
}

// leaseTimes computes T1, T2 and the expiry of a lease received at
// acquired. The server's options 58 and 59 are used when they are
// consistent (0 < T1 < T2 < lease); otherwise RFC 2131 §4.4.5's defaults,
// half and seven eighths of the lease.
func leaseTimes(ack *dhcpv4.DHCPv4, acquired time.Time) times {
	d := ack.IPAddressLeaseTime(forever)
	if d <= 0 || d >= forever {
		d = forever
	}
	t1 := ack.IPAddressRenewalTime(0)
	if t1 <= 0 || t1 >= d {
		t1 = d / 2
	}
	t2 := ack.IPAddressRebindingTime(0)
	if t2 <= t1 || t2 >= d {
		t2 = d - d/8 // 7/8 of d; d*7 overflows for a lease of forever
	}
	if t2 <= t1 { // a server's T1 beyond 7/8 of the lease
		t2 = t1 + (d-t1)/2
	}
	return times{renew: acquired.Add(t1), rebind: acquired.Add(t2), expire: acquired.Add(d)}
}

// retryWait is how long to wait after a failed renewal or rebinding
// before the next attempt, at now, when the phase ends at deadline:
// RFC 2131 §4.4.5 halves the time left, down to a floor (60 s in the
// RFC), but never waits past the deadline, where the next phase starts.
func retryWait(now, deadline time.Time, floor time.Duration) time.Duration {
	left := deadline.Sub(now)
	if left <= 0 {
		return 0
	}
	return min(max(left/2, floor), left)
}

// binding is what a lease says about the network, as plan reads it.
type binding struct {
	// addr is the address leased (yiaddr).
	addr netip.Addr
	// mask is option 1; nil when the server sent none.
	mask net.IPMask
	// routers is option 3, in the server's order of preference.
	routers []netip.Addr
	// server is the server identifier (option 54).
	server netip.Addr
	// relayed: the answer came through a relay agent (giaddr set), so
	// the server is not on this link.
	relayed bool
}

// bindingOf reads the parts of an ACK that plan needs.
func bindingOf(ack *dhcpv4.DHCPv4) binding {
	b := binding{mask: ack.SubnetMask(), relayed: !ipUnset(ack.GatewayIPAddr)}
	b.addr, _ = netip.AddrFromSlice(ack.YourIPAddr.To4())
	b.server, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	for _, r := range ack.Router() {
		if a, ok := netip.AddrFromSlice(r.To4()); ok {
			b.routers = append(b.routers, a)
		}
	}
	return b
}

func ipUnset(ip net.IP) bool {
	return ip == nil || ip.IsUnspecified()
}
