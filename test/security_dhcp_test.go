package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

// relayConfig: "lab" (sdl0, discovery, a pool of one address) whose
// interface is also listed as a relay interface, for a router on the lab
// (10.61.0.9) that relays "remote2"; "office" (sdo0, no discovery); and
// "remote", relayed by the router 10.69.0.2 at the far end of sdr0.
// Relays are accepted only on sdr0 and sdl0, and only from 10.69.0.2 and
// 10.61.0.9.
const relayConfig = `
http:
  listen: ":8080"
  advertise: "http://10.61.0.1:8080"
tftp:
  listen: ":69"
dhcp:
  relay_interfaces: [sdr0, sdl0]
  relay_sources: [10.69.0.2, 10.61.0.9]
segments:
  - name: lab
    interface: sdl0
    subnet: 10.61.0.0/24
    range: [10.61.0.100, 10.61.0.100]
    discovery: true
  - name: office
    interface: sdo0
    subnet: 10.62.0.0/24
    range: [10.62.0.100, 10.62.0.200]
    allow_unknown: true
  - name: remote
    relayed: true
    subnet: 10.68.0.0/24
    range: [10.68.0.10, 10.68.0.50]
    router: 10.68.0.1
    discovery: true
  - name: remote2
    relayed: true
    subnet: 10.67.0.0/24
    range: [10.67.0.10, 10.67.0.50]
    router: 10.67.0.1
    discovery: true
`

// relayLab is the network of relayConfig and the appliance serving it.
type relayLab struct {
	a                    *appliance
	lab, office          *lab
	relayNS              string     // the router at 10.69.0.2 (and a rogue address, 10.69.0.3)
	remoteSink, labSink  *replySink // replies to giaddr 10.68.0.1 and 10.67.0.1
	relaySrc, rogueSrc   *net.UDPConn
	labRelay, labForger  *net.UDPConn // lab hosts 10.61.0.9 (allowed relay) and 10.61.0.50
	officeForger         *net.UDPConn // office host 10.62.0.50
	labRelayNS, officeNS string
}

func newRelayLab(t *testing.T) *relayLab {
	t.Helper()
	r := &relayLab{lab: newLab(t, "sdl0", "10.61.0.1/24"), office: newLab(t, "sdo0", "10.62.0.1/24")}

	// The router behind sdr0: 10.69.0.2 on the link, giaddr 10.68.0.1 on
	// its client side (a /32 on lo), where relayed replies come back.
	r.relayNS = nsName("sdrelay")
	nsRun(t, "", "ip", "netns", "add", r.relayNS)
	t.Cleanup(func() { nsRun(t, "", "ip", "netns", "del", r.relayNS) })
	nsRun(t, "", "ip", "link", "add", "sdr0", "type", "veth", "peer", "name", "eth0", "netns", r.relayNS)
	t.Cleanup(func() { nsRun(t, "", "ip", "link", "del", "sdr0") })
	nsRun(t, "", "ip", "addr", "add", "10.69.0.1/29", "dev", "sdr0")
	nsRun(t, "", "ip", "link", "set", "sdr0", "up")
	nsRun(t, "", "ip", "route", "add", "10.68.0.0/24", "via", "10.69.0.2")
	nsRun(t, r.relayNS, "ip", "addr", "add", "10.69.0.2/29", "dev", "eth0")
	nsRun(t, r.relayNS, "ip", "addr", "add", "10.69.0.3/29", "dev", "eth0")
	nsRun(t, r.relayNS, "ip", "link", "set", "eth0", "up")
	nsRun(t, r.relayNS, "ip", "link", "set", "lo", "up")
	nsRun(t, r.relayNS, "ip", "addr", "add", "10.68.0.1/32", "dev", "lo")
	r.remoteSink = newReplySink(t, nsUDP(t, r.relayNS, "", &net.UDPAddr{Port: 67}))
	r.relaySrc = nsUDP(t, r.relayNS, "", &net.UDPAddr{IP: net.IPv4(10, 69, 0, 2), Port: 67})
	r.rogueSrc = nsUDP(t, r.relayNS, "", &net.UDPAddr{IP: net.IPv4(10, 69, 0, 3), Port: 67})

	// A router on the lab that relays remote2 (giaddr 10.67.0.1), and a
	// plain lab host.
	r.labRelayNS = r.lab.client("52:54:00:5d:00:09")
	nsRun(t, r.labRelayNS, "ip", "addr", "add", "10.61.0.9/24", "dev", "eth0")
	nsRun(t, r.labRelayNS, "ip", "addr", "add", "10.67.0.1/32", "dev", "lo")
	nsRun(t, "", "ip", "route", "add", "10.67.0.0/24", "via", "10.61.0.9")
	r.labSink = newReplySink(t, nsUDP(t, r.labRelayNS, "", &net.UDPAddr{Port: 67}))
	r.labRelay = nsUDP(t, r.labRelayNS, "", &net.UDPAddr{IP: net.IPv4(10, 61, 0, 9), Port: 67})
	labHost := r.lab.client("52:54:00:5d:00:50")
	nsRun(t, labHost, "ip", "addr", "add", "10.61.0.50/24", "dev", "eth0")
	r.labForger = nsUDP(t, labHost, "", &net.UDPAddr{IP: net.IPv4(10, 61, 0, 50), Port: 67})

	// An office host with a route to every address of the appliance.
	r.officeNS = r.office.client("52:54:00:5d:01:50")
	nsRun(t, r.officeNS, "ip", "addr", "add", "10.62.0.50/24", "dev", "eth0")
	nsRun(t, r.officeNS, "ip", "route", "add", "default", "via", "10.62.0.1")
	r.officeForger = nsUDP(t, r.officeNS, "", &net.UDPAddr{IP: net.IPv4(10, 62, 0, 50), Port: 67})

	r.a = startAppliance(t, t.TempDir(), imageDir(t), relayConfig, "http://10.61.0.1:8080")
	return r
}

