package dhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestHashBucket: RFC 3074's mixing table is a permutation of the bytes,
// and the hash of MACs spreads over both halves of the buckets.
func TestHashBucket(t *testing.T) {
	var seen [256]bool
	for _, v := range loadbMix {
		if seen[v] {
			t.Fatalf("mixing table repeats %d", v)
		}
		seen[v] = true
	}
	upper := 0
	const n = 4096
	for i := range n {
		if HashBucket(pairMAC(i)) >= 128 {
			upper++
		}
	}
	if upper < n*45/100 || upper > n*55/100 {
		t.Errorf("%d of %d MACs in buckets 128-255, want about half", upper, n)
	}
	// The key's last byte is mixed first and its length seeds the hash:
	// one table step per byte from hash 6.
	hw := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	h := uint8(6)
	for i := 5; i >= 0; i-- {
		h = loadbMix[h^hw[i]]
	}
	if got := HashBucket(hw); got != h {
		t.Errorf("HashBucket = %d, want %d", got, h)
	}
}

func pairMAC(i int) [6]byte { return [6]byte{0x52, 0x54, 0x00, 0x0a, byte(i >> 8), byte(i)} }

// macsIn returns n MACs whose bucket is the primary's (upper false) or the
// secondary's.
func macsIn(upper bool, n int) []net.HardwareAddr {
	var out []net.HardwareAddr
	for i := 0; len(out) < n; i++ {
		if hw := pairMAC(i); (HashBucket(hw) >= 128) == upper {
			out = append(out, net.HardwareAddr(hw[:]))
		}
	}
	return out
}

// pairSide is one appliance of a pair in a test: a server built on its own
// store, which shares the etcd cluster (and key prefix) with its peer.
type pairSide struct {
	*fixture
	db *store.DB
	ip netip.Addr // its server identifier on segment lab
}

// pairClock runs near the real time, so that the store (time.Now) and the
// allocators agree on which leases are live.
func pairClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

