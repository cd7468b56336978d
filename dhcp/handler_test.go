package dhcp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixture is a Server built without sockets: its listeners' handlers are
// called directly with packets built by insomniacslk/dhcp.
type fixture struct {
	db   *store.DB
	clk  *clock
	reg  *prometheus.Registry
	srv  *Server
	in   *instance
	byIf map[string]*listener // port-67 listeners (0.0.0.0) by interface
	pxe  map[string]*listener // port-4011 listeners by interface
	// bound are the port-67 listeners on an address of a direct
	// segment's interface that is also a relay interface.
	bound map[string]*listener
}

// relaySrc is the relay agent the fixture allows (dhcp.relay_sources).
var relaySrc = mustAddr("10.99.0.2")

// testSegments: lab (dhcp, discovery), prod (dhcp, no discovery), px
// (proxy, discovery) and remote (relayed dhcp, discovery).
func testSegments() []Segment {
	lab := labSegment("10.77.0.100", "10.77.0.199")
	lab.Discovery, lab.DNS, lab.DomainName = true, []netip.Addr{srvIP}, "lab.example"
	return []Segment{
		lab,
		{Name: "prod", Interface: "veth1", Subnet: netip.MustParsePrefix("10.78.0.0/24"),
			RangeStart: mustAddr("10.78.0.100"), RangeEnd: mustAddr("10.78.0.199")},
		{Name: "px", Interface: "veth2", Subnet: netip.MustParsePrefix("10.79.0.0/24"), Mode: ModeProxy, Discovery: true},
		{Name: "remote", Relayed: true, Subnet: netip.MustParsePrefix("10.88.0.0/24"), Discovery: true,
			RangeStart: mustAddr("10.88.0.100"), RangeEnd: mustAddr("10.88.0.199"), Router: mustAddr("10.88.0.1")},
	}
}

func newFixture(t testing.TB, edit func(*Server)) *fixture {
	t.Helper()
	f := &fixture{db: openStore(t, t.TempDir()), clk: newClock(), reg: prometheus.NewRegistry(),
		byIf: map[string]*listener{}, pxe: map[string]*listener{}}
	f.srv = &Server{
		Segments: testSegments(), Leases: f.db, Machines: f.db,
		ScriptURL: testEnv.ScriptURL, HTTPBase: testEnv.HTTPBase, HaveFile: testEnv.HaveFile,
		Relays:     Relays{Interfaces: []string{"relay0"}, Sources: []netip.Prefix{netip.PrefixFrom(relaySrc, 32)}},
		Registerer: f.reg, Now: f.clk.now,
	}
	if edit != nil {
		edit(f.srv)
	}
	addrs := map[string][]netip.Addr{"veth0": {srvIP}, "veth1": {mustAddr("10.78.0.1")},
		"veth2": {mustAddr("10.79.0.1")}, "relay0": {mustAddr("10.99.0.1")}}
	in, ls, err := f.srv.build([]string{"veth0", "veth1", "veth2", "relay0"}, addrs)
	if err != nil {
		t.Fatal(err)
	}
	f.in = in
	f.bound = map[string]*listener{}
	for _, l := range ls {
		if l.bind.IsValid() {
			f.bound[l.iface] = l
			continue
		}
		if l.port == pxePort {
			f.pxe[l.iface] = l
		} else {
			f.byIf[l.iface] = l
		}
	}
	return f
}

// send passes req through the wire format to l, as coredhcp would, and
// returns the reply after the same round trip (nil: no reply). On a
// listener of our own, whose socket tells the source, the packet comes
// from relaySrc.
func (f *fixture) send(t *testing.T, l *listener, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	var src netip.Addr
	if l.own {
		src = relaySrc
	}
	return f.sendFrom(t, l, src, req)
}

