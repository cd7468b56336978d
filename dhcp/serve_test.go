package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coredhcp/coredhcp/plugins"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
)

// tLogWriter sends the server's log lines to the test log.
type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// udpListeners counts sockets bound to port in this network namespace.
func udpListeners(t *testing.T, port int) int {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], want) {
			n++
		}
	}
	return n
}

func ifaceMAC(t *testing.T, name string) net.HardwareAddr {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ifi.HardwareAddr
}

// rawConn is a raw-socket UDP endpoint on iface that sends from src, as a
// relay agent or a client that already has an address does.
func rawConn(t *testing.T, iface string, src *net.UDPAddr) net.PacketConn {
	c, err := nclient4.NewRawUDPConn(iface, src.Port)
	if err != nil {
		t.Fatal(err)
	}
	return nclient4.NewBroadcastUDPConn(c.(*nclient4.BroadcastRawUDPConn).PacketConn, src)
}

// broadcastOnly reads only packets sent to 255.255.255.255:68 and sends
// from 0.0.0.0:68, as a client without an address that cannot accept a
// unicast to the 0.0.0.0 it does not have.
func broadcastOnly(t *testing.T, iface string) net.PacketConn {
	c, err := nclient4.NewRawUDPConn(iface, 68)
	if err != nil {
		t.Fatal(err)
	}
	raw := c.(*nclient4.BroadcastRawUDPConn).PacketConn
	return splitConn{
		PacketConn: nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{IP: net.IPv4bcast, Port: 68}),
		w:          nclient4.NewBroadcastUDPConn(raw, &net.UDPAddr{IP: net.IPv4zero, Port: 68}),
	}
}

type splitConn struct {
	net.PacketConn
	w net.PacketConn
}

func (c splitConn) WriteTo(b []byte, a net.Addr) (int, error) { return c.w.WriteTo(b, a) }

