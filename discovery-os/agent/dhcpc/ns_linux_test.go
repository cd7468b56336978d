package dhcpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/discovery-os/agent/dhcpc"
	"github.com/foundry-appliance/foundry/test/nstest"
)

// The lab: this test's network namespace (from nstest) holds the client's
// end of a veth pair, dhcpc0; the other end, dhcps0 with 10.99.0.1/24, is
// in a second namespace where a small DHCP server (insomniacslk's server4)
// answers with a 4-second lease. Two server sockets tell how a request
// arrived: one bound to 10.99.0.1 gets only unicast, one bound to
// 255.255.255.255 only broadcast.
const (
	clientIf  = "dhcpc0"
	serverIf  = "dhcps0"
	leaseTime = 4 * time.Second
)

var serverIP = net.IPv4(10, 99, 0, 1).To4()

// seen is one request the server received.
type seen struct {
	via    string // "unicast" or "broadcast"
	typ    dhcpv4.MessageType
	ciaddr string
}

type lab struct {
	t    *testing.T
	send *net.UDPConn // the unicast socket, which also sends every reply

	mu sync.Mutex
	// What the server does; set by reset.
	answerUnicast, answerBroadcast bool // to requests with ciaddr set
	noMask                         bool
	addrs                          []string // handed out by successive DISCOVERs
	seen                           []seen
}

// inNamespace runs fn on a locked OS thread that has entered the network
// namespace ns (or a new one, when ns is nil) and returns the namespace.
// The thread is never unlocked, so the runtime retires it afterwards
// instead of handing a thread in the wrong namespace to other goroutines.
func inNamespace(ns *os.File, fn func() error) (*os.File, error) {
	type result struct {
		ns  *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var err error
		if ns == nil {
			err = unix.Unshare(unix.CLONE_NEWNET)
		} else {
			err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
		}
		if err != nil {
			ch <- result{nil, fmt.Errorf("enter namespace: %w", err)}
			return
		}
		cur, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			ch <- result{nil, err}
			return
		}
		ch <- result{cur, fn()}
	}()
	r := <-ch
	return r.ns, r.err
}

func newLab(t *testing.T) *lab {
	l := &lab{t: t}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: clientIf}, PeerName: serverIf}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("create veth pair: %v", err)
	}
	peer, err := netlink.LinkByName(serverIf)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := inNamespace(nil, func() error { return nil })
	if err != nil {
		t.Fatalf("server namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	if err := netlink.LinkSetNsFd(peer, int(ns.Fd())); err != nil {
		t.Fatalf("move %s: %v", serverIf, err)
	}
	var servers []*server4.Server
	_, err = inNamespace(ns, func() error {
		link, err := netlink.LinkByName(serverIf)
		if err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: serverIP, Mask: net.CIDRMask(24, 32)}}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return err
		}
		for _, s := range []struct {
			via string
			ip  net.IP
		}{{"unicast", serverIP}, {"broadcast", net.IPv4bcast}} {
			conn, err := server4.NewIPv4UDPConn(serverIf, &net.UDPAddr{IP: s.ip, Port: dhcpv4.ServerPort})
			if err != nil {
				return fmt.Errorf("listen %s: %w", s.ip, err)
			}
			if s.via == "unicast" {
				l.send = conn
			}
			srv, err := server4.NewServer("", nil, l.handler(s.via), server4.WithConn(conn))
			if err != nil {
				return err
			}
			servers = append(servers, srv)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() { s.Serve() })
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
		wg.Wait()
	})
	return l
}

func (l *lab) reset(answerUnicast, answerBroadcast, noMask bool, addrs ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answerUnicast, l.answerBroadcast, l.noMask, l.addrs, l.seen = answerUnicast, answerBroadcast, noMask, addrs, nil
	link, err := netlink.LinkByName(clientIf)
	if err != nil {
		l.t.Fatal(err)
	}
	as, _ := netlink.AddrList(link, netlink.FAMILY_V4)
	for _, a := range as {
		netlink.AddrDel(link, &a)
	}
}

// summary says what the server saw, for the log.
func (l *lab) summary() string {
	return fmt.Sprintf("DISCOVER %d, leases taken %d, renewals (unicast) %d, rebindings (broadcast) %d",
		l.count("broadcast", dhcpv4.MessageTypeDiscover, false), l.acquisitions(),
		l.count("unicast", dhcpv4.MessageTypeRequest, true), l.count("broadcast", dhcpv4.MessageTypeRequest, true))
}

