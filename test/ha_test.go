package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
	"github.com/foundry-appliance/foundry/test/nstest"
)

// haFailoverAfter is the pair's dhcp.ha.failover_after in this test.
const haFailoverAfter = 3 * time.Second

// haSide is one appliance of the pair: its own interfaces on the
// segment's bridge and on the relay link's, in this namespace, with
// addresses of its own.
type haSide struct {
	name, peer, role string
	iface, ip        string // on segment ha
	relay, relayIP   string // on the relay link to segment far
	port             int
}

func (s haSide) config(endpoints []string) string {
	return fmt.Sprintf(`http:
  listen: "%[5]s:%[6]d"
  advertise: "http://%[5]s:%[6]d"
tftp:
  listen: "%[5]s:69"
store:
  backend: etcd
  etcd:
    endpoints: [%[7]s]
    prefix: ha-test/
    request_timeout: 3s
dhcp:
  relay_interfaces: [%[9]s]
  relay_sources: [10.97.0.1]
  ha: {name: %[1]s, peer: %[2]s, role: %[3]s, failover_after: %[8]s}
segments:
  - name: ha
    interface: %[4]s
    subnet: 10.95.0.0/20
    range: [10.95.1.0, 10.95.15.254]
    router: 10.95.0.1
    lease_time: 600s
    allow_unknown: true
  - name: far
    relayed: true
    subnet: 10.97.0.0/20
    range: [10.97.1.0, 10.97.15.254]
    router: 10.97.0.1
    lease_time: 600s
    allow_unknown: true
`, s.name, s.peer, s.role, s.iface, s.ip, s.port, strings.Join(endpoints, ", "), haFailoverAfter, s.relay)
}

