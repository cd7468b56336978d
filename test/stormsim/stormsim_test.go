package stormsim

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/bpf"
)

var testMAC = net.HardwareAddr{0x02, 0x5f, 0x01, 0x00, 0x00, 0x2a}

// reply is an OFFER as the appliance's kernel would put it on the wire:
// from 10.99.0.1:67 to dst:68, with an IPv4 header of ihl 32-bit words.
func reply(t *testing.T, dst net.IP, ihl int, port uint16) []byte {
	t.Helper()
	req, err := dhcpv4.NewDiscovery(testMAC)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
		dhcpv4.WithYourIP(net.IPv4(10, 99, 64, 7)))
	if err != nil {
		t.Fatal(err)
	}
	payload := offer.ToBytes()
	hl := ihl * 4
	b := make([]byte, ethHeader+hl+udpHeader+len(payload))
	copy(b[0:6], testMAC)
	binary.BigEndian.PutUint16(b[12:14], etherIPv4)
	ip := b[ethHeader:]
	ip[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(ip[2:4], uint16(hl+udpHeader+len(payload)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], net.IPv4(10, 99, 0, 1).To4())
	copy(ip[16:20], dst.To4())
	udp := ip[hl:]
	binary.BigEndian.PutUint16(udp[0:2], serverPort)
	binary.BigEndian.PutUint16(udp[2:4], port)
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpHeader+len(payload)))
	copy(udp[udpHeader:], payload)
	return b
}

func TestEncodeFrame(t *testing.T) {
	msg, err := dhcpv4.NewDiscovery(testMAC)
	if err != nil {
		t.Fatal(err)
	}
	b := encodeFrame(testMAC, msg)
	if got := net.HardwareAddr(b[0:6]).String(); got != "ff:ff:ff:ff:ff:ff" {
		t.Errorf("destination MAC %s, want broadcast", got)
	}
	if got := net.HardwareAddr(b[6:12]); got.String() != testMAC.String() {
		t.Errorf("source MAC %s, want the machine's", got)
	}
	ip := b[ethHeader : ethHeader+ipHeader]
	if checksum(ip) != 0 {
		t.Errorf("IPv4 header checksum does not verify: %x", ip)
	}
	if src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])); src.String() != "0.0.0.0" || dst.String() != "255.255.255.255" {
		t.Errorf("%s -> %s, want 0.0.0.0 -> 255.255.255.255", src, dst)
	}
	udp := b[ethHeader+ipHeader:]
	if sp, dp := binary.BigEndian.Uint16(udp[0:2]), binary.BigEndian.Uint16(udp[2:4]); sp != 68 || dp != 67 {
		t.Errorf("ports %d -> %d, want 68 -> 67", sp, dp)
	}
	got, err := dhcpv4.FromBytes(udp[udpHeader:])
	if err != nil || got.TransactionID != msg.TransactionID || got.MessageType() != dhcpv4.MessageTypeDiscover {
		t.Fatalf("payload: %v %v", got, err)
	}
}

// The filter passes exactly what decodeFrame accepts among the frames a
// machine's interface sees: DHCP replies (any IPv4 header length), not
// the TFTP and HTTP traffic beside them.
func TestReplyFilterAndDecode(t *testing.T) {
	prog, err := replyFilter()
	if err != nil {
		t.Fatal(err)
	}
	insns := make([]bpf.Instruction, len(prog))
	for i, r := range prog {
		insns[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatal(err)
	}
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:14], 0x0806)
	tcp := reply(t, net.IPv4(10, 99, 64, 7), 5, 68)
	tcp[ethHeader+9] = 6
	for _, tc := range []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"reply to the broadcast address", reply(t, net.IPv4bcast, 5, 68), true},
		{"reply to the leased address", reply(t, net.IPv4(10, 99, 64, 7), 5, 68), true},
		{"reply with IPv4 options", reply(t, net.IPv4bcast, 6, 68), true},
		{"UDP to another port (TFTP)", reply(t, net.IPv4(10, 99, 64, 7), 5, 51000), false},
		{"TCP", tcp, false},
		{"ARP", arp, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := vm.Run(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tc.pass {
				t.Errorf("filter kept %d bytes, want pass=%v", n, tc.pass)
			}
			msg, src, err := decodeFrame(tc.frame)
			if (err == nil) != tc.pass {
				t.Fatalf("decode: %v, want pass=%v", err, tc.pass)
			}
			if tc.pass && (msg.MessageType() != dhcpv4.MessageTypeOffer || src.String() != "10.99.0.1" || !msg.YourIPAddr.Equal(net.IPv4(10, 99, 64, 7))) {
				t.Errorf("decoded %s from %s yiaddr %s", msg.MessageType(), src, msg.YourIPAddr)
			}
		})
	}
}

// decodeFrame never panics on what arrives on the wire.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(encodeFrame(testMAC, &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootReply}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeFrame(b)
	})
}

func TestInventory(t *testing.T) {
	inv := Inventory(testMAC, 42)
	raw, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 8<<10 || len(raw) > 64<<10 {
		t.Errorf("inventory is %d bytes; a server's is 8-64 KiB", len(raw))
	}
	if inv.NICs[0].MAC != testMAC.String() || inv.System.Serial != Serial(42) {
		t.Errorf("boot NIC %s serial %s", inv.NICs[0].MAC, inv.System.Serial)
	}
	seen := map[string]bool{}
	for _, d := range inv.Disks {
		if seen[d.ByPath] || !d.Fixed() {
			t.Errorf("disk %s: by-path repeated or not fixed", d.Name)
		}
		seen[d.ByPath] = true
	}
	other := Inventory(MACs(1, 2)[1], 43)
	if other.Disks[0].Serial == inv.Disks[0].Serial || other.NICs[1].MAC == inv.NICs[1].MAC {
		t.Error("two machines share disk serials or NIC MACs")
	}
}

func TestMACs(t *testing.T) {
	macs := MACs(7, 70000)
	seen := map[string]bool{}
	for _, m := range macs {
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("%s is not a locally administered unicast MAC", m)
		}
		short := m.String()[9:]
		if seen[short] {
			t.Fatalf("%s repeats the last three bytes of another", m)
		}
		seen[short] = true
	}
}

func TestPercentile(t *testing.T) {
	start := time.Now()
	var rep Report
	for i := 1; i <= 100; i++ {
		rep.Results = append(rep.Results, Result{Registered: true, Start: start, End: start.Add(time.Duration(i) * time.Millisecond)})
	}
	rep.Results = append(rep.Results, Result{Registered: false, Start: start, End: start.Add(time.Hour)})
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 51 * time.Millisecond}, {99, 100 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := rep.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if f := rep.Failed(); len(f) != 1 {
		t.Errorf("%d failed, want 1", len(f))
	}
}
