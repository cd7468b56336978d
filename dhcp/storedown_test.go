package dhcp

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// downStore is the fixture's Badger store with an outage switch: while
// down, every call the DHCP server makes fails as an etcd store's does
// without a quorum (an error wrapping store.ErrUnavailable). A fake at
// unit level; test/ha_test.go stops a real etcd.
type downStore struct {
	*store.DB
	down  atomic.Bool
	calls atomic.Int64 // calls refused while down
}

func (s *downStore) refuse(op string) error {
	if !s.down.Load() {
		return nil
	}
	s.calls.Add(1)
	return fmt.Errorf("etcd %s: %w: context deadline exceeded", op, store.ErrUnavailable)
}

func (s *downStore) GetMachine(mac string) (store.Machine, error) {
	if err := s.refuse("get"); err != nil {
		return store.Machine{}, err
	}
	return s.DB.GetMachine(mac)
}

func (s *downStore) CreateMachine(m store.Machine, a store.Audit) (store.Machine, error) {
	if err := s.refuse("txn"); err != nil {
		return store.Machine{}, err
	}
	return s.DB.CreateMachine(m, a)
}

func (s *downStore) RecordSighting(mac string, si store.Sighting) (bool, error) {
	if err := s.refuse("txn"); err != nil {
		return false, err
	}
	return s.DB.RecordSighting(mac, si)
}

func (s *downStore) PutLease(l store.Lease) error {
	if err := s.refuse("txn"); err != nil {
		return err
	}
	return s.DB.PutLease(l)
}

func (s *downStore) GetLease(seg, mac string) (store.Lease, error) {
	if err := s.refuse("get"); err != nil {
		return store.Lease{}, err
	}
	return s.DB.GetLease(seg, mac)
}

func (s *downStore) DeleteLease(seg, mac string) error {
	if err := s.refuse("txn"); err != nil {
		return err
	}
	return s.DB.DeleteLease(seg, mac)
}

func (s *downStore) ListLeases(seg string) ([]store.Lease, error) {
	if err := s.refuse("range"); err != nil {
		return nil, err
	}
	return s.DB.ListLeases(seg)
}