// TestDHCPPair runs a DHCP pair as docs/scale-out.md states it: two
// `foundry serve` on one segment, sharing a three-member etcd cluster.
// perfdhcp leases thousands of addresses through both, and etcd holds no
// address twice; the secondary is killed and a client of its hash bucket
// is served by the primary within failover_after and two heartbeats (the
// time is printed), as is a real dhclient; then an etcd member is killed
// and clients are still served; then every member: the dhclient's lease is
// renewed from memory for the time it has left, a new client gets
// nothing, and once etcd is back both are leased again; last the
// secondary starts again and is stopped cleanly, and its goodbye lets the
// survivor take its clients at the next heartbeat.
func TestDHCPPair(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	// Segment ha: the bridge (the router's address) and the clients.
	// Segment far is behind a relay agent (perfdhcp), linked to both
	// appliances by the bridge hr0; it broadcasts to both, as a relay
	// with two helper addresses sends to each.
	labNet := newLab(t, "ha0", "10.95.0.1/20")
	relayNet := newLab(t, "hr0", "10.97.0.254/20")
	sides := []haSide{
		{"a", "b", "primary", "haa", "10.95.0.2", "hra", "10.97.0.2", 8095},
		{"b", "a", "secondary", "hab", "10.95.0.3", "hrb", "10.97.0.3", 8096},
	}
	for _, s := range sides {
		for _, l := range []struct{ dev, cidr, bridge string }{{s.iface, s.ip + "/20", "ha0"}, {s.relay, s.relayIP + "/20", "hr0"}} {
			nstest.Run(t, "ip", "link", "add", l.dev, "type", "veth", "peer", "name", l.dev+"p")
			t.Cleanup(func() { exec.Command("ip", "link", "del", l.dev).Run() })
			nstest.Run(t, "ip", "addr", "add", l.cidr, "dev", l.dev)
			nstest.Run(t, "ip", "link", "set", l.dev+"p", "master", l.bridge, "up")
			nstest.Run(t, "ip", "link", "set", l.dev, "up")
		}
	}
	// Several interfaces of this namespace are on each bridge: each
	// answers ARP only for its own address, so that a unicast to an
	// appliance arrives on that appliance's interface.
	for _, ifc := range []string{"ha0", "haa", "hab", "hr0", "hra", "hrb"} {
		nstest.Run(t, "sysctl", "-qw", "net.ipv4.conf."+ifc+".arp_ignore=1")
	}
	images := imageDir(t)
	var apps []*appliance
	for _, s := range sides {
		apps = append(apps, startAppliance(t, t.TempDir(), images, s.config(c.Endpoints()), fmt.Sprintf("http://%s:%d", s.ip, s.port)))
	}
	primary, secondary := apps[0], apps[1]

	// 1. perfdhcp through the pair: each DISCOVER is answered by exactly
	// one server (its client's bucket's), and so is each REQUEST.
	perfNS := relayNet.client("52:54:00:97:ff:01")
	nstest.Run(t, "ip", "-n", perfNS, "addr", "add", "10.97.0.1/20", "dev", "eth0")
	run := perfdhcpBroadcast(t, perfNS, "4000", "300", "10", "00:0c:01:00:00:00")
	t.Logf("perfdhcp through the pair: %s", run)
	var offers, acks [2]int
	for i, a := range apps {
		offers[i] = int(metricValue(t, a, `foundry_dhcp_replies_total{type="OFFER"}`))
		acks[i] = int(metricValue(t, a, `foundry_dhcp_replies_total{type="ACK"}`))
	}
	t.Logf("OFFERs: the primary %d, the secondary %d; ACKs: %d and %d", offers[0], offers[1], acks[0], acks[1])
	switch {
	case run.discovers < 2500 || run.offers+run.lateOffers < run.discovers*95/100 || run.acks+run.lateAcks < run.requests*95/100:
		t.Fatalf("perfdhcp got too few answers\n%s", run.out)
	case offers[0]+offers[1] != run.discovers || acks[0]+acks[1] != run.requests:
		t.Fatalf("%d DISCOVERs got %d+%d OFFERs, %d REQUESTs %d+%d ACKs: want one answer each", run.discovers, offers[0], offers[1], run.requests, acks[0], acks[1])
	case min(offers[0], offers[1]) < run.discovers/4:
		t.Errorf("the pair does not split the work: %d and %d OFFERs", offers[0], offers[1])
	}
	if leases := haLeasesAgree(t, c.Endpoints()); leases < acks[0]+acks[1] {
		t.Fatalf("etcd holds %d leases after %d ACKs to distinct clients", leases, acks[0]+acks[1])
	}

	// 2. The secondary dies. A client of its bucket sends a DISCOVER every
	// 250 ms until the survivor answers.
	orphan := macInBucket(true, 1)
	probeNS := labNet.client(orphan)
	killed := time.Now()
	secondary.cmd.Process.Kill()
	<-secondary.stopped
	offerAfter, ackAfter, ip := probeDORA(t, probeNS, orphan, killed, 20*time.Second)
	t.Logf("secondary killed: its client %s got an OFFER from the survivor after %v, the ACK of %v after %v (failover_after %v)",
		orphan, offerAfter.Round(time.Millisecond), ip, ackAfter.Round(time.Millisecond), haFailoverAfter)
	if limit := haFailoverAfter + 2*dhcp.DefaultHeartbeatEvery + time.Second; offerAfter > limit {
		t.Errorf("the survivor answered %v after the kill, over the stated %v", offerAfter, limit)
	}
	if _, ok := primary.waitLog(time.Second, "peer is dead"); !ok {
		t.Errorf("the survivor did not log the failover")
	}
	// A real dhclient of the dead one's bucket.
	dhMAC := macInBucket(true, 2)
	d := newDHClient(t, labNet.client(dhMAC))
	start := time.Now()
	if err := d.once(30 * time.Second); err != nil {
		t.Fatalf("dhclient after the failover: %v", err)
	}
	boundBy := time.Now() // the lease's ACK came before: it ends before boundBy + 600 s
	bound := d.last("BOUND")
	if bound == nil || bound["server"] != "10.95.0.2" {
		t.Fatalf("dhclient of the dead appliance's bucket: %v, want bound by the survivor 10.95.0.2", d.events())
	}
	t.Logf("dhclient %s bound %s from the survivor in %v", dhMAC, bound["ip"], time.Since(start).Round(time.Millisecond))

	// 3. An etcd member dies: the survivor goes on leasing with two.
	c.Stop(0)
	run = perfdhcpBroadcast(t, perfNS, "300", "100", "3", "00:0c:02:00:00:00")
	t.Logf("perfdhcp with one etcd member of three down and one appliance of two: %s", run)
	if run.acks+run.lateAcks < run.discovers*95/100 {
		t.Errorf("with an etcd member down: %d ACKs for %d DISCOVERs\n%s", run.acks+run.lateAcks, run.discovers, run.out)
	}
	total := haLeasesAgree(t, c.Endpoints()[1:])
	t.Logf("etcd holds %d leases, every address once, every claim agreeing", total)

	// 4. etcd is gone (every member down). The dhclient's INIT-REBOOT from
	// its lease file is ACKed from memory, for no longer than its stored
	// lease has left; a new client gets nothing.
	c.Stop(1)
	c.Stop(2)
	asked := time.Now()
	if err := d.once(30 * time.Second); err != nil {
		t.Fatalf("dhclient INIT-REBOOT with etcd down: %v", err)
	}
	answered := time.Since(asked)
	reboot := d.last("REBOOT", "BOUND", "RENEW", "REBIND")
	lease, _ := strconv.Atoi(reboot["lease"])
	maxLeft := int((600*time.Second - asked.Sub(boundBy)) / time.Second)
	t.Logf("etcd down: dhclient %s got %s %s with lease %d s (at most %d s left) in %v", dhMAC, reboot["reason"], reboot["ip"], lease, maxLeft, answered.Round(time.Millisecond))
	if reboot["reason"] != "REBOOT" || reboot["ip"] != bound["ip"] || lease <= 0 || lease > maxLeft {
		t.Errorf("etcd down: dhclient got %v, want REBOOT of %s for at most %d s", reboot, bound["ip"], maxLeft)
	}
	if _, ok := primary.waitLog(time.Second, "renewed from memory", dhMAC); !ok {
		t.Errorf("the renewal from memory was not logged")
	}
	newcomer := newDHClient(t, labNet.client(macInBucket(false, 3)))
	if out, err := dhclientUnanswered(newcomer, 6); err == nil || newcomer.last("BOUND") != nil {
		t.Errorf("etcd down: a new client was leased an address: %v, %v\n%s", err, newcomer.events(), out)
	}
	if line, ok := primary.waitLog(time.Second, "dhcp request dropped", "store_unavailable"); ok {
		t.Logf("etcd down, a new client: %s", line)
	} else {
		t.Errorf("the new client's drop was not logged as store_unavailable")
	}

	// etcd is back (two members of three): both are served and written.
	c.Start(1)
	c.Start(2)
	back := time.Now()
	if err := d.once(40 * time.Second); err != nil {
		t.Fatalf("dhclient with etcd back: %v", err)
	}
	if ev := d.last("REBOOT", "BOUND"); ev["lease"] != "600" || ev["ip"] != bound["ip"] {
		t.Errorf("etcd back: dhclient got %v, want %s for 600 s", ev, bound["ip"])
	}
	if err := newcomer.once(40 * time.Second); err != nil || newcomer.last("BOUND") == nil {
		t.Errorf("etcd back: the new client got no lease: %v, %v", err, newcomer.events())
	}
	t.Logf("etcd back: both clients leased in %v", time.Since(back).Round(time.Millisecond))
	kept := metricValue(t, primary, "foundry_dhcp_renewed_from_memory_total")
	down := metricValue(t, primary, `foundry_dhcp_drops_total{reason="store_unavailable"}`)
	t.Logf("renewed from memory: %v; dropped as store_unavailable: %v", kept, down)
	if kept < 1 || down < 1 {
		t.Errorf("renewed_from_memory_total %v, drops{store_unavailable} %v: want both counted", kept, down)
	}
	haLeasesAgree(t, c.Endpoints()[1:])

	// 5. The secondary starts again and the split resumes; then it is
	// stopped cleanly (SIGTERM, as for maintenance): it says goodbye, and
	// the survivor answers its bucket at its next heartbeat rather than
	// failover_after after the last beat.
	backBefore := strings.Count(primary.logs(), "peer is back")
	secondary.start()
	for deadline := time.Now().Add(haFailoverAfter + 5*time.Second); strings.Count(primary.logs(), "peer is back") == backBefore; {
		if time.Now().After(deadline) {
			t.Fatalf("the secondary started again; the primary did not resume the split")
		}
		time.Sleep(100 * time.Millisecond)
	}
	maintained := macInBucket(true, 5)
	maintNS := labNet.client(maintained)
	secondary.stop()
	exited := time.Now()
	offerAfter, _, _ = probeDORA(t, maintNS, maintained, exited, 20*time.Second)
	t.Logf("secondary stopped cleanly: its client %s got an OFFER from the survivor %v after it exited (failover_after %v)",
		maintained, offerAfter.Round(time.Millisecond), haFailoverAfter)
	if _, ok := secondary.waitLog(time.Second, "dhcp pair stopped: told the peer"); !ok {
		t.Errorf("the stopped secondary did not log its goodbye")
	}
	if _, ok := primary.waitLog(time.Second, "peer stopped (it said goodbye)"); !ok {
		t.Errorf("the survivor did not take the goodbye: it failed over by the heartbeat's stillness, or not at all")
	}
	if limit := dhcp.DefaultHeartbeatEvery + time.Second; offerAfter > limit {
		t.Errorf("the survivor answered the stopped peer's client %v after it exited, over %v (a heartbeat and a second)", offerAfter, limit)
	}
}

