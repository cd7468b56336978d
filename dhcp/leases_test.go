package dhcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// clock is a settable time source shared by allocator and test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }
func mustAddr(s string) netip.Addr       { return netip.MustParseAddr(s) }
func testMACn(i int) string              { return fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff) }
func openStore(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var srvIP = mustAddr("10.77.0.1")

func labSegment(first, last string) Segment {
	return Segment{
		Name: "lab", Interface: "veth0", Subnet: netip.MustParsePrefix("10.77.0.0/24"),
		RangeStart: mustAddr(first), RangeEnd: mustAddr(last), Router: srvIP, LeaseTime: time.Hour,
	}
}

func newAlloc(t testing.TB, seg Segment, st LeaseStore, clk *clock) *allocator {
	t.Helper()
	a, err := newAllocator(&seg, []netip.Addr{srvIP}, st, clk.now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dora runs DISCOVER/OFFER then REQUEST(selecting)/ACK and returns the lease.
func dora(t *testing.T, a *allocator, mac string) store.Lease {
	t.Helper()
	ip, err := a.offer(mac, netip.Addr{})
	if err != nil {
		t.Fatalf("offer %s: %v", mac, err)
	}
	res, err := a.request(leaseRequest{MAC: mac, ServerID: srvIP, Ours: srvIP, Requested: ip})
	if err != nil || res.Kind != resultAck {
		t.Fatalf("request %s %v: %+v, %v", mac, ip, res, err)
	}
	return res.Lease
}

func storedLeases(t *testing.T, db *store.DB) map[string]store.Lease {
	t.Helper()
	ls, err := db.ListLeases("lab")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Lease{}
	for _, l := range ls {
		out[l.MAC] = l
	}
	return out
}

func TestAllocatorDORAIsDurableAndStable(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), db, clk)
	mac := testMACn(1)
	ip1, err := a.offer(mac, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if ip2, _ := a.offer(mac, netip.Addr{}); ip2 != ip1 {
		t.Fatalf("second offer %v, first %v", ip2, ip1)
	}
	if n := len(storedLeases(t, db)); n != 0 {
		t.Fatalf("an offer wrote %d leases; offers must not write", n)
	}
	l := dora(t, a, mac)
	if l.IP != ip1 || !l.Expires.Equal(clk.t.Add(time.Hour)) {
		t.Fatalf("lease %+v, want %v until %v", l, ip1, clk.t.Add(time.Hour))
	}
	got := storedLeases(t, db)[mac]
	if got.IP != ip1 || !got.Expires.Equal(l.Expires) {
		t.Fatalf("stored lease %+v, acked %+v", got, l)
	}

	// The first address is a function of the MAC alone: a fresh allocator
	// on an empty store offers the same one.
	other := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), openStore(t, t.TempDir()), clk)
	if ip, _ := other.offer(mac, netip.Addr{}); ip != ip1 {
		t.Errorf("fresh allocator offers %v, want %v", ip, ip1)
	}
	// Different MACs spread over the range rather than piling at its start.
	seen := map[netip.Addr]bool{}
	for i := range 20 {
		ip, _ := other.offer(testMACn(100+i), netip.Addr{})
		seen[ip] = true
	}
	if len(seen) != 20 {
		t.Errorf("20 MACs got %d distinct addresses", len(seen))
	}
}

func TestAllocatorNeverGivesReserved(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	// Range covers the network address, the router/server and the broadcast.
	a := newAlloc(t, labSegment("10.77.0.0", "10.77.0.255"), db, clk)
	for i := range 253 {
		ip, err := a.offer(testMACn(i), netip.Addr{})
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		if ip == mustAddr("10.77.0.0") || ip == srvIP || ip == mustAddr("10.77.0.255") {
			t.Fatalf("offered reserved address %v", ip)
		}
	}
	if _, err := a.offer(testMACn(999), netip.Addr{}); !errors.Is(err, errExhausted) {
		t.Fatalf("254th offer: %v, want exhausted", err)
	}
}