// newPairSide opens a store on c under prefix and builds a server of the
// pair on it (pair nil: a server alone on the shared store). Segment lab
// gives unknown clients addresses, without discovery.
func newPairSide(t *testing.T, c *etcdtest.Cluster, prefix string, clk *clock, ip netip.Addr, pair *Pair) *pairSide {
	t.Helper()
	e, err := kv.OpenEtcd(context.Background(), kv.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenEngine(e, store.Options{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if pair != nil {
		pair.Heartbeats = db
	}
	f := newFixture(t, func(s *Server) {
		s.Leases, s.Machines, s.Now, s.Pair = db, db, clk.now, pair
		s.Segments[0].Discovery, s.Segments[0].AllowUnknown, s.Segments[0].ServerIP = false, true, ip
	})
	return &pairSide{fixture: f, db: db, ip: ip}
}

// newPair builds the primary (10.77.0.2) and the secondary (10.77.0.3) of a
// pair on one store prefix.
func newPair(t *testing.T, c *etcdtest.Cluster, prefix string, clk *clock) (a, b *pairSide) {
	a = newPairSide(t, c, prefix, clk, mustAddr("10.77.0.2"), &Pair{Name: "a", Peer: "b", Role: Primary})
	b = newPairSide(t, c, prefix, clk, mustAddr("10.77.0.3"), &Pair{Name: "b", Peer: "a", Role: Secondary})
	return a, b
}

// beatingPair is newPair after both have beaten once at t0 and the
// primary has seen the secondary's beat a second later: both alive, split.
func beatingPair(t *testing.T, c *etcdtest.Cluster, prefix string) (a, b *pairSide, t0 time.Time) {
	a, b = newPair(t, c, prefix, pairClock())
	t0 = time.Now()
	a.in.pair.step(t0)
	b.in.pair.step(t0)
	a.in.pair.step(t0.Add(time.Second))
	return a, b, t0
}

func (s *pairSide) send(t *testing.T, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	return s.fixture.send(t, s.byIf["veth0"], req)
}

// selecting is the REQUEST that takes up offer from the server at sid.
func selecting(t *testing.T, mac net.HardwareAddr, sid net.IP, ip net.IP) *dhcpv4.DHCPv4 {
	return pkt(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
}

func renewing(t *testing.T, mac net.HardwareAddr, ip netip.Addr) *dhcpv4.DHCPv4 {
	return pkt(t, dhcpv4.MessageTypeRequest, mac, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = ip.AsSlice() })
}

func initReboot(t *testing.T, mac net.HardwareAddr, ip netip.Addr) *dhcpv4.DHCPv4 {
	return pkt(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice())))
}

func isType(p *dhcpv4.DHCPv4, mt dhcpv4.MessageType) bool { return p != nil && p.MessageType() == mt }

// doraVia runs DISCOVER/OFFER and REQUEST/ACK of mac through both sides
// at once, as on one segment: exactly one side must answer each step.
// It returns the side that leased and the address.
func doraVia(t *testing.T, sides []*pairSide, mac net.HardwareAddr) (*pairSide, netip.Addr) {
	t.Helper()
	var by *pairSide
	var offer *dhcpv4.DHCPv4
	for _, s := range sides {
		if o := s.send(t, pkt(t, dhcpv4.MessageTypeDiscover, mac)); o != nil {
			if by != nil {
				t.Fatalf("%s: both servers offered", mac)
			}
			if !isType(o, dhcpv4.MessageTypeOffer) {
				t.Fatalf("%s: %v, want an OFFER", mac, o.MessageType())
			}
			by, offer = s, o
		}
	}
	if by == nil {
		t.Fatalf("%s: no server offered", mac)
	}
	req := selecting(t, mac, offer.ServerIdentifier(), offer.YourIPAddr)
	for _, s := range sides {
		reply := s.send(t, req)
		switch {
		case s == by && !isType(reply, dhcpv4.MessageTypeAck):
			t.Fatalf("%s: the offering server answered its REQUEST with %v", mac, reply)
		case s != by && reply != nil:
			t.Fatalf("%s: the other server answered a REQUEST naming %v: %v", mac, offer.ServerIdentifier(), reply.MessageType())
		}
	}
	return by, fromIP(offer.YourIPAddr)
}

// TestPair runs the two servers of a pair on one real etcd cluster: the
// split rule, adoption, failover and a conflict between two servers that
// both allocate.
func TestPair(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	// Segment lab leases .100-.199: the primary .100-.149, the secondary .150-.199.
	lower := func(ip netip.Addr) bool { return ip.Compare(mustAddr("10.77.0.150")) < 0 }

	t.Run("split by bucket and half", func(t *testing.T) {
		a, b := newPair(t, c, "split/", pairClock())
		leased := map[netip.Addr]string{}
		for _, upper := range []bool{false, true} {
			for _, mac := range macsIn(upper, 12) {
				by, ip := doraVia(t, []*pairSide{a, b}, mac)
				if want := map[bool]*pairSide{false: a, true: b}[upper]; by != want {
					t.Errorf("%s (bucket %d) leased by %v, want %v", mac, HashBucket([6]byte(mac)), by.ip, want.ip)
				}
				if lower(ip) != (by == a) {
					t.Errorf("%s got %v from %v: outside that server's half", mac, ip, by.ip)
				}
				if o, dup := leased[ip]; dup {
					t.Fatalf("%v leased to %s and %s", ip, o, mac)
				}
				leased[ip] = mac.String()
			}
		}
		if got := drops(a.fixture, dropPeer); got != 12 {
			t.Errorf("primary dropped %v DISCOVERs for the secondary, want 12", got)
		}
		// INIT-REBOOT is split too: only the bucket's owner answers.
		mac := macsIn(true, 1)[0]
		ip := storedLease(t, b.db, mac).IP
		if r := a.send(t, initReboot(t, mac, ip)); r != nil {
			t.Errorf("the primary answered the secondary's INIT-REBOOT: %v", r.MessageType())
		}
		if r := b.send(t, initReboot(t, mac, ip)); !isType(r, dhcpv4.MessageTypeAck) {
			t.Errorf("the secondary's INIT-REBOOT: %v, want ACK", r)
		}
	})

	t.Run("renewal at the peer adopts the lease", func(t *testing.T) {
		clk := pairClock()
		a, b := newPair(t, c, "adopt/", clk)
		mac := macsIn(false, 1)[0]
		_, ip := doraVia(t, []*pairSide{a, b}, mac)
		clk.advance(40 * time.Minute)
		// Rebinding (broadcast, ciaddr) reaches the secondary, which has
		// never seen the client.
		ack := b.send(t, renewing(t, mac, ip))
		if !isType(ack, dhcpv4.MessageTypeAck) || fromIP(ack.YourIPAddr) != ip || !ack.ServerIdentifier().Equal(b.ip.AsSlice()) {
			t.Fatalf("rebinding at the peer: %v, want its ACK of %v", ack, ip)
		}
		if l := storedLease(t, a.db, mac); l.IP != ip || !l.Expires.Equal(clk.t.Add(time.Hour)) {
			t.Errorf("lease after the peer's renewal: %+v", l)
		}
		// INIT-REBOOT of a known machine in the secondary's bucket whose
		// lease the primary made (while it served alone, say).
		known := macsIn(true, 1)[0]
		if _, err := a.db.CreateMachine(store.Machine{MAC: known.String(), Segment: "lab"}, store.Audit{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		rebootIP := mustAddr("10.77.0.120")
		if err := a.db.PutLease(store.Lease{Segment: "lab", MAC: known.String(), IP: rebootIP, Expires: clk.t.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if ack := b.send(t, initReboot(t, known, rebootIP)); !isType(ack, dhcpv4.MessageTypeAck) || fromIP(ack.YourIPAddr) != rebootIP {
			t.Fatalf("INIT-REBOOT of a known machine leased by the peer: %v, want ACK of %v", ack, rebootIP)
		}
		// A client the store has no lease of is not bound by a renewal.
		stranger := macsIn(false, 2)[1]
		if r := b.send(t, renewing(t, stranger, mustAddr("10.77.0.120"))); r != nil {
			t.Errorf("renewal of a lease nobody made: %v", r.MessageType())
		}
	})

	t.Run("failover", func(t *testing.T) {
		a, b, t0 := beatingPair(t, c, "failover/")
		// The secondary leases to a client of its own, then dies.
		gone := macsIn(true, 1)[0]
		_, goneIP := doraVia(t, []*pairSide{a, b}, gone)
		orphan := macsIn(true, 2)[1]
		if r := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, orphan)); r != nil {
			t.Fatalf("the primary answered the secondary's client while both live: %v", r.MessageType())
		}
		after := a.in.pair.after
		for s := 2 * time.Second; s <= after; s += time.Second {
			a.in.pair.step(t0.Add(s))
			if !a.in.pair.peerUp.Load() {
				t.Fatalf("peer taken for dead %v after its last beat, before failover_after %v", s-time.Second, after)
			}
		}
		a.in.pair.step(t0.Add(after + time.Second))
		if a.in.pair.peerUp.Load() {
			t.Fatalf("peer still alive after its heartbeat stood still for %v", after)
		}
		// Every client now, but never with the dead peer's lease (the
		// survivor reloaded it), even asked for it; its client keeps it.
		for _, mac := range macsIn(true, 45)[40:] {
			o := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(goneIP.AsSlice()))))
			if !isType(o, dhcpv4.MessageTypeOffer) || fromIP(o.YourIPAddr) == goneIP {
				t.Fatalf("the survivor's offer to %s: %v (the dead peer leased %v)", mac, o, goneIP)
			}
		}
		if o := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, gone)); !isType(o, dhcpv4.MessageTypeOffer) || fromIP(o.YourIPAddr) != goneIP {
			t.Fatalf("the dead peer's client: %v, want its address %v", o, goneIP)
		}
		for _, mac := range macsIn(true, 40)[2:] {
			_, ip := doraVia(t, []*pairSide{a}, mac)
			if ip == goneIP {
				t.Fatalf("the survivor leased the dead peer's lease %v to %s", ip, mac)
			}
		}
		// The peer comes back: its heartbeat moves, the split resumes.
		b.in.pair.step(t0.Add(after + time.Second))
		a.in.pair.step(t0.Add(after + 2*time.Second))
		if !a.in.pair.peerUp.Load() {
			t.Fatal("peer back, still serving alone")
		}
		if r := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, macsIn(true, 46)[45])); r != nil {
			t.Errorf("the secondary's client answered after the peer came back: %v", r.MessageType())
		}
	})

	t.Run("goodbye", func(t *testing.T) {
		a, b, t0 := beatingPair(t, c, "goodbye/")
		gone := macsIn(true, 1)[0]
		_, goneIP := doraVia(t, []*pairSide{a, b}, gone)
		// The secondary stops cleanly: at the survivor's next heartbeat,
		// a second after the peer's last beat (failover_after is 10 s),
		// it serves every client, with the peer's leases reloaded.
		b.in.pair.goodbye()
		a.in.pair.step(t0.Add(2 * time.Second))
		if a.in.pair.peerUp.Load() {
			t.Fatal("the peer said goodbye; the survivor still leaves it half the clients")
		}
		orphan := macsIn(true, 2)[1]
		if o := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, orphan, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(goneIP.AsSlice())))); !isType(o, dhcpv4.MessageTypeOffer) || fromIP(o.YourIPAddr) == goneIP {
			t.Fatalf("the survivor's offer to the stopped peer's client %s: %v (the peer leased %v)", orphan, o, goneIP)
		}
		// The peer starts again: its first beat takes the goodbye back.
		b.in.pair.step(t0.Add(3 * time.Second))
		a.in.pair.step(t0.Add(3 * time.Second))
		if !a.in.pair.peerUp.Load() {
			t.Fatal("the peer beats again after its goodbye; the survivor still serves alone")
		}
		if r := a.send(t, pkt(t, dhcpv4.MessageTypeDiscover, macsIn(true, 3)[2])); r != nil {
			t.Errorf("the secondary's client answered by the primary after the peer came back: %v", r.MessageType())
		}
	})

	t.Run("a declined live lease", func(t *testing.T) {
		// The declined record claims the address the client's live lease
		// held: the lease must let go first.
		a, b := newPair(t, c, "decline/", pairClock())
		mac := macsIn(false, 1)[0]
		_, ip := doraVia(t, []*pairSide{a, b}, mac)
		if err := a.byIf["veth0"].direct.alloc.decline(mac.String(), ip); err != nil {
			t.Fatal(err)
		}
		if _, err := a.db.GetLease("lab", mac.String()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the declining client's lease: %v, want none", err)
		}
		if d, err := a.db.GetLease("lab", declineKey(ip)); err != nil || !d.Declined || d.IP != ip {
			t.Errorf("declined record %+v, %v", d, err)
		}
		err := a.db.PutLease(store.Lease{Segment: "lab", MAC: macsIn(false, 2)[1].String(), IP: ip, Expires: time.Now().Add(time.Hour)})
		if !errors.Is(err, store.ErrAddressTaken) {
			t.Errorf("a lease of the declined address: %v, want ErrAddressTaken", err)
		}
	})

	t.Run("an address the other leased is NAKed and held", func(t *testing.T) {
		// Two servers that both allocate from the whole range (each
		// takes the other for dead) on one store.
		clk := pairClock()
		x := newPairSide(t, c, "taken/", clk, mustAddr("10.77.0.2"), nil)
		y := newPairSide(t, c, "taken/", clk, mustAddr("10.77.0.3"), nil)
		macs := macsIn(false, 3)
		_, ip := doraVia(t, []*pairSide{x}, macs[0])
		o := y.send(t, pkt(t, dhcpv4.MessageTypeDiscover, macs[1], dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice()))))
		if !isType(o, dhcpv4.MessageTypeOffer) || fromIP(o.YourIPAddr) != ip {
			t.Fatalf("setup: y should offer %v, which it does not know is leased: %v", ip, o)
		}
		nak := y.send(t, selecting(t, macs[1], o.ServerIdentifier(), o.YourIPAddr))
		if !isType(nak, dhcpv4.MessageTypeNak) {
			t.Fatalf("REQUEST of an address the other server leased: %v, want NAK", nak)
		}
		if l := storedLease(t, x.db, macs[0]); l.IP != ip {
			t.Errorf("the holder's lease changed: %+v", l)
		}
		// y knows now: no one else is offered the address.
		for _, mac := range append(macs[1:], macsIn(true, 5)...) {
			o := y.send(t, pkt(t, dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip.AsSlice()))))
			if fromIP(o.YourIPAddr) == ip {
				t.Fatalf("%v offered to %s after the NAK", ip, mac)
			}
		}
		checkNoAddressTwice(t, x.db)
	})

	t.Run("two servers ask for one address at once", func(t *testing.T) {
		clk := pairClock()
		x := newPairSide(t, c, "race/", clk, mustAddr("10.77.0.2"), nil)
		y := newPairSide(t, c, "race/", clk, mustAddr("10.77.0.3"), nil)
		xs, ys := macsIn(false, 50), macsIn(true, 50)
		var wg sync.WaitGroup
		for r := range 50 {
			want := netip.AddrFrom4([4]byte{10, 77, 0, byte(100 + r)})
			pair := [2]net.HardwareAddr{xs[r], ys[r]}
			var replies [2]*dhcpv4.DHCPv4
			for i, s := range []*pairSide{x, y} {
				o := s.send(t, pkt(t, dhcpv4.MessageTypeDiscover, pair[i], dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want.AsSlice()))))
				if fromIP(o.YourIPAddr) != want {
					t.Fatalf("round %d: %s offered %v, want %v", r, s.ip, o.YourIPAddr, want)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					wire, resp := onTheWire(t, selecting(t, pair[i], s.ip.AsSlice(), want.AsSlice()))
					replies[i] = s.byIf["veth0"].handle(wire, resp, netip.Addr{})
				}()
			}
			wg.Wait()
			acks := 0
			for _, rep := range replies {
				if isType(rep, dhcpv4.MessageTypeAck) {
					acks++
				} else if !isType(rep, dhcpv4.MessageTypeNak) {
					t.Fatalf("round %d: %v, want ACK or NAK", r, rep)
				}
			}
			if acks != 1 {
				t.Fatalf("round %d: %d ACKs for %v, want 1", r, acks, want)
			}
		}
		checkNoAddressTwice(t, x.db)
	})
}