// dhclientUnanswered runs d's one attempt where no answer is expected,
// ended by dhclient's own timeout of secs seconds (exit status 2): the
// context's SIGKILL reaches `ip netns exec`, not always the dhclient it
// started, which would hold the output pipe open.
func dhclientUnanswered(d *dhclient, secs int) ([]byte, error) {
	conf := filepath.Join(d.dir, "dhclient.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		return nil, err
	}
	b = regexp.MustCompile(`(?m)^timeout \d+;`).ReplaceAll(b, []byte(fmt.Sprintf("timeout %d;", secs)))
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+15)*time.Second)
	defer cancel()
	cmd := inNS(ctx, d.ns, "dhclient", d.args("-1", "eth0")...)
	cmd.WaitDelay = 2 * time.Second
	return cmd.CombinedOutput()
}

// perfRun is what a perfdhcp run reported: DISCOVERs and REQUESTs sent,
// OFFERs and ACKs received in time, and late (answers that came after
// perfdhcp had given the exchange up: its orphans).
type perfRun struct {
	discovers, requests  int
	offers, acks         int
	lateOffers, lateAcks int
	rate                 float64 // perfdhcp's 4-way exchanges a second
	out                  string  // the report
}

func (r perfRun) String() string {
	return fmt.Sprintf("%d DISCOVERs, %d OFFERs (%d late), %d REQUESTs, %d ACKs (%d late), %.0f DORA/s",
		r.discovers, r.offers, r.lateOffers, r.requests, r.acks, r.lateAcks, r.rate)
}