// onTheWire is req as the server reads it off the wire, and the reply
// coredhcp would hand the handler to fill in.
func onTheWire(t *testing.T, req *dhcpv4.DHCPv4) (wire, resp *dhcpv4.DHCPv4) {
	t.Helper()
	wire, err := dhcpv4.FromBytes(req.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	resp, err = dhcpv4.NewReplyFromRequest(wire)
	if err != nil {
		t.Fatal(err)
	}
	return wire, resp
}

// sendFrom is send from the UDP source src (zero: unknown, as coredhcp's
// listeners see every packet).
func (f *fixture) sendFrom(t *testing.T, l *listener, src netip.Addr, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	wire, resp := onTheWire(t, req)
	out := l.handle(wire, resp, src)
	if out == nil {
		return nil
	}
	back, err := dhcpv4.FromBytes(out.ToBytes())
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	// Keep what coredhcp routes by, which lives in the request.
	if wire.IsBroadcast() {
		req.SetBroadcast()
	}
	return back
}

func pkt(t *testing.T, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func drops(f *fixture, reason string) float64 {
	return testutil.ToFloat64(f.in.m.drops.WithLabelValues(reason))
}

func TestHandlerDiscoveryDORA(t *testing.T) {
	f := newFixture(t, nil)
	l := f.byIf["veth0"]
	pxe := []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})}
	offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxe...))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("no OFFER: %v", offer)
	}
	yi := fromIP(offer.YourIPAddr)
	checks := []struct {
		what string
		ok   bool
	}{
		{"yiaddr in range", yi.Compare(mustAddr("10.77.0.100")) >= 0 && yi.Compare(mustAddr("10.77.0.199")) <= 0},
		{"option 1", net.IP(offer.SubnetMask()).String() == "255.255.255.0"},
		{"option 3", len(offer.Router()) == 1 && offer.Router()[0].Equal(net.IPv4(10, 77, 0, 1))},
		{"option 6", len(offer.DNS()) == 1 && offer.DNS()[0].Equal(net.IPv4(10, 77, 0, 1))},
		{"option 15", offer.DomainName() == "lab.example"},
		{"option 51", offer.IPAddressLeaseTime(0) == time.Hour},
		{"option 58", offer.IPAddressRenewalTime(0) == 30*time.Minute},
		{"option 59", offer.IPAddressRebindingTime(0) == 52*time.Minute+30*time.Second},
		{"option 54", offer.ServerIdentifier().Equal(net.IPv4(10, 77, 0, 1))},
		{"siaddr", offer.ServerIPAddr.Equal(net.IPv4(10, 77, 0, 1))},
		{"file field", offer.BootFileName == "undionly.kpxe"},
		{"option 67", offer.BootFileNameOption() == "undionly.kpxe"},
		{"option 60", offer.ClassIdentifier() == "PXEClient"},
		{"option 43", bytes.Equal(offer.Options.Get(dhcpv4.OptionVendorSpecificInformation), pxeDiscoveryControl)},
		{"option 97 echoed", len(offer.Options.Get(dhcpv4.OptionClientMachineIdentifier)) == 17},
		{"xid", offer.TransactionID != dhcpv4.TransactionID{}},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("OFFER: %s wrong:\n%s", c.what, offer.Summary())
		}
	}

	m, err := f.db.GetMachine(testMAC.String())
	if err != nil {
		t.Fatalf("no discovered record: %v", err)
	}
	if m.State != store.StateDiscovered || m.Hostname != "discovered-123456" || !m.Temporary ||
		!m.ExpiresAt.Equal(f.clk.t.Add(DefaultDiscoveryTTL)) || m.Segment != "lab" || m.Arch != "bios" {
		t.Errorf("discovered record %+v", m)
	}
	audit, err := f.db.ListAudit(store.AuditFilter{MAC: testMAC.String()})
	if err != nil || len(audit) != 1 || audit[0].Actor != "dhcp" || audit[0].Action != "discover" {
		t.Errorf("audit %+v, %v", audit, err)
	}

	req := pkt(t, dhcpv4.MessageTypeRequest, testMAC, append(pxe,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptHostName("node-1")))...)
	ack := f.send(t, l, req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || fromIP(ack.YourIPAddr) != yi || ack.BootFileName != "undionly.kpxe" {
		t.Fatalf("ACK wrong: %v", ack)
	}
	leases, _ := f.db.ListLeases("lab")
	if len(leases) != 1 || leases[0].IP != yi || leases[0].Hostname != "node-1" {
		t.Errorf("stored leases %+v", leases)
	}
	// Known machine: later packets do not write machine records.
	before, _ := f.db.GetMachine(testMAC.String())
	f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxe...))
	after, _ := f.db.GetMachine(testMAC.String())
	if after.Revision != before.Revision {
		t.Errorf("DISCOVER of a known machine wrote its record (revision %d -> %d)", before.Revision, after.Revision)
	}
	if got := testutil.ToFloat64(f.in.m.replies.WithLabelValues("ACK")); got != 1 {
		t.Errorf("replies{ACK} = %v", got)
	}
	if got := testutil.ToFloat64(f.in.m.requests.WithLabelValues("DISCOVER")); got != 2 {
		t.Errorf("requests{DISCOVER} = %v", got)
	}
}