func TestAllocatorExhaustionAndReclaim(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.103"), db, clk)
	leases := map[string]store.Lease{}
	for i := range 4 {
		leases[testMACn(i)] = dora(t, a, testMACn(i))
		clk.advance(time.Minute) // lease i expires i minutes after lease 0
	}
	if _, err := a.offer(testMACn(9), netip.Addr{}); !errors.Is(err, errExhausted) {
		t.Fatalf("offer into full range: %v, want exhausted", err)
	}
	// All four expire; the newcomer gets the address expired longest ago.
	clk.advance(2 * time.Hour)
	l := dora(t, a, testMACn(9))
	if l.IP != leases[testMACn(0)].IP {
		t.Fatalf("reclaimed %v, want the oldest expired %v", l.IP, leases[testMACn(0)].IP)
	}
	st := storedLeases(t, db)
	if _, ok := st[testMACn(0)]; ok {
		t.Errorf("displaced lease of %s still stored", testMACn(0))
	}
	// The other expired MACs keep their addresses (nobody took them).
	for i := 1; i < 4; i++ {
		if ip, _ := a.offer(testMACn(i), netip.Addr{}); ip != leases[testMACn(i)].IP {
			t.Errorf("%s got %v after expiry, had %v", testMACn(i), ip, leases[testMACn(i)].IP)
		}
	}
	// The displaced MAC finds the range full of held offers and leases.
	if _, err := a.offer(testMACn(0), netip.Addr{}); !errors.Is(err, errExhausted) {
		t.Errorf("displaced MAC: %v, want exhausted", err)
	}
}

func TestAllocatorOfferHoldExpires(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.100"), db, clk)
	ip, _ := a.offer(testMACn(1), netip.Addr{})
	if _, err := a.offer(testMACn(2), netip.Addr{}); !errors.Is(err, errExhausted) {
		t.Fatalf("address held by an offer was offered again: %v", err)
	}
	clk.advance(offerHold + time.Second)
	if got, err := a.offer(testMACn(2), netip.Addr{}); err != nil || got != ip {
		t.Fatalf("after the hold: %v, %v; want %v", got, err, ip)
	}
	// The first client's late REQUEST is refused: the address moved on.
	res, _ := a.request(leaseRequest{MAC: testMACn(1), ServerID: srvIP, Ours: srvIP, Requested: ip})
	if res.Kind != resultNak {
		t.Errorf("late request: %+v, want NAK", res)
	}
}

func TestAllocatorAffinityAndRelease(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), db, clk)
	mac := testMACn(1)
	l := dora(t, a, mac)
	if err := a.release(mac, l.IP); err != nil {
		t.Fatal(err)
	}
	if got := storedLeases(t, db)[mac]; !got.Expires.Equal(clk.t) {
		t.Fatalf("released lease stored as %+v, want expiring now", got)
	}
	// Others do not get the released address while free ones remain.
	for i := 2; i < 60; i++ {
		if ip, _ := a.offer(testMACn(i), netip.Addr{}); ip == l.IP {
			t.Fatalf("%s got the released address of %s", testMACn(i), mac)
		}
	}
	clk.advance(3 * time.Hour)
	if got := dora(t, a, mac); got.IP != l.IP {
		t.Errorf("after release and expiry got %v, want %v", got.IP, l.IP)
	}
	// A release naming someone else's address changes nothing.
	if err := a.release(testMACn(2), l.IP); err != nil {
		t.Fatal(err)
	}
	if got := storedLeases(t, db)[mac]; !got.Expires.After(clk.t) {
		t.Errorf("foreign release ended the lease: %+v", got)
	}
}