var (
	perfSent     = regexp.MustCompile(`sent packets: (\d+)`)
	perfReceived = regexp.MustCompile(`received packets: (\d+)`)
	perfOrphans  = regexp.MustCompile(`orphans: (\d+)`)
	perfRate     = regexp.MustCompile(`Rate: ([0-9.]+) 4-way`)
)

// perfdhcpBroadcast runs perfdhcp in ns as a relay agent (its eth0's
// address is the giaddr) that broadcasts on its link, so that both servers
// of the pair hear every DISCOVER: clients distinct clients from base, at
// rate per second, for secs seconds. An answer counts if it comes within
// 5 s (perfdhcp's default, 1 s, counts the slow answers of a loaded
// machine as lost; this test is about which answers, not how fast).
func perfdhcpBroadcast(t *testing.T, ns, clients, rate, secs, base string) perfRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "perfdhcp", "-4", "-l", "eth0", "-b", "mac="+base, "-R", clients, "-r", rate, "-p", secs, "-d", "5", "-W", "3000000").CombinedOutput()
	// Exit status 3: some exchanges unfinished, which the counts show.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 3) {
		t.Fatalf("perfdhcp: %v\n%s", err, out)
	}
	sent, recv := perfSent.FindAllStringSubmatch(string(out), -1), perfReceived.FindAllStringSubmatch(string(out), -1)
	late := perfOrphans.FindAllStringSubmatch(string(out), -1)
	if len(sent) != 2 || len(recv) != 2 || len(late) != 2 {
		t.Fatalf("perfdhcp report without its two exchanges:\n%s", out)
	}
	num := func(m [][]string, i int) int { n, _ := strconv.Atoi(m[i][1]); return n }
	r := perfRun{discovers: num(sent, 0), requests: num(sent, 1), offers: num(recv, 0), acks: num(recv, 1),
		lateOffers: num(late, 0), lateAcks: num(late, 1), out: string(out)}
	if m := perfRate.FindStringSubmatch(string(out)); m != nil {
		r.rate, _ = strconv.ParseFloat(m[1], 64)
	}
	return r
}