func newClient(t *testing.T, iface string, mac net.HardwareAddr, opts ...nclient4.ClientOpt) *nclient4.Client {
	t.Helper()
	c, err := nclient4.New(iface, append([]nclient4.ClientOpt{nclient4.WithHWAddr(mac),
		nclient4.WithTimeout(time.Second), nclient4.WithRetry(3)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServe(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	nstest.Veth(t, "fdy0", "fdyc0", "10.77.0.1/24") // lab: dhcp, discovery
	nstest.Veth(t, "fdy1", "fdyc1", "10.78.0.1/24") // prod: dhcp, no discovery
	nstest.Veth(t, "fdy2", "fdyc2", "10.79.0.1/24") // px: proxy
	nstest.Veth(t, "fdy3", "fdyc3", "10.80.0.1/24") // not in the configuration
	// Replies to the relay (10.88.0.1) and to a proxy client (10.79.0.50)
	// leave through the veths towards the raw sockets on the client ends.
	nstest.Run(t, "ip", "route", "add", "10.88.0.0/24", "dev", "fdy0")
	nstest.Run(t, "ip", "neigh", "replace", "10.88.0.1", "lladdr", ifaceMAC(t, "fdyc0").String(), "dev", "fdy0", "nud", "permanent")
	nstest.Run(t, "ip", "neigh", "replace", "10.79.0.50", "lladdr", ifaceMAC(t, "fdyc2").String(), "dev", "fdy2", "nud", "permanent")

	segs := testSegments()
	segs[0].Interface, segs[1].Interface, segs[2].Interface = "fdy0", "fdy1", "fdy2"
	db := openStore(t, t.TempDir())
	srv := &Server{
		Segments: segs, Leases: db, Machines: db,
		// The relay of "relayed request answered to the relay" sits on
		// the lab's link: fdy0 is listed, so relays may send there.
		Relays:    Relays{Interfaces: []string{"fdy0"}},
		ScriptURL: testEnv.ScriptURL, HTTPBase: testEnv.HTTPBase,
		Logger: slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); udpListeners(t, 67) < 4 || udpListeners(t, pxePort) < 1; {
		select {
		case err := <-served:
			t.Fatalf("Serve: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners: %d on 67, %d on 4011", udpListeners(t, 67), udpListeners(t, pxePort))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := udpListeners(t, 67); n != 4 {
		t.Errorf("%d listeners on port 67, want 4 (one per configured interface, and fdy0's relay socket on 10.77.0.1)", n)
	}
	registryMu.Lock()
	for name := range plugins.RegisteredPlugins {
		if strings.HasPrefix(name, "foundry-") {
			t.Errorf("plugin %s left in coredhcp's registry", name)
		}
	}
	registryMu.Unlock()

	var first netip.Addr
	t.Run("DORA with raw-frame reply", func(t *testing.T) {
		c := newClient(t, "fdyc0", testMAC)
		lease, err := c.Request(ctx, pxeBIOS, arch(iana.INTEL_X86PC))
		if err != nil {
			t.Fatal(err)
		}
		ack := lease.ACK
		first = fromIP(ack.YourIPAddr)
		if !netip.MustParsePrefix("10.77.0.0/24").Contains(first) || ack.BootFileName != "undionly.kpxe" ||
			ack.IPAddressLeaseTime(0) != time.Hour || !ack.ServerIdentifier().Equal(net.IPv4(10, 77, 0, 1)) ||
			net.IP(ack.SubnetMask()).String() != "255.255.255.0" || ack.DomainName() != "lab.example" {
			t.Errorf("ACK:\n%s", ack.Summary())
		}
		if m, err := db.GetMachine(testMAC.String()); err != nil || m.State != store.StateDiscovered {
			t.Errorf("discovered record: %+v %v", m, err)
		}
	})
	t.Run("second DORA with broadcast flag gets the same address", func(t *testing.T) {
		c := newClient(t, "fdyc0", testMAC)
		lease, err := c.Request(ctx, dhcpv4.WithBroadcast(true), ipxePlain)
		if err != nil {
			t.Fatal(err)
		}
		if got := fromIP(lease.ACK.YourIPAddr); got != first {
			t.Errorf("second lease %v, first %v", got, first)
		}
		if lease.ACK.BootFileNameOption() != testEnv.ScriptURL(testMAC) {
			t.Errorf("iPXE boot file %q", lease.ACK.BootFileNameOption())
		}
		leases, _ := db.ListLeases("lab")
		if len(leases) != 1 || leases[0].IP != first {
			t.Errorf("stored leases %+v", leases)
		}
	})
	t.Run("relayed request answered to the relay", func(t *testing.T) {
		relay := &net.UDPAddr{IP: net.IPv4(10, 88, 0, 1), Port: 67}
		c, err := nclient4.NewWithConn(rawConn(t, "fdyc0", relay), testMAC, nclient4.WithTimeout(time.Second), nclient4.WithRetry(3),
			nclient4.WithServerAddr(&net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 67}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The raw socket only returns packets sent to 10.88.0.1:67, so an
		// answer proves the reply went to the relay.
		lease, err := c.Request(ctx, dhcpv4.WithGatewayIP(relay.IP), dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(
			dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("sw1/7")))))
		if err != nil {
			t.Fatal(err)
		}
		ack := lease.ACK
		if !netip.MustParsePrefix("10.88.0.0/24").Contains(fromIP(ack.YourIPAddr)) || !ack.GatewayIPAddr.Equal(relay.IP) ||
			ack.RelayAgentInfo() == nil || len(ack.Router()) != 1 || !ack.Router()[0].Equal(net.IPv4(10, 88, 0, 1)) {
			t.Errorf("relayed ACK:\n%s", ack.Summary())
		}
	})
	t.Run("proxy offer to a client without address is broadcast", func(t *testing.T) {
		c, err := nclient4.NewWithConn(broadcastOnly(t, "fdyc2"), testMAC, nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		offer, err := c.DiscoverOffer(ctx, pxeUEFI, arch(iana.EFI_X86_64))
		if err != nil {
			t.Fatal(err)
		}
		if !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "ipxe.efi" || offer.ClassIdentifier() != "PXEClient" {
			t.Errorf("proxy OFFER:\n%s", offer.Summary())
		}
		// The PXE REQUEST to port 4011 from the address another server gave.
		me := &net.UDPAddr{IP: net.IPv4(10, 79, 0, 50), Port: 68}
		pc, err := nclient4.NewWithConn(rawConn(t, "fdyc2", me), testMAC, nclient4.WithTimeout(time.Second), nclient4.WithRetry(3))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		req, _ := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithClientIP(me.IP), pxeUEFI, arch(iana.EFI_X86_64), ipxePlain)
		ack, err := pc.SendAndRead(ctx, &net.UDPAddr{IP: net.IPv4(10, 79, 0, 1), Port: pxePort}, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
		if err != nil {
			t.Fatal(err)
		}
		if ack.BootFileNameOption() != testEnv.ScriptURL(testMAC) {
			t.Errorf("port 4011 ACK:\n%s", ack.Summary())
		}
	})
	t.Run("no offer for an unknown MAC on a non-discovery segment", func(t *testing.T) {
		c := newClient(t, "fdyc1", net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}, nclient4.WithRetry(1))
		if offer, err := c.DiscoverOffer(ctx, pxeBIOS, arch(0)); !errors.Is(err, nclient4.ErrNoResponse) {
			t.Errorf("got %v, %v; want no response", offer, err)
		}
		if _, err := db.GetMachine("52:54:00:aa:bb:cc"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record created: %v", err)
		}
	})
	t.Run("silent on an interface the configuration does not name", func(t *testing.T) {
		c := newClient(t, "fdyc3", net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcd}, nclient4.WithRetry(1))
		if offer, err := c.DiscoverOffer(ctx, pxeBIOS, arch(0)); !errors.Is(err, nclient4.ErrNoResponse) {
			t.Errorf("got %v, %v; want no response", offer, err)
		}
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
	for _, port := range []int{67, pxePort} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			t.Fatalf("port %d still taken after Serve returned: %v", port, err)
		}
		c.Close()
	}
}

func TestServeBadConfiguration(t *testing.T) {
	db := openStore(t, t.TempDir())
	seg := labSegment("10.77.0.100", "10.77.0.199")
	tests := []struct {
		name string
		srv  Server
		want string
	}{
		{"no segments", Server{Leases: db, Machines: db}, "no segments"},
		{"missing interface", Server{Segments: []Segment{seg}, Leases: db, Machines: db}, "veth0"},
		{"no machine store", Server{Segments: []Segment{seg}, Leases: db}, "machine store"},
		{"range outside subnet", Server{Segments: []Segment{labSegment("10.77.0.100", "10.77.1.10")}, Leases: db, Machines: db}, "range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := tt.srv.Serve(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Serve = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