// TestSecurityDHCPForgedRelay: relayed DISCOVERs and REQUESTs (giaddr of a
// relayed discovery segment) forged from the office segment, from a lab
// host, and from an unlisted address on the relay link get no answer, no
// lease and no machine record; the listed relays still get their OFFERs,
// including the one on the lab, whose interface is listed.
func TestSecurityDHCPForgedRelay(t *testing.T) {
	r := newRelayLab(t)
	remoteGI, remote2GI := net.IPv4(10, 68, 0, 1), net.IPv4(10, 67, 0, 1)
	applianceOn := func(ip string) *net.UDPAddr { return &net.UDPAddr{IP: net.ParseIP(ip), Port: 67} }

	attacks := []struct {
		name string
		from *net.UDPConn
		to   *net.UDPAddr
		gi   net.IP
		sink *replySink
		mac  string
	}{
		{"office host to its own segment's address", r.officeForger, applianceOn("10.62.0.1"), remoteGI, r.remoteSink, "52:54:00:5d:0a:01"},
		{"office host to the relay interface's address", r.officeForger, applianceOn("10.69.0.1"), remoteGI, r.remoteSink, "52:54:00:5d:0a:02"},
		{"office host to the lab's address", r.officeForger, applianceOn("10.61.0.1"), remote2GI, r.labSink, "52:54:00:5d:0a:03"},
		{"lab host (not a listed relay) to the lab's address", r.labForger, applianceOn("10.61.0.1"), remote2GI, r.labSink, "52:54:00:5d:0a:04"},
		{"lab host with the far relay's giaddr", r.labForger, applianceOn("10.61.0.1"), remoteGI, r.remoteSink, "52:54:00:5d:0a:05"},
		{"unlisted address on the relay link", r.rogueSrc, applianceOn("10.69.0.1"), remoteGI, r.remoteSink, "52:54:00:5d:0a:06"},
	}
	// All forged packets first, then one wait for any answer to reach the
	// relays they name.
	sent := make([][]*dhcpv4.DHCPv4, len(attacks))
	for i, at := range attacks {
		for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
			p := relayedPacket(t, mt, at.mac, at.gi)
			sendTo(t, at.from, at.to, p)
			sent[i] = append(sent[i], p)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for i, at := range attacks {
		for _, p := range sent[i] {
			if got := at.sink.await(p.TransactionID, 0); got != nil {
				t.Errorf("%s: forged relayed %v answered:\n%s", at.name, p.MessageType(), got.Summary())
			}
		}
		if code := apiStatus(t, r.a, "/api/v1/machines/"+at.mac); code != http.StatusNotFound {
			t.Errorf("%s: forged MAC %s has a machine record (GET: %d)", at.name, at.mac, code)
		}
	}
	for _, seg := range []string{"remote", "remote2"} {
		for _, l := range segmentLeases(t, r.a, seg) {
			if strings.HasPrefix(l.MAC, "52:54:00:5d:0a:") {
				t.Errorf("forged MAC %s holds lease %s on %s", l.MAC, l.IP, seg)
			}
		}
	}

	legit := []struct {
		name   string
		from   *net.UDPConn
		to     *net.UDPAddr
		gi     net.IP
		sink   *replySink
		mac    string
		subnet string
	}{
		{"the router on the relay link", r.relaySrc, applianceOn("10.69.0.1"), remoteGI, r.remoteSink, "52:54:00:5d:0b:01", "10.68.0."},
		{"the router on the lab, through the lab's listed interface", r.labRelay, applianceOn("10.61.0.1"), remote2GI, r.labSink, "52:54:00:5d:0b:02", "10.67.0."},
	}
	for _, l := range legit {
		t.Run(l.name, func(t *testing.T) {
			p := relayedPacket(t, dhcpv4.MessageTypeDiscover, l.mac, l.gi)
			sendTo(t, l.from, l.to, p)
			offer := l.sink.await(p.TransactionID, 5*time.Second)
			if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || !strings.HasPrefix(offer.YourIPAddr.String(), l.subnet) {
				t.Fatalf("the listed relay got %v, want an OFFER in %s0/24", offer, l.subnet)
			}
			if code := apiStatus(t, r.a, "/api/v1/machines/"+l.mac); code != http.StatusOK {
				t.Errorf("relayed discovery left no record for %s (GET: %d)", l.mac, code)
			}
		})
	}

	// Every refusal is counted; the log says so once per interval, not once
	// per forged packet.
	refused := dropCount(t, r.a, "relay_refused")
	if refused < float64(2*len(attacks)) {
		t.Errorf("foundry_dhcp_drops_total{reason=relay_refused} = %v, want at least %d", refused, 2*len(attacks))
	}
	if n := strings.Count(r.a.logs(), "reason=relay_refused"); n < 1 || n > 2 {
		t.Errorf("%d relay_refused warnings for %v refusals, want 1 or 2 (rate-limited)", n, refused)
	}
}

// TestSecurityDHCPNoRecordWithoutAddress: on a discovery segment whose
// pool is taken, an unknown MAC gets no OFFER and no record; the holder
// still renews by unicast (which the relay socket on the lab's listed
// address receives).
func TestSecurityDHCPNoRecordWithoutAddress(t *testing.T) {
	r := newRelayLab(t)
	const first, second = "52:54:00:5d:0c:01", "52:54:00:5d:0c:02"
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

	ns1 := r.lab.client(first)
	nsRun(t, ns1, "ip", "addr", "add", "10.61.0.61/24", "dev", "eth0")
	c1 := newReplySink(t, nsUDP(t, ns1, "eth0", &net.UDPAddr{Port: 68}))
	disc := clientPacket(t, dhcpv4.MessageTypeDiscover, first)
	sendTo(t, c1.conn, bcast, disc)
	offer := c1.await(disc.TransactionID, 5*time.Second)
	if offer == nil || offer.YourIPAddr.String() != "10.61.0.100" || offer.BootFileName == "" {
		t.Fatalf("first MAC: %v, want a booting OFFER of 10.61.0.100", offer)
	}
	req := clientPacket(t, dhcpv4.MessageTypeRequest, first, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	sendTo(t, c1.conn, bcast, req)
	if ack := c1.await(req.TransactionID, 5*time.Second); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("first MAC: %v, want ACK", ack)
	}
	if code := apiStatus(t, r.a, "/api/v1/machines/"+first); code != http.StatusOK {
		t.Fatalf("first MAC has no record (GET: %d)", code)
	}

	ns2 := r.lab.client(second)
	nsRun(t, ns2, "ip", "addr", "add", "10.61.0.62/24", "dev", "eth0")
	c2 := newReplySink(t, nsUDP(t, ns2, "eth0", &net.UDPAddr{Port: 68}))
	for i := 0; i < 2; i++ {
		d := clientPacket(t, dhcpv4.MessageTypeDiscover, second)
		sendTo(t, c2.conn, bcast, d)
		if got := c2.await(d.TransactionID, 2*time.Second); got != nil {
			t.Fatalf("second MAC got a reply from an exhausted pool:\n%s", got.Summary())
		}
	}
	if code := apiStatus(t, r.a, "/api/v1/machines/"+second); code != http.StatusNotFound {
		t.Errorf("second MAC, offered no address, has a machine record (GET: %d)", code)
	}
	if n := dropCount(t, r.a, "exhausted"); n < 2 {
		t.Errorf("foundry_dhcp_drops_total{reason=exhausted} = %v, want 2", n)
	}

	// RENEWING: unicast from the leased address to the server.
	nsRun(t, ns1, "ip", "addr", "add", "10.61.0.100/24", "dev", "eth0")
	renew := clientPacket(t, dhcpv4.MessageTypeRequest, first, dhcpv4.WithClientIP(net.IPv4(10, 61, 0, 100)))
	renew.SetUnicast()
	sendTo(t, c1.conn, &net.UDPAddr{IP: net.IPv4(10, 61, 0, 1), Port: 67}, renew)
	if ack := c1.await(renew.TransactionID, 5*time.Second); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.YourIPAddr.String() != "10.61.0.100" {
		t.Fatalf("renewal: %v, want ACK of 10.61.0.100", ack)
	}
}

// relayedPacket is what a relay agent forwards: a PXE client's message
// with giaddr and one hop.
func relayedPacket(t *testing.T, mt dhcpv4.MessageType, mac string, giaddr net.IP) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{dhcpv4.WithGatewayIP(giaddr), func(d *dhcpv4.DHCPv4) { d.HopCount = 1 }}
	if mt == dhcpv4.MessageTypeRequest {
		// SELECTING the first address of the segment from the relay
		// interface's server identifier, as a forger would guess.
		first := giaddr.To4()
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(first[0], first[1], first[2], 10))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 69, 0, 1))))
	}
	return clientPacket(t, mt, mac, mods...)
}