// macInBucket returns the n-th MAC (from 1) of the secondary's hash
// buckets (upper) or the primary's.
func macInBucket(upper bool, n int) string {
	for i := 0; ; i++ {
		hw := [6]byte{0x52, 0x54, 0x00, 0x95, byte(i >> 8), byte(i)}
		if (dhcp.HashBucket(hw) >= 128) == upper {
			if n--; n == 0 {
				return net.HardwareAddr(hw[:]).String()
			}
		}
	}
}

// probeDORA plays a client in ns that sends a DISCOVER every 250 ms until
// an OFFER comes, then takes it up; it returns the times from since to the
// OFFER and to the ACK, and the address.
func probeDORA(t *testing.T, ns, mac string, since time.Time, limit time.Duration) (offer, ack time.Duration, ip netip.Addr) {
	t.Helper()
	conn := nsUDP(t, ns, "eth0", &net.UDPAddr{IP: net.IPv4zero, Port: 68})
	sink := newReplySink(t, conn)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	var o *dhcpv4.DHCPv4
	for o == nil {
		if time.Since(since) > limit {
			t.Fatalf("no OFFER for %s within %v", mac, limit)
		}
		d := clientPacket(t, dhcpv4.MessageTypeDiscover, mac)
		sendTo(t, conn, bcast, d)
		if r := sink.await(d.TransactionID, 250*time.Millisecond); r != nil && r.MessageType() == dhcpv4.MessageTypeOffer {
			o = r
		}
	}
	offer = time.Since(since)
	req := clientPacket(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(o.ServerIdentifier())),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))
	sendTo(t, conn, bcast, req)
	a := sink.await(req.TransactionID, 5*time.Second)
	if a == nil || a.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST of the survivor's offer %v: %v", o.YourIPAddr, a)
	}
	ip, _ = netip.AddrFromSlice(a.YourIPAddr.To4())
	return offer, time.Since(since), ip
}

// haLeasesAgree reads the pair's leases (l/<segment>/<mac>) and address
// claims (la/<segment>/<ip>) straight from etcd and checks them: no
// address under two MACs, every lease's address claimed by its MAC, every
// claim naming a lease on its address. It returns the number of leases.
func haLeasesAgree(t *testing.T, endpoints []string) int {
	t.Helper()
	e, err := kv.OpenEtcd(context.Background(), kv.EtcdOptions{Endpoints: endpoints, Prefix: "ha-test/", RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var leases []store.Lease
	claims := map[string]string{} // segment/address → MAC
	err = e.View(func(txn kv.Txn) error {
		for _, p := range []string{"l/", "la/"} {
			it := txn.NewIterator(kv.IterOptions{Prefix: []byte(p)})
			for it.Rewind(); it.Valid(); it.Next() {
				key := strings.TrimPrefix(string(it.Key()), p)
				err := it.Value(func(v []byte) error {
					if p == "la/" {
						claims[key] = string(v)
						return nil
					}
					var l store.Lease
					leases = append(leases, l)
					return json.Unmarshal(v, &leases[len(leases)-1])
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	byIP := map[string]string{}
	bad := 0
	for _, l := range leases {
		addr := l.Segment + "/" + l.IP.String()
		if o, dup := byIP[addr]; dup {
			t.Errorf("%s leased to both %s and %s", addr, o, l.MAC)
			bad++
		}
		byIP[addr] = l.MAC
		if claims[addr] != l.MAC {
			t.Errorf("lease of %s on %s: the address's claim names %q", l.MAC, addr, claims[addr])
			bad++
		}
	}
	for addr, mac := range claims {
		if byIP[addr] != mac {
			t.Errorf("claim of %s by %s without that lease", addr, mac)
			bad++
		}
	}
	if bad > 0 {
		t.FailNow()
	}
	return len(leases)
}