func storedLease(t *testing.T, db *store.DB, mac net.HardwareAddr) store.Lease {
	t.Helper()
	l, err := db.GetLease("lab", mac.String())
	if err != nil {
		t.Fatalf("lease of %s: %v", mac, err)
	}
	return l
}

// checkNoAddressTwice: the store holds no address under two MACs.
func checkNoAddressTwice(t *testing.T, db *store.DB) {
	t.Helper()
	ls, err := db.ListLeases("lab")
	if err != nil {
		t.Fatal(err)
	}
	by := map[netip.Addr]string{}
	for _, l := range ls {
		if o, dup := by[l.IP]; dup {
			t.Errorf("%v leased to %s and %s", l.IP, o, l.MAC)
		}
		by[l.IP] = l.MAC
	}
}

// TestPairValidate: the settings Serve and check-config refuse.
func TestPairValidate(t *testing.T) {
	hb := &store.DB{}
	ok := Pair{Name: "a", Peer: "b", Heartbeats: hb}
	for _, tt := range []struct {
		name string
		edit func(*Pair)
		bad  bool
	}{
		{"defaults", func(*Pair) {}, false},
		{"secondary, 3s", func(p *Pair) { p.Role, p.FailoverAfter = Secondary, 3*time.Second }, false},
		{"no name", func(p *Pair) { p.Name = "" }, true},
		{"own name as peer", func(p *Pair) { p.Peer = "a" }, true},
		{"bad peer", func(p *Pair) { p.Peer = "b/c" }, true},
		{"role", func(p *Pair) { p.Role = Role(7) }, true},
		{"failover too short", func(p *Pair) { p.FailoverAfter = 2 * time.Second }, true},
		{"failover under three beats", func(p *Pair) { p.HeartbeatEvery, p.FailoverAfter = 2*time.Second, 5*time.Second }, true},
		{"no heartbeat store", func(p *Pair) { p.Heartbeats = nil }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			if err := p.Validate(); (err != nil) != tt.bad {
				t.Errorf("Validate() = %v, want error %v", err, tt.bad)
			}
		})
	}
	for _, s := range []string{"primary", "secondary"} {
		if r, err := ParseRole(s); err != nil || r.String() != s {
			t.Errorf("ParseRole(%q) = %v, %v", s, r, err)
		}
	}
	if _, err := ParseRole("tertiary"); err == nil {
		t.Error("ParseRole accepts tertiary")
	}
}