// clientPacket is a BIOS PXE client's message with the broadcast flag.
func clientPacket(t *testing.T, mt dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	must(t, err)
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(mt), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))}, mods...)...)
	must(t, err)
	return p
}

func sendTo(t *testing.T, c *net.UDPConn, to *net.UDPAddr, p *dhcpv4.DHCPv4) {
	t.Helper()
	if _, err := c.WriteTo(p.ToBytes(), to); err != nil {
		t.Fatalf("send %v to %v: %v", p.MessageType(), to, err)
	}
}

// nsUDP opens a UDP socket inside network namespace ns (bound to laddr,
// on device dev when given, broadcast allowed), so that its packets leave
// from that namespace. The socket keeps its namespace; the thread that made
// it stays locked and ends with its goroutine.
func nsUDP(t *testing.T, ns, dev string, laddr *net.UDPAddr) *net.UDPConn {
	t.Helper()
	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread is in ns
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := server4.NewIPv4UDPConn(dev, laddr)
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("UDP socket in %s on %v: %v", ns, laddr, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// replySink collects every BOOTREPLY that reaches a socket, by xid.
type replySink struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  map[dhcpv4.TransactionID]*dhcpv4.DHCPv4
}

func newReplySink(t *testing.T, c *net.UDPConn) *replySink {
	s := &replySink{conn: c, got: map[dhcpv4.TransactionID]*dhcpv4.DHCPv4{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if p, err := dhcpv4.FromBytes(buf[:n]); err == nil && p.OpCode == dhcpv4.OpcodeBootReply {
				s.mu.Lock()
				s.got[p.TransactionID] = p
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// await returns the reply with xid once it arrives, nil after d (d = 0:
// only if it has arrived already).
func (s *replySink) await(xid dhcpv4.TransactionID, d time.Duration) *dhcpv4.DHCPv4 {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		p := s.got[xid]
		s.mu.Unlock()
		if p != nil || !time.Now().Before(deadline) {
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiStatus is the status of an administrator's GET of path.
func apiStatus(t *testing.T, a *appliance, path string) int {
	t.Helper()
	resp := apiGet(t, a, path)
	resp.Body.Close()
	return resp.StatusCode
}

func apiGet(t *testing.T, a *appliance, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", a.base+path, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	return resp
}

type leaseJSON struct {
	MAC string `json:"mac"`
	IP  string `json:"ip"`
}

// segmentLeases are the leases the API lists for segment.
func segmentLeases(t *testing.T, a *appliance, segment string) []leaseJSON {
	t.Helper()
	resp := apiGet(t, a, "/api/v1/segments/"+segment+"/leases")
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("leases of %s: %s", segment, resp.Status)
	}
	var leases []leaseJSON
	must(t, json.NewDecoder(resp.Body).Decode(&leases))
	return leases
}

// dropCount reads foundry_dhcp_drops_total{reason} from /metrics.
func dropCount(t *testing.T, a *appliance, reason string) float64 {
	t.Helper()
	resp := apiGet(t, a, "/metrics")
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	re := regexp.MustCompile(`(?m)^foundry_dhcp_drops_total\{reason="` + regexp.QuoteMeta(reason) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no drops_total{reason=%s} in /metrics", reason)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	must(t, err)
	return v
}

// proxyGrantConfig: one proxy-mode discovery segment on spx0; another
// server (absent here) hands out the addresses.
const proxyGrantConfig = `
http:
  listen: ":8080"
  advertise: "http://10.66.0.1:8080"
segments:
  - name: office
    interface: spx0
    subnet: 10.66.0.0/24
    mode: proxy
    discovery: true
`

// In proxy mode the appliance hands out no address, so a boot nonce goes
// to the address the client used in its port-4011 exchange (ciaddr), or,
// after an OFFER on port 67 alone, to the address the kernel's neighbour
// table maps to the MAC. A host on the segment and the appliance's own
// host asking for the machine's script get no nonce and use up nothing;
// the machine gets one, once.
func TestSecurityProxyNonceGrant(t *testing.T) {
	l := newLab(t, "spx0", "10.66.0.1/24")
	a := startAppliance(t, t.TempDir(), imageDir(t), proxyGrantConfig, "http://10.66.0.1:8080")
	atk := l.client(attackerMAC)
	nsRun(t, atk, "ip", "addr", "add", "10.66.0.50/24", "dev", "eth0")
	others := func(mac string) {
		t.Helper()
		for _, path := range []string{"/boot/" + mac, "/boot/" + mac + "?mode=discovery"} {
			if code, script := getFrom(t, atk, a.base+path); code != http.StatusOK || !isRegrant(script) {
				t.Fatalf("a host on the segment asks for %s: %d, want no nonce:\n%s", path, code, script)
			}
			if code, script := get(t, a.base+path); code != http.StatusOK || !isRegrant(script) {
				t.Fatalf("the appliance's host asks for %s: %d, want no nonce:\n%s", path, code, script)
			}
		}
	}
	machine := func(ns, mac string) {
		t.Helper()
		discoveryNonce(t, a, ns, mac)
		if code, script := getFrom(t, ns, a.base+"/boot/"+mac); code != http.StatusOK || !isRegrant(script) {
			t.Fatalf("the machine's second request: %d, want no second nonce:\n%s", code, script)
		}
	}

	// The port-4011 exchange of a client that has its address.
	const byRequest = "52:54:00:5e:01:01"
	ns1 := l.client(byRequest)
	nsRun(t, ns1, "ip", "addr", "add", "10.66.0.121/24", "dev", "eth0")
	c1 := newReplySink(t, nsUDP(t, ns1, "eth0", &net.UDPAddr{Port: 68}))
	req := clientPacket(t, dhcpv4.MessageTypeRequest, byRequest, dhcpv4.WithClientIP(net.IPv4(10, 66, 0, 121)))
	sendTo(t, c1.conn, &net.UDPAddr{IP: net.IPv4(10, 66, 0, 1), Port: 4011}, req)
	if ack := c1.await(req.TransactionID, 5*time.Second); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName == "" && ack.BootFileNameOption() == "" {
		t.Fatalf("port 4011 REQUEST: %v, want an ACK with a boot file", ack)
	}
	others(byRequest)
	machine(ns1, byRequest)

	// An OFFER on port 67 only: the neighbour table must vouch.
	const byOffer = "52:54:00:5e:01:02"
	ns2 := l.client(byOffer)
	nsRun(t, ns2, "ip", "addr", "add", "10.66.0.122/24", "dev", "eth0")
	c2 := newReplySink(t, nsUDP(t, ns2, "eth0", &net.UDPAddr{Port: 68}))
	disc := clientPacket(t, dhcpv4.MessageTypeDiscover, byOffer)
	sendTo(t, c2.conn, &net.UDPAddr{IP: net.IPv4bcast, Port: 67}, disc)
	if offer := c2.await(disc.TransactionID, 5*time.Second); offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.IsUnspecified() {
		t.Fatalf("proxy DISCOVER: %v, want an OFFER without an address", offer)
	}
	others(byOffer)
	machine(ns2, byOffer)
}