func TestHandlerSegmentsAndRelays(t *testing.T) {
	f := newFixture(t, nil)
	agentInfo := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("port-7")))
	relayed := func(giaddr string) []dhcpv4.Modifier {
		return []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_X86_64), dhcpv4.WithGatewayIP(net.ParseIP(giaddr)),
			dhcpv4.WithOption(agentInfo), func(d *dhcpv4.DHCPv4) { d.HopCount = 1 }}
	}

	// A relayed DISCOVER on the relay-only interface gets an address of the
	// relayed segment, the relay's giaddr and option 82 back.
	offer := f.send(t, f.byIf["relay0"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, relayed("10.88.0.1")...))
	if offer == nil || !netip.MustParsePrefix("10.88.0.0/24").Contains(fromIP(offer.YourIPAddr)) {
		t.Fatalf("relayed OFFER %v", offer)
	}
	if !offer.GatewayIPAddr.Equal(net.IPv4(10, 88, 0, 1)) || !bytes.Equal(offer.Options.Get(dhcpv4.OptionRelayAgentInformation), agentInfo.Value.ToBytes()) {
		t.Errorf("relay fields not echoed:\n%s", offer.Summary())
	}
	if !offer.ServerIdentifier().Equal(net.IPv4(10, 99, 0, 1)) || offer.BootFileName != "ipxe.efi" {
		t.Errorf("server id / file:\n%s", offer.Summary())
	}
	// A relayed packet arriving on a directly served interface that is not
	// a relay interface is refused (relay_test.go has the rest).
	if o := f.send(t, f.byIf["veth1"], pkt(t, dhcpv4.MessageTypeDiscover, testMAC, relayed("10.88.0.1")...)); o != nil {
		t.Errorf("relayed packet on veth1 answered:\n%s", o.Summary())
	}

	tests := []struct {
		name   string
		l      *listener
		mac    net.HardwareAddr
		mods   []dhcpv4.Modifier
		reason string
	}{
		{"unknown giaddr", f.byIf["relay0"], testMAC, relayed("10.66.0.1"), dropUnknownRelay},
		{"no giaddr on relay-only interface", f.byIf["relay0"], testMAC, []dhcpv4.Modifier{pxeBIOS, arch(0)}, dropNoSegment},
		{"unknown MAC on non-discovery segment", f.byIf["veth1"], net.HardwareAddr{2, 0, 0, 0, 0, 9}, []dhcpv4.Modifier{pxeBIOS, arch(0)}, dropPolicy},
		{"proxy REQUEST on port 67", f.byIf["veth2"], testMAC, []dhcpv4.Modifier{pxeBIOS, arch(0)}, dropUnsupported},
		{"non-PXE client on proxy segment", f.byIf["veth2"], net.HardwareAddr{2, 0, 0, 0, 0, 8}, nil, dropPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mt := dhcpv4.MessageTypeDiscover
			if strings.Contains(tt.name, "REQUEST") {
				mt = dhcpv4.MessageTypeRequest
			}
			before := drops(f, tt.reason)
			if r := f.send(t, tt.l, pkt(t, mt, tt.mac, tt.mods...)); r != nil {
				t.Fatalf("got a reply:\n%s", r.Summary())
			}
			if drops(f, tt.reason) != before+1 {
				t.Errorf("drops{%s} not counted", tt.reason)
			}
		})
	}
	if _, err := f.db.GetMachine("02:00:00:00:00:09"); err == nil {
		t.Errorf("unknown MAC on a non-discovery segment got a record")
	}
}