// TestHandlerStoreUnavailable: while the store is unavailable, a client
// with a live lease is renewed (RENEWING, REBINDING, INIT-REBOOT) from
// memory for the time its stored lease has left, with its address and
// the segment's options and no boot file, and nothing is written; every
// other request gets no reply and is counted as store_unavailable. Once
// the store is back, renewals are written for a whole lease time again.
func TestHandlerStoreUnavailable(t *testing.T) {
	ds := &downStore{}
	f := newFixture(t, func(s *Server) {
		ds.DB = s.Leases.(*store.DB)
		s.Leases, s.Machines = ds, ds
	})
	l := f.byIf["veth0"]
	pxe := []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC)}
	dora := func(mac net.HardwareAddr) netip.Addr {
		t.Helper()
		offer := f.send(t, l, pkt(t, dhcpv4.MessageTypeDiscover, mac, pxe...))
		if !isType(offer, dhcpv4.MessageTypeOffer) {
			t.Fatalf("%v: no OFFER: %v", mac, offer)
		}
		ack := f.send(t, l, pkt(t, dhcpv4.MessageTypeRequest, mac, append(pxe,
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))...))
		if !isType(ack, dhcpv4.MessageTypeAck) {
			t.Fatalf("%v: no ACK: %v", mac, ack)
		}
		return fromIP(ack.YourIPAddr)
	}
	live, expired, fresh := macsIn(false, 3)[0], macsIn(false, 3)[1], macsIn(false, 3)[2]
	expiredIP := dora(expired)
	f.clk.advance(61 * time.Minute) // past expired's one-hour lease
	liveIP := dora(live)
	stored, err := f.db.GetLease("lab", live.String())
	if err != nil {
		t.Fatal(err)
	}
	f.clk.advance(20 * time.Minute)
	left := stored.Expires.Sub(f.clk.t) // 40 minutes

	ds.down.Store(true)
	rebinding := func(mac net.HardwareAddr, ip netip.Addr) *dhcpv4.DHCPv4 {
		p := renewing(t, mac, ip)
		p.SetBroadcast()
		return p
	}
	cases := []struct {
		name string
		req  *dhcpv4.DHCPv4
		ack  bool
	}{
		{"renewing, live lease", renewing(t, live, liveIP), true},
		{"rebinding, live lease", rebinding(live, liveIP), true},
		{"init-reboot, live lease", initReboot(t, live, liveIP), true},
		{"renewing, expired lease", renewing(t, expired, expiredIP), false},
		{"init-reboot, expired lease", initReboot(t, expired, expiredIP), false},
		{"renewing, unknown client", renewing(t, fresh, mustAddr("10.77.0.150")), false},
		{"discover, new client", pkt(t, dhcpv4.MessageTypeDiscover, fresh, pxe...), false},
		{"discover, live lease holder", pkt(t, dhcpv4.MessageTypeDiscover, live, pxe...), false},
		{"selecting, new client", selecting(t, fresh, srvIP.AsSlice(), net.IPv4(10, 77, 0, 150)), false},
		{"inform", pkt(t, dhcpv4.MessageTypeInform, live, func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = liveIP.AsSlice() }), false},
	}
	dropped := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reply := f.send(t, l, c.req)
			if !c.ack {
				if reply != nil {
					t.Fatalf("store down: got %v, want no reply", reply.MessageType())
				}
				dropped++
				return
			}
			if !isType(reply, dhcpv4.MessageTypeAck) {
				t.Fatalf("store down: got %v, want an ACK from memory", reply)
			}
			checks := []struct {
				what string
				ok   bool
			}{
				{"yiaddr", fromIP(reply.YourIPAddr) == liveIP},
				{"lease time is what the stored lease has left", reply.IPAddressLeaseTime(0) == left},
				{"option 58", reply.IPAddressRenewalTime(0) == left/2},
				{"option 1", net.IP(reply.SubnetMask()).String() == "255.255.255.0"},
				{"option 3", len(reply.Router()) == 1 && reply.Router()[0].Equal(net.IPv4(10, 77, 0, 1))},
				{"option 6", len(reply.DNS()) == 1},
				{"option 54", reply.ServerIdentifier().Equal(srvIP.AsSlice())},
				{"no boot file", reply.BootFileName == "" && reply.BootFileNameOption() == ""},
			}
			for _, ch := range checks {
				if !ch.ok {
					t.Errorf("ACK from memory: %s wrong:\n%s", ch.what, reply.Summary())
				}
			}
		})
	}
	if got := drops(f, dropStoreDown); got != float64(dropped) {
		t.Errorf("drops{store_unavailable} = %v, want %d", got, dropped)
	}
	if got := testutil.ToFloat64(f.in.m.keptRenewals); got != 3 {
		t.Errorf("renewed_from_memory_total = %v, want 3", got)
	}
	if ds.calls.Load() == 0 {
		t.Fatal("the outage was never seen by the server")
	}
	ds.down.Store(false)
	if got, _ := f.db.GetLease("lab", live.String()); !got.Expires.Equal(stored.Expires) {
		t.Errorf("stored lease changed during the outage: expires %v, was %v", got.Expires, stored.Expires)
	}
	if _, err := f.db.GetMachine(fresh.String()); err == nil {
		t.Errorf("a record was created for a new client during the outage")
	}

	// Back: a renewal is written for a whole lease time, a new client is served.
	reply := f.send(t, l, renewing(t, live, liveIP))
	if !isType(reply, dhcpv4.MessageTypeAck) || reply.IPAddressLeaseTime(0) != time.Hour {
		t.Fatalf("renewal with the store back: %v, want an ACK for an hour", reply)
	}
	if got, _ := f.db.GetLease("lab", live.String()); !got.Expires.Equal(f.clk.t.Add(time.Hour)) {
		t.Errorf("renewal with the store back not written: expires %v", got.Expires)
	}
	dora(fresh)
}

// fakeBeats is a pair's heartbeat store whose reads can fail as an
// unavailable store's do.
type fakeBeats struct {
	peer uint64
	down bool
}

func (b *fakeBeats) Heartbeat(string) error {
	if b.down {
		return fmt.Errorf("etcd txn: %w", store.ErrUnavailable)
	}
	return nil
}

func (b *fakeBeats) HeartbeatValue(string) (store.HeartbeatState, error) {
	if b.down {
		return store.HeartbeatState{}, fmt.Errorf("etcd get: %w", store.ErrUnavailable)
	}
	return store.HeartbeatState{Count: b.peer}, nil
}

func (b *fakeBeats) HeartbeatStop(string) error { return nil }

// TestPairStoreDownKeepsSplit: an appliance that cannot read the peer's
// heartbeat (its store is down) does not take the peer for dead, however
// long that lasts: it could not lease the peer's clients anyway. Once it
// reads again, a peer whose counter has not moved is dead failover_after
// after the last heartbeat it could not read, not at once.
func TestPairStoreDownKeepsSplit(t *testing.T) {
	beats := &fakeBeats{peer: 1}
	start := time.Now()
	ps := newPairState(Pair{Name: "a", Peer: "b", FailoverAfter: 3 * time.Second, Heartbeats: beats}, nil, slog.New(slog.DiscardHandler), start)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ps.step(at(0))
	beats.down = true
	for s := 1; s <= 30; s++ {
		ps.step(at(time.Duration(s) * time.Second))
		if !ps.peerUp.Load() {
			t.Fatalf("%d s into the outage: the peer was taken for dead", s)
		}
	}
	beats.down = false // the peer's counter did not move: it is dead
	ps.step(at(31 * time.Second))
	ps.step(at(32 * time.Second))
	if !ps.peerUp.Load() {
		t.Fatalf("2 s after the last unreadable heartbeat: the peer was taken for dead before failover_after")
	}
	ps.step(at(33 * time.Second))
	if ps.peerUp.Load() {
		t.Fatalf("failover_after after the last unreadable heartbeat, the counter still: the peer is still taken for alive")
	}
}
