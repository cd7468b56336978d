package dhcp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// benchServer is the DHCPThroughput benchmark's configuration (bench/):
// one relayed dhcp-mode /16 with allow_unknown, a real store on disk.
func benchServer(b *testing.B) *listener {
	b.Helper()
	db := openStore(b, b.TempDir())
	srv := &Server{
		Segments: []Segment{{Name: "bench", Relayed: true, Subnet: netip.MustParsePrefix("10.88.0.0/16"),
			RangeStart: mustAddr("10.88.1.0"), RangeEnd: mustAddr("10.88.100.255"), Router: mustAddr("10.88.0.1"),
			AllowUnknown: true}},
		Leases: db, Machines: db, Relays: Relays{Interfaces: []string{"relay0"}}, Registerer: prometheus.NewRegistry(),
	}
	_, ls, err := srv.build([]string{"relay0"}, map[string][]netip.Addr{"relay0": {mustAddr("10.99.0.1")}})
	if err != nil {
		b.Fatal(err)
	}
	return ls[0]
}

// roundTrip passes req through the wire format to l as coredhcp does and
// encodes the reply; it returns the reply's type (0: none).
func roundTrip(l *listener, wire []byte) (*dhcpv4.DHCPv4, error) {
	req, err := dhcpv4.FromBytes(wire)
	if err != nil {
		return nil, err
	}
	resp, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		return nil, err
	}
	out := l.handle(req, resp, relaySrc)
	if out == nil {
		return nil, nil
	}
	_ = out.ToBytes()
	return out, nil
}

// BenchmarkDORA runs DISCOVER then REQUEST (selecting) for b.N distinct
// MACs through the handler from 64 concurrent clients, as perfdhcp does
// through a relay; every ACK waits for its synced lease write.
//
//	go test -run '^$' -bench DORA -cpuprofile cpu.out ./dhcp/
func BenchmarkDORA(b *testing.B) {
	l := benchServer(b)
	giaddr := net.IPv4(10, 88, 0, 1)
	var next atomic.Int64
	const clients = 64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				mac := net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
				if err := doraOnce(l, mac, giaddr); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "DORA/s")
}

func doraOnce(l *listener, mac net.HardwareAddr, giaddr net.IP) error {
	d, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithGatewayIP(giaddr))
	if err != nil {
		return err
	}
	offer, err := roundTrip(l, d.ToBytes())
	if err != nil || offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		return fmt.Errorf("%v: no OFFER: %v %v", mac, offer, err)
	}
	r, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		return err
	}
	r.GatewayIPAddr = giaddr
	ack, err := roundTrip(l, r.ToBytes())
	if err != nil || ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return fmt.Errorf("%v: no ACK: %v %v", mac, ack, err)
	}
	return nil
}
