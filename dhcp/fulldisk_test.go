package dhcp

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// TestAllocatorOnFullDisk: while the store refuses writes (its data disk
// is full), a client with a live lease is renewed from memory for the time
// its stored lease has left, and nothing is written; a client without one
// gets no offer; once space is back, renewals are written again.
func TestAllocatorOnFullDisk(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 40)
	db, err := store.Open(t.TempDir(), store.Options{
		SpaceReserve: 1 << 20,
		FreeSpace:    func(string) (int64, error) { return free.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := newClock()
	a := newAlloc(t, labSegment("10.77.0.10", "10.77.0.20"), db, clk)
	held := dora(t, a, testMACn(1))
	clk.advance(20 * time.Minute)

	free.Store(0)
	if err := a.refusesNew(testMACn(2)); !errors.Is(err, store.ErrNoSpace) {
		t.Errorf("a new client on a full disk: refusesNew = %v, want ErrNoSpace", err)
	}
	if err := a.refusesNew(testMACn(1)); err != nil {
		t.Errorf("the lease holder on a full disk: refusesNew = %v, want nil (its renewal is answered)", err)
	}
	res, err := a.request(leaseRequest{MAC: testMACn(1), Ours: srvIP, CIAddr: held.IP})
	if err != nil || res.Kind != resultAck || !res.Kept {
		t.Fatalf("renewal on a full disk: %+v, %v; want an ACK kept from memory", res, err)
	}
	if !res.Lease.Expires.Equal(held.Expires) || res.Lease.IP != held.IP {
		t.Errorf("renewed from memory: %v until %v, want the stored %v until %v", res.Lease.IP, res.Lease.Expires, held.IP, held.Expires)
	}
	if got := storedLeases(t, db)[testMACn(1)]; !got.Expires.Equal(held.Expires) {
		t.Errorf("stored lease changed on a full disk: expires %v, want %v", got.Expires, held.Expires)
	}
	ip, err := a.offer(testMACn(2), held.IP)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.request(leaseRequest{MAC: testMACn(2), ServerID: srvIP, Ours: srvIP, Requested: ip}); !errors.Is(err, store.ErrNoSpace) {
		t.Errorf("a new client's REQUEST on a full disk: %v, want ErrNoSpace (no ACK)", err)
	}

	free.Store(1 << 40)
	res, err = a.request(leaseRequest{MAC: testMACn(1), Ours: srvIP, CIAddr: held.IP})
	if err != nil || res.Kind != resultAck || res.Kept {
		t.Fatalf("renewal with space again: %+v, %v; want a written ACK", res, err)
	}
	if got := storedLeases(t, db)[testMACn(1)]; !got.Expires.After(held.Expires) {
		t.Errorf("renewal with space again not written: expires %v, was %v", got.Expires, held.Expires)
	}
}
