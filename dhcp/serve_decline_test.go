package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// packetSockets counts the packet sockets bound to interface name in this
// network namespace.
func packetSockets(t *testing.T, name string) int {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/net/packet")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// sk RefCnt Type Proto Iface R Rmem User Inode
		if f := strings.Fields(line); len(f) > 4 && f[4] == strconv.Itoa(ifi.Index) {
			n++
		}
	}
	return n
}

// sendDecline sends a DHCPDECLINE for ip from conn to dst, as a client (or
// a relay, with giaddr) that found ip in use.
func sendDecline(t *testing.T, conn net.PacketConn, dst *net.UDPAddr, mac net.HardwareAddr, ip net.IP, mods ...dhcpv4.Modifier) {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1)))}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteTo(p.ToBytes(), dst); err != nil {
		t.Fatal(err)
	}
}

// waitDeclined waits until the store holds segment's decline record of ip.
func waitDeclined(t *testing.T, db *store.DB, segment string, ip netip.Addr) (store.Lease, bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		leases, err := db.ListLeases(segment)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leases {
			if l.IP == ip && l.Declined {
				return l, true
			}
		}
	}
	leases, _ := db.ListLeases(segment)
	t.Errorf("no declined record of %v in segment %s; stored: %+v", ip, segment, leases)
	return store.Lease{}, false
}

// TestServeDecline runs the real coredhcp server: a client that declines
// its address must not be offered it again, and the DECLINE must be on
// disk. coredhcp alone drops DECLINE (server/handle.go); decline.go's
// packet-socket reader is what makes this pass.
func TestServeDecline(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	nstest.Veth(t, "fdy5", "fdyc5", "10.77.0.1/24")
	nstest.Run(t, "ip", "route", "add", "10.88.0.0/24", "dev", "fdy5")
	nstest.Run(t, "ip", "neigh", "replace", "10.88.0.1", "lladdr", ifaceMAC(t, "fdyc5").String(), "dev", "fdy5", "nud", "permanent")

	// Two addresses per segment: after a decline, one is left.
	lab := labSegment("10.77.0.100", "10.77.0.101")
	lab.Interface, lab.Discovery = "fdy5", true
	// Both addresses may be offered at once: the exhaustion below is the
	// declined address's, not the pending-offer cap's (half the range).
	lab.MaxPendingOffers = 2
	remote := Segment{Name: "remote", Relayed: true, Subnet: netip.MustParsePrefix("10.88.0.0/24"), Discovery: true,
		RangeStart: mustAddr("10.88.0.100"), RangeEnd: mustAddr("10.88.0.101"), Router: mustAddr("10.88.0.1")}
	db := openStore(t, t.TempDir())
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg) // the server shares these counters
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{
		Segments: []Segment{lab, remote}, Leases: db, Machines: db, Registerer: reg,
		Relays: Relays{Interfaces: []string{"fdy5"}}, // the relay sits on the lab's link
		Logger: slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); udpListeners(t, 67) < 2 || packetSockets(t, "fdy5") < 1; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-served:
			t.Fatalf("Serve: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			// Not fatal, so that a run without the reader shows what fails.
			// Two UDP sockets (0.0.0.0 and the relay socket on 10.77.0.1), one reader.
			t.Errorf("%d UDP listeners on 67, %d packet sockets on fdy5; want 2 and 1", udpListeners(t, 67), packetSockets(t, "fdy5"))
			break
		}
	}
	count := func(vec *prometheus.CounterVec, label string) int {
		return int(testutil.ToFloat64(vec.WithLabelValues(label)))
	}

	start := time.Now()
	c := newClient(t, "fdyc5", testMAC, nclient4.WithTimeout(3*time.Second))
	lease, err := c.Request(ctx, pxeBIOS, arch(iana.INTEL_X86PC))
	if err != nil {
		t.Fatal(err)
	}
	declined := fromIP(lease.ACK.YourIPAddr)
	t.Logf("client got %v; declining it", declined)

	bc, err := nclient4.NewRawUDPConn("fdyc5", dhcpv4.ClientPort) // from 0.0.0.0:68
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	sendDecline(t, bc, &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}, testMAC, lease.ACK.YourIPAddr)
	if l, ok := waitDeclined(t, db, "lab", declined); ok {
		if l.MAC != declineKey(declined) || l.Expires.Before(start.Add(time.Hour)) || l.Expires.After(time.Now().Add(time.Hour)) {
			t.Errorf("decline record %+v, want key %s and one lease time (1h) from now", l, declineKey(declined))
		}
	}
	if leases, _ := db.ListLeases("lab"); len(leases) != 1 {
		t.Errorf("stored leases after the decline %+v, want only the decline record", leases)
	}
	if n := count(m.requests, "DECLINE"); n != 1 {
		t.Errorf("requests_total{type=DECLINE} = %d, want 1", n)
	}

	t.Run("the declining client is offered the other address", func(t *testing.T) {
		c := newClient(t, "fdyc5", testMAC, nclient4.WithTimeout(3*time.Second))
		offer, err := c.DiscoverOffer(ctx, pxeBIOS, arch(iana.INTEL_X86PC))
		if err != nil {
			t.Fatal(err)
		}
		if got := fromIP(offer.YourIPAddr); got == declined || !lab.Subnet.Contains(got) {
			t.Errorf("offered %v after declining %v", got, declined)
		}
	})
	t.Run("the next client gets nothing: the declined address stays out", func(t *testing.T) {
		c := newClient(t, "fdyc5", net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xb0}, nclient4.WithRetry(1))
		if offer, err := c.DiscoverOffer(ctx, pxeBIOS, arch(iana.INTEL_X86PC)); !errors.Is(err, nclient4.ErrNoResponse) {
			t.Errorf("got %v, %v; want no offer (range exhausted)", offer, err)
		}
		if n := count(m.drops, dropExhausted); n != 1 {
			t.Errorf("drops_total{reason=exhausted} = %d, want 1", n)
		}
	})
	// Every DISCOVER and REQUEST also passes the reader's socket: none may
	// be handled twice.
	if d, r := count(m.requests, "DISCOVER"), count(m.requests, "REQUEST"); d != 3 || r != 1 {
		t.Errorf("requests_total: %d DISCOVER, %d REQUEST; want 3 and 1 (each handled once)", d, r)
	}

	t.Run("relayed DECLINE finds its segment by giaddr", func(t *testing.T) {
		relay := &net.UDPAddr{IP: net.IPv4(10, 88, 0, 1), Port: dhcpv4.ServerPort}
		server := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: dhcpv4.ServerPort}
		mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xb1}
		c, err := nclient4.NewWithConn(rawConn(t, "fdyc5", relay), mac, nclient4.WithTimeout(3*time.Second),
			nclient4.WithRetry(3), nclient4.WithServerAddr(server))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lease, err := c.Request(ctx, dhcpv4.WithGatewayIP(relay.IP), pxeBIOS, arch(iana.INTEL_X86PC))
		if err != nil {
			t.Fatal(err)
		}
		rc := rawConn(t, "fdyc5", relay)
		defer rc.Close()
		sendDecline(t, rc, server, mac, lease.ACK.YourIPAddr, dhcpv4.WithGatewayIP(relay.IP))
		waitDeclined(t, db, "remote", fromIP(lease.ACK.YourIPAddr))
	})

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if n := packetSockets(t, "fdy5"); n != 0 {
		t.Errorf("%d packet sockets left on fdy5 after Serve returned", n)
	}
}