func TestHandlerProxy(t *testing.T) {
	f := newFixture(t, nil)
	disc := pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxeUEFI, arch(iana.EFI_X86_64))
	offer := f.send(t, f.byIf["veth2"], disc)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("no proxy OFFER")
	}
	if !offer.YourIPAddr.IsUnspecified() || offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || offer.Options.Has(dhcpv4.OptionSubnetMask) {
		t.Errorf("proxy OFFER carries address information:\n%s", offer.Summary())
	}
	if offer.ClassIdentifier() != "PXEClient" || offer.BootFileName != "ipxe.efi" || !offer.ServerIPAddr.Equal(net.IPv4(10, 79, 0, 1)) ||
		!offer.ServerIdentifier().Equal(net.IPv4(10, 79, 0, 1)) || !bytes.Equal(offer.Options.Get(dhcpv4.OptionVendorSpecificInformation), pxeDiscoveryControl) {
		t.Errorf("proxy OFFER boot fields:\n%s", offer.Summary())
	}
	// coredhcp would send a yiaddr-0 reply as a raw frame to 0.0.0.0
	// unless the request carries the broadcast flag.
	if !disc.IsBroadcast() || !offer.IsBroadcast() {
		t.Errorf("proxy OFFER to a client without address is not broadcast")
	}
	req := pkt(t, dhcpv4.MessageTypeRequest, testMAC, pxeUEFI, arch(iana.EFI_X86_64), dhcpv4.WithClientIP(net.IPv4(10, 79, 0, 50)), ipxePlain)
	ack := f.send(t, f.pxe["veth2"], req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileNameOption() != "http://10.77.0.1:8080/boot/52:54:00:12:34:56" {
		t.Fatalf("port 4011 ACK: %v", ack)
	}
	if req.IsBroadcast() {
		t.Errorf("a client with ciaddr must be answered by unicast")
	}
	leases, _ := f.db.ListLeases("")
	if len(leases) != 0 {
		t.Errorf("proxy mode stored leases: %+v", leases)
	}
	if f.pxe["veth0"] != nil || f.pxe["veth1"] != nil {
		t.Errorf("port 4011 opened on dhcp-mode interfaces")
	}
}