// acquisitions counts the leases the client took: its SELECTING requests
// (broadcast, no ciaddr), one per DISCOVER–OFFER–REQUEST exchange however
// many DISCOVERs it retransmitted.
func (l *lab) acquisitions() int {
	return l.count("broadcast", dhcpv4.MessageTypeRequest, false)
}

// count returns how many requests of type typ arrived via via, with
// ciaddr set (withCiaddr) or not.
func (l *lab) count(via string, typ dhcpv4.MessageType, withCiaddr bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		if s.via == via && s.typ == typ && (s.ciaddr != "0.0.0.0") == withCiaddr {
			n++
		}
	}
	return n
}

func (l *lab) handler(via string) server4.Handler {
	return func(_ net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.seen = append(l.seen, seen{via: via, typ: m.MessageType(), ciaddr: m.ClientIPAddr.String()})
		var typ dhcpv4.MessageType
		var yiaddr net.IP
		switch {
		case m.MessageType() == dhcpv4.MessageTypeDiscover && len(l.addrs) > 0:
			typ, yiaddr = dhcpv4.MessageTypeOffer, net.ParseIP(l.addrs[0])
		case m.MessageType() == dhcpv4.MessageTypeRequest && m.ClientIPAddr.IsUnspecified() && len(l.addrs) > 0:
			// SELECTING: the client takes the offer.
			typ, yiaddr = dhcpv4.MessageTypeAck, m.RequestedIPAddress()
			l.addrs = l.addrs[1:]
		case m.MessageType() == dhcpv4.MessageTypeRequest && (via == "unicast" && l.answerUnicast || via == "broadcast" && l.answerBroadcast):
			typ, yiaddr = dhcpv4.MessageTypeAck, m.ClientIPAddr
		default:
			return
		}
		mods := []dhcpv4.Modifier{dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(yiaddr),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithOption(dhcpv4.OptRouter(serverIP)),
			dhcpv4.WithLeaseTime(uint32(leaseTime / time.Second))}
		if !l.noMask {
			mods = append(mods, dhcpv4.WithNetmask(net.CIDRMask(24, 32)))
		}
		reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
		if err != nil {
			l.t.Errorf("build reply: %v", err)
			return
		}
		// RFC 2131 §4.1: a client with an address gets a unicast answer.
		dest := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
		if !m.ClientIPAddr.IsUnspecified() {
			dest.IP = m.ClientIPAddr
		}
		if _, err := l.send.WriteTo(reply.ToBytes(), dest); err != nil {
			l.t.Errorf("reply to %s: %v", dest, err)
		}
	}
}

// addrs lists the client interface's IPv4 addresses.
func clientAddrs(t *testing.T) []netip.Prefix {
	t.Helper()
	link, err := netlink.LinkByName(clientIf)
	if err != nil {
		t.Fatal(err)
	}
	as, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out
}

// keeper runs a Client's Keep in the background; stop ends it and checks
// that it returned because its context ended.
type keeper struct {
	c       *dhcpc.Client
	mu      sync.Mutex
	changes []netip.Prefix
	cancel  context.CancelFunc
	done    chan error
}

func startClient(t *testing.T) *keeper {
	t.Helper()
	k := &keeper{done: make(chan error, 1)}
	k.c = &dhcpc.Client{Interface: clientIf, Timeout: 500 * time.Millisecond, Retries: 2, MinRetry: 300 * time.Millisecond,
		OnChange: func(p netip.Prefix) { k.mu.Lock(); k.changes = append(k.changes, p); k.mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	t.Cleanup(cancel)
	if _, err := k.c.Acquire(ctx, 10*time.Second); err != nil {
		t.Fatalf("acquire: %v", err)
	}
	go func() { k.done <- k.c.Keep(ctx) }()
	return k
}

func (k *keeper) stop(t *testing.T) {
	t.Helper()
	k.cancel()
	select {
	case err := <-k.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Keep ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Keep did not stop when its context ended")
	}
}

func (k *keeper) changed() []netip.Prefix {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.changes)
}

// holds checks, every 100 ms for d, that the client has exactly want.
func holds(t *testing.T, d time.Duration, want netip.Prefix) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got := clientAddrs(t); !slices.Equal(got, []netip.Prefix{want}) {
			t.Fatalf("the interface has %v, want only %v", got, want)
		}
	}
}

func TestLeaseInNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("waits through several 4 s leases (about 22 s)")
	}
	if nstest.Reexec(t) {
		return
	}
	l := newLab(t)
	a50 := netip.MustParsePrefix("10.99.0.50/24")

	t.Run("renewed with the server at T1, unicast", func(t *testing.T) {
		l.reset(true, true, false, "10.99.0.50")
		k := startClient(t)
		holds(t, 7*time.Second, a50) // almost two lease times
		k.stop(t)
		t.Log("server saw:", l.summary())
		// T1 is 2 s: renewals near 2, 4 and 6 s.
		if n := l.count("unicast", dhcpv4.MessageTypeRequest, true); n < 3 {
			t.Errorf("%d unicast renewals in 7 s of a 4 s lease", n)
		}
		if n := l.count("broadcast", dhcpv4.MessageTypeRequest, true); n != 0 {
			t.Errorf("%d rebinding broadcasts although every renewal was answered", n)
		}
		// A DISCOVER retransmitted while acquiring (a slow offer under load) is
		// fine; a second lease taken (a second SELECTING request) is not.
		if n := l.acquisitions(); n != 1 {
			t.Errorf("%d leases taken, want 1", n)
		}
		if got := k.changed(); !slices.Equal(got, []netip.Prefix{a50}) {
			t.Errorf("address changes %v", got)
		}
	})

	t.Run("rebound by broadcast at T2 when the server ignores renewals", func(t *testing.T) {
		l.reset(false, true, false, "10.99.0.50")
		k := startClient(t)
		holds(t, 6*time.Second, a50) // past the first lease's end
		k.stop(t)
		t.Log("server saw:", l.summary())
		if n := l.count("unicast", dhcpv4.MessageTypeRequest, true); n < 1 {
			t.Errorf("no renewal attempt before rebinding")
		}
		if n := l.count("broadcast", dhcpv4.MessageTypeRequest, true); n < 1 {
			t.Errorf("no rebinding broadcast")
		}
		if n := l.acquisitions(); n != 1 {
			t.Errorf("%d leases taken: the lease was lost instead of rebound", n)
		}
	})

	t.Run("expired: the address goes and a new lease comes", func(t *testing.T) {
		l.reset(false, false, false, "10.99.0.50", "10.99.0.51")
		k := startClient(t)
		a51 := netip.MustParsePrefix("10.99.0.51/24")
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(clientAddrs(t), []netip.Prefix{a51}) {
			if time.Now().After(deadline) {
				t.Fatalf("after expiry the interface has %v, want %v", clientAddrs(t), a51)
			}
			time.Sleep(100 * time.Millisecond)
		}
		k.stop(t)
		t.Log("server saw:", l.summary())
		if got := k.changed(); !slices.Equal(got, []netip.Prefix{a50, {}, a51}) {
			t.Errorf("address changes %v, want %v, none, %v", got, a50, a51)
		}
		if n := l.acquisitions(); n != 2 {
			t.Errorf("%d leases taken, want 2", n)
		}
	})

	t.Run("no subnet mask: a /32 with host routes, and renewal still reaches the server", func(t *testing.T) {
		l.reset(true, true, true, "10.99.0.50")
		k := startClient(t)
		a32 := netip.MustParsePrefix("10.99.0.50/32")
		link, err := netlink.LinkByName(clientIf)
		if err != nil {
			t.Fatal(err)
		}
		routes, err := netlink.RouteList(link, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range routes {
			got = append(got, fmt.Sprintf("%v via %v scope %v", r.Dst, r.Gw, r.Scope))
		}
		want := []string{"0.0.0.0/0 via 10.99.0.1 scope universe", "10.99.0.1/32 via <nil> scope link"}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("routes %q, want %q", got, want)
		}
		holds(t, 4500*time.Millisecond, a32)
		k.stop(t)
		t.Log("server saw:", l.summary())
		if n := l.count("unicast", dhcpv4.MessageTypeRequest, true); n < 1 {
			t.Errorf("no unicast renewal reached the server through the host route")
		}
		if n := l.count("broadcast", dhcpv4.MessageTypeRequest, true); n != 0 {
			t.Errorf("%d rebinding broadcasts: renewals did not get through", n)
		}
	})
}
