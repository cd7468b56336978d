package dhcp

import (
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

func TestHandlerHostilePackets(t *testing.T) {
	f := newFixture(t, nil)
	l := f.byIf["veth0"]
	tests := []struct {
		name string
		p    func() *dhcpv4.DHCPv4
	}{
		{"reply opcode", func() *dhcpv4.DHCPv4 {
			p := pkt(t, dhcpv4.MessageTypeDiscover, testMAC)
			p.OpCode = dhcpv4.OpcodeBootReply
			return p
		}},
		{"token ring", func() *dhcpv4.DHCPv4 {
			return pkt(t, dhcpv4.MessageTypeDiscover, testMAC, dhcpv4.WithHWType(iana.HWTypeProteonTokenRing))
		}},
		{"short chaddr", func() *dhcpv4.DHCPv4 { return pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{1, 2, 3}) }},
		{"zero MAC", func() *dhcpv4.DHCPv4 { return pkt(t, dhcpv4.MessageTypeDiscover, make(net.HardwareAddr, 6)) }},
		{"broadcast MAC", func() *dhcpv4.DHCPv4 {
			return pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		}},
		{"decline key MAC", func() *dhcpv4.DHCPv4 {
			return pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{3, 0, 10, 77, 0, 100})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := drops(f, dropMalformed)
			if r := f.send(t, l, tt.p()); r != nil {
				t.Fatalf("reply to a malformed packet")
			}
			if drops(f, dropMalformed) != before+1 {
				t.Errorf("not counted as malformed")
			}
		})
	}
	// A huge or odd host name is not stored, but the client is served.
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 7}
	offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, mac))
	ack := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, mac,
		dhcpv4.WithOption(dhcpv4.OptHostName(strings.Repeat("x;", 127))), dhcpv4.WithClientIP(offer.YourIPAddr)))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK for a client with a bad host name")
	}
	leases, _ := f.db.ListLeases("lab")
	if len(leases) != 1 || leases[0].Hostname != "" {
		t.Errorf("leases %+v", leases)
	}
}

func TestHandlerNoAckWhenStoreFails(t *testing.T) {
	var fl *failingLeases
	f := newFixture(t, func(s *Server) {
		fl = &failingLeases{LeaseStore: s.Leases}
		s.Leases = fl
	})
	l := f.byIf["veth0"]
	offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, testMAC))
	if offer == nil {
		t.Fatal("no offer")
	}
	fl.fail = true
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, testMAC,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))); r != nil {
		t.Fatalf("ACK without a durable lease:\n%s", r.Summary())
	}
	if drops(f, dropStoreError) != 1 {
		t.Errorf("store error not counted")
	}
}

func TestHandlerBootFileTooLongForFileField(t *testing.T) {
	long := "http://foundry.example:8080/" + strings.Repeat("a", 150) + "/boot/"
	f := newFixture(t, func(s *Server) {
		s.ScriptURL = func(mac net.HardwareAddr) string { return long + mac.String() }
	})
	offer := f.send(t, f.byIf["veth0"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, ipxePlain))
	if offer == nil || offer.BootFileName != "" || offer.BootFileNameOption() != long+testMAC.String() {
		t.Fatalf("long URL: file %q, option 67 %q", offer.BootFileName, offer.BootFileNameOption())
	}
}