func TestHandlerNakAndDeny(t *testing.T) {
	f := newFixture(t, nil)
	l := f.byIf["veth0"]
	if _, err := f.db.CreateMachine(store.Machine{MAC: "02:00:00:00:00:01", Hostname: "bad"}, store.Audit{Actor: "test", Action: "create"}); err != nil {
		t.Fatal(err)
	}
	opt82 := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(2), []byte("remote-id")))
	// INIT-REBOOT for an address the client does not hold: NAK with only
	// the options RFC 2131 allows.
	f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, testMAC, pxeBIOS, arch(0)))
	nak := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, testMAC,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 250))), dhcpv4.WithOption(opt82)))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("want NAK, got %v", nak)
	}
	for code := range nak.Options {
		switch code {
		case dhcpv4.OptionDHCPMessageType.Code(), dhcpv4.OptionServerIdentifier.Code(), dhcpv4.OptionMessage.Code(), dhcpv4.OptionRelayAgentInformation.Code():
		default:
			t.Errorf("NAK carries option %d", code)
		}
	}
	if !nak.YourIPAddr.IsUnspecified() || nak.BootFileName != "" || !nak.Options.Has(dhcpv4.OptionRelayAgentInformation) {
		t.Errorf("NAK fields:\n%s", nak.Summary())
	}

	// Make the machine rejected through the real state machine.
	rejected := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	if _, err := f.db.UpdateMachine(rejected.String(), store.Audit{Actor: "test", Action: "inventory"}, func(m *store.Machine) error {
		m.State = store.StateInventoried
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.UpdateMachine(rejected.String(), store.Audit{Actor: "test", Action: "reject"}, func(m *store.Machine) error {
		m.State = store.StateRejected
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, rejected, pxeBIOS, arch(0))); r != nil {
		t.Errorf("rejected machine got a reply:\n%s", r.Summary())
	}
}

// answered is how serve answered a packet: at once (by the reader of
// batch.go), by the rest it returned (a worker) or later, through the
// func later returned (the store's lease writer).
type answered int

const (
	atOnce answered = iota
	byRest
	byLater
)

func (a answered) String() string { return [...]string{"at once", "by a worker", "later"}[a] }

// serveOwn calls serve as a batch server's reader does and returns the
// reply however it came, and how.
func serveOwn(t *testing.T, l *listener, wire, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, answered) {
	t.Helper()
	laterReply := make(chan datagram, 1)
	calls := 0
	later := func() func(datagram) {
		calls++
		return func(d datagram) { laterReply <- d }
	}
	reply, rest := l.serve(wire, resp, netip.Addr{}, later)
	switch {
	case calls > 1:
		t.Fatalf("later called %d times for one packet", calls)
	case calls == 1:
		if reply != nil || rest != nil {
			t.Fatalf("answered later and also by %v / a rest %v", reply, rest != nil)
		}
		select {
		case d := <-laterReply:
			if d.b == nil {
				return nil, byLater
			}
			r, err := dhcpv4.FromBytes(d.b)
			if err != nil {
				t.Fatalf("the datagram sent later does not parse: %v", err)
			}
			return r, byLater
		case <-time.After(10 * time.Second):
			t.Fatal("no answer later")
		}
	case rest != nil:
		if reply != nil {
			t.Fatalf("a reply and a rest to run")
		}
		return rest(), byRest
	}
	return reply, atOnce
}

// TestServeWaitsOnlyForWrites: what serve answers without waiting (the
// reader of batch.go does) is exactly what writes nothing to the store;
// a REQUEST of an unknown machine that writes only its lease is answered
// later, once the lease is stored; the rest is answered by the func serve
// returns, as handle would answer it, and nothing is written before that
// func runs.
func TestServeWaitsOnlyForWrites(t *testing.T) {
	f := newFixture(t, func(s *Server) { s.Segments[1].AllowUnknown = true })
	lab, prod := f.byIf["veth0"], f.byIf["veth1"]
	known := net.HardwareAddr{0x52, 0x54, 0, 0, 0xaa, 1}
	unknown := net.HardwareAddr{0x52, 0x54, 0, 0, 0xaa, 2}
	newcomer := net.HardwareAddr{0x52, 0x54, 0, 0, 0xaa, 3}
	if f.send(t, lab, pkt(t, dhcpv4.MessageTypeDiscover, known, pxeBIOS, arch(iana.INTEL_X86PC))) == nil {
		t.Fatal("no OFFER on the discovery segment")
	}
	serve := func(l *listener, req *dhcpv4.DHCPv4, want answered) *dhcpv4.DHCPv4 {
		t.Helper()
		wire, resp := onTheWire(t, req)
		reply, how := serveOwn(t, l, wire, resp)
		if how != want {
			t.Fatalf("%s from %s: answered %v, want %v", req.MessageType(), req.ClientHWAddr, how, want)
		}
		return reply
	}
	typeOf := func(r *dhcpv4.DHCPv4) dhcpv4.MessageType {
		if r == nil {
			return dhcpv4.MessageTypeNone
		}
		return r.MessageType()
	}

	offer := serve(prod, pkt(t, dhcpv4.MessageTypeDiscover, unknown), atOnce)
	if typeOf(offer) != dhcpv4.MessageTypeOffer {
		t.Fatalf("unknown MAC on a segment without discovery: %v, want an OFFER", offer)
	}
	if got := serve(prod, pkt(t, dhcpv4.MessageTypeInform, unknown), atOnce); typeOf(got) != dhcpv4.MessageTypeAck {
		t.Errorf("INFORM: %v, want an ACK", got)
	}
	if got := serve(prod, pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{1, 0, 0, 0, 0, 1}), atOnce); got != nil {
		t.Errorf("group chaddr answered: %v", got)
	}
	if got := serve(prod, pkt(t, dhcpv4.MessageTypeDiscover, known), byRest); typeOf(got) != dhcpv4.MessageTypeOffer {
		t.Errorf("known machine: %v, want an OFFER", got)
	}
	if m, err := f.db.GetMachine(known.String()); err != nil || m.Segment != "prod" {
		t.Errorf("known machine's sighting not recorded by the rest: %+v, %v", m, err)
	}

	// An unknown MAC on a discovery segment gets its record from the rest
	// only.
	wire, _ := dhcpv4.FromBytes(pkt(t, dhcpv4.MessageTypeDiscover, newcomer, pxeBIOS, arch(iana.INTEL_X86PC)).ToBytes())
	resp, _ := dhcpv4.NewReplyFromRequest(wire)
	reply, rest := lab.serve(wire, resp, netip.Addr{}, func() func(datagram) {
		t.Fatal("discovery of a new MAC answered later")
		return nil
	})
	if reply != nil || rest == nil {
		t.Fatalf("discovery of a new MAC answered without waiting: %v", reply)
	}
	if _, err := f.db.GetMachine(newcomer.String()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record written before the rest ran: %v", err)
	}
	if got := rest(); typeOf(got) != dhcpv4.MessageTypeOffer {
		t.Fatalf("discovery: %v, want an OFFER", got)
	}
	if _, err := f.db.GetMachine(newcomer.String()); err != nil {
		t.Errorf("no discovered record after the rest: %v", err)
	}

	req := pkt(t, dhcpv4.MessageTypeRequest, unknown,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	if got := serve(prod, req, byLater); typeOf(got) != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST: %v, want an ACK", got)
	}
	if leases, _ := f.db.ListLeases("prod"); len(leases) != 1 || leases[0].IP != fromIP(offer.YourIPAddr) {
		t.Errorf("stored leases when the ACK came %+v", leases)
	}
	// A REQUEST refused before any write (here: no offer of ours) writes
	// nothing: NAKed at once.
	stranger := net.HardwareAddr{0x52, 0x54, 0, 0, 0xaa, 4}
	unoffered := pkt(t, dhcpv4.MessageTypeRequest, stranger,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	if got := serve(prod, unoffered, atOnce); typeOf(got) != dhcpv4.MessageTypeNak {
		t.Errorf("REQUEST without an offer: %v, want a NAK", got)
	}
	// A known machine's REQUEST may write its sighting after the lease:
	// a worker answers it.
	offer = serve(prod, pkt(t, dhcpv4.MessageTypeDiscover, known), byRest)
	req = pkt(t, dhcpv4.MessageTypeRequest, known,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	if got := serve(prod, req, byRest); typeOf(got) != dhcpv4.MessageTypeAck {
		t.Fatalf("known machine's REQUEST: %v, want an ACK", got)
	}
	if got := serve(prod, pkt(t, dhcpv4.MessageTypeRelease, unknown, dhcpv4.WithClientIP(offer.YourIPAddr)), byRest); got != nil {
		t.Errorf("RELEASE answered: %v", got)
	}
	// Nothing is left in flight: Serve's wait for handlers would return.
	f.in.inflight.Wait()
}

// countingMachines counts GetMachine calls of the store beneath.
type countingMachines struct {
	MachineStore
	n atomic.Int32
}

func (c *countingMachines) GetMachine(mac string) (store.Machine, error) {
	c.n.Add(1)
	return c.MachineStore.GetMachine(mac)
}

// TestRemoteStoreLooksUpOnWorkers: with a store across the network (etcd),
// no machine lookup runs in a socket's reader — a slow or unreachable
// backend must not hold up the packets behind it — even for a packet that
// writes nothing.
func TestRemoteStoreLooksUpOnWorkers(t *testing.T) {
	var counted *countingMachines
	f := newFixture(t, func(s *Server) {
		s.Segments[1].AllowUnknown = true
		s.RemoteStore = true
		counted = &countingMachines{MachineStore: s.Machines}
		s.Machines = counted
	})
	prod := f.byIf["veth1"]
	wire, resp := onTheWire(t, pkt(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{0x52, 0x54, 0, 0, 0xab, 1}))
	before := counted.n.Load()
	reply, rest := prod.serve(wire, resp, netip.Addr{}, func() func(datagram) {
		t.Fatal("a DISCOVER with a remote store answered later")
		return nil
	})
	if reply != nil || rest == nil {
		t.Fatalf("a DISCOVER with a remote store was answered in the reader: %v", reply)
	}
	if n := counted.n.Load() - before; n != 0 {
		t.Fatalf("the reader looked the machine up %d times", n)
	}
	if got := rest(); got == nil || got.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("the worker's answer: %v, want an OFFER", got)
	}
	if n := counted.n.Load() - before; n != 1 {
		t.Errorf("the worker looked the machine up %d times, want 1", n)
	}
	f.in.inflight.Wait()
}