func TestAllocatorDecline(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.101"), db, clk)
	mac := testMACn(1)
	l := dora(t, a, mac)
	if err := a.decline(mac, l.IP); err != nil {
		t.Fatal(err)
	}
	st := storedLeases(t, db)
	if _, ok := st[mac]; ok {
		t.Errorf("declining client's lease still stored")
	}
	d := st[declineKey(l.IP)]
	if !d.Declined || d.IP != l.IP || !d.Expires.Equal(clk.t.Add(time.Hour)) {
		t.Fatalf("declined record %+v", d)
	}
	ip, err := a.offer(mac, netip.Addr{})
	if err != nil || ip == l.IP {
		t.Fatalf("after decline offered %v, %v", ip, err)
	}
	clk.advance(offerHold + time.Second)
	// While declined, the address is never given, even with the range full.
	for i := 2; i < 5; i++ {
		if got, err := a.offer(testMACn(i), l.IP); err == nil && got == l.IP {
			t.Fatalf("declined address offered to %s", testMACn(i))
		}
		clk.advance(offerHold + time.Second)
	}
	// Survives a restart.
	b := newAlloc(t, labSegment("10.77.0.100", "10.77.0.101"), db, clk)
	if got, err := b.offer(testMACn(7), l.IP); err == nil && got == l.IP {
		t.Fatalf("declined address offered after reload")
	}
	clk.advance(time.Hour)
	clk.advance(offerHold)
	if got, err := b.offer(testMACn(8), l.IP); err != nil || got != l.IP {
		t.Errorf("after the decline period: %v, %v; want %v", got, err, l.IP)
	}
}

func TestAllocatorRestartKeepsAddresses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	clk := newClock()
	seg := labSegment("10.77.0.100", "10.77.0.199")
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := newAlloc(t, seg, db, clk)
	mac := testMACn(1)
	hashIP, _ := a.offer(mac, netip.Addr{})
	// Bind the MAC to an address that is not its hash choice, so that only
	// the stored lease can bring it back.
	want := mustAddr("10.77.0.123")
	if want == hashIP {
		want = mustAddr("10.77.0.124")
	}
	res, err := a.request(leaseRequest{MAC: mac, ServerID: srvIP, Ours: srvIP, Requested: want})
	if err != nil || res.Kind != resultAck || res.Lease.IP != want {
		t.Fatalf("request %v: %+v %v", want, res, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db2 := openStore(t, dir)
	b := newAlloc(t, seg, db2, clk)
	if got, _ := b.offer(mac, netip.Addr{}); got != want {
		t.Fatalf("after restart offered %v, want %v", got, want)
	}
	clk.advance(10 * time.Minute)
	res, err = b.request(leaseRequest{MAC: mac, CIAddr: want})
	if err != nil || res.Kind != resultAck {
		t.Fatalf("renew after restart: %+v %v", res, err)
	}
}

func TestAllocatorLoadResolvesConflicts(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	ip := mustAddr("10.77.0.110")
	older := store.Lease{Segment: "lab", MAC: testMACn(1), IP: ip, Expires: clk.t.Add(-time.Hour)}
	newer := store.Lease{Segment: "lab", MAC: testMACn(2), IP: ip, Expires: clk.t.Add(time.Hour)}
	outside := store.Lease{Segment: "lab", MAC: testMACn(3), IP: mustAddr("10.77.0.5"), Expires: clk.t.Add(time.Hour)}
	for _, l := range []store.Lease{older, newer, outside} {
		if err := db.PutLease(l); err != nil {
			t.Fatal(err)
		}
	}
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), db, clk)
	if got, _ := a.offer(testMACn(2), netip.Addr{}); got != ip {
		t.Errorf("later lease lost: offered %v", got)
	}
	if got, _ := a.offer(testMACn(1), netip.Addr{}); got == ip {
		t.Errorf("older conflicting lease kept its address")
	}
	res, _ := a.request(leaseRequest{MAC: testMACn(3), CIAddr: outside.IP})
	if res.Kind != resultNak {
		t.Errorf("renewal of a lease outside the range: %+v, want NAK", res)
	}
}
