package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

func TestAllocatorRequestStates(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), db, clk)
	own := dora(t, a, testMACn(1))
	other := dora(t, a, testMACn(2))
	free := mustAddr("10.77.0.150")
	if free == own.IP || free == other.IP {
		free = mustAddr("10.77.0.151")
	}
	otherServer := mustAddr("10.77.0.2")
	tests := []struct {
		name string
		r    leaseRequest
		want resultKind
		ip   netip.Addr
	}{
		{"init-reboot own address", leaseRequest{MAC: testMACn(1), Requested: own.IP}, resultAck, own.IP},
		{"init-reboot wrong address", leaseRequest{MAC: testMACn(1), Requested: free}, resultNak, netip.Addr{}},
		{"init-reboot wrong subnet", leaseRequest{MAC: testMACn(1), Requested: mustAddr("192.168.1.5")}, resultNak, netip.Addr{}},
		{"init-reboot unknown client", leaseRequest{MAC: testMACn(3), Requested: free}, resultSilent, netip.Addr{}},
		{"init-reboot unknown client, taken address", leaseRequest{MAC: testMACn(3), Requested: other.IP}, resultNak, netip.Addr{}},
		{"renew own address", leaseRequest{MAC: testMACn(1), CIAddr: own.IP}, resultAck, own.IP},
		{"renew someone else's address", leaseRequest{MAC: testMACn(1), CIAddr: other.IP}, resultNak, netip.Addr{}},
		{"renew outside the range", leaseRequest{MAC: testMACn(1), CIAddr: mustAddr("10.77.0.20")}, resultNak, netip.Addr{}},
		{"renew outside the subnet", leaseRequest{MAC: testMACn(1), CIAddr: mustAddr("10.9.0.20")}, resultNak, netip.Addr{}},
		{"rebind unknown client on a free address", leaseRequest{MAC: testMACn(4), CIAddr: free}, resultAck, free},
		{"selecting another server", leaseRequest{MAC: testMACn(5), ServerID: otherServer, Ours: srvIP, Requested: free}, resultSilent, netip.Addr{}},
		{"selecting without address", leaseRequest{MAC: testMACn(5), ServerID: srvIP, Ours: srvIP}, resultNak, netip.Addr{}},
		{"selecting a taken address", leaseRequest{MAC: testMACn(5), ServerID: srvIP, Ours: srvIP, Requested: other.IP}, resultNak, netip.Addr{}},
		{"no address at all", leaseRequest{MAC: testMACn(5)}, resultSilent, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.advance(time.Minute)
			before := storedLeases(t, db)[tt.r.MAC]
			res, err := a.request(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if res.Kind != tt.want {
				t.Fatalf("result %+v, want kind %d", res, tt.want)
			}
			after := storedLeases(t, db)[tt.r.MAC]
			if tt.want != resultAck {
				if after != before {
					t.Errorf("%v changed the stored lease: %+v -> %+v", tt.want, before, after)
				}
				return
			}
			if res.Lease.IP != tt.ip || after.IP != tt.ip || !after.Expires.Equal(clk.t.Add(time.Hour)) {
				t.Errorf("ack %+v, stored %+v, want %v until %v", res.Lease, after, tt.ip, clk.t.Add(time.Hour))
			}
		})
	}
	// The client that chose another server released our offer.
	a.mu.Lock()
	_, held := a.byMAC[testMACn(5)]
	a.mu.Unlock()
	if held {
		t.Errorf("offer kept for a client that selected another server")
	}
}

// failingLeases makes PutLease fail, to prove an ACK needs a durable lease.
type failingLeases struct {
	LeaseStore
	fail bool
}

func (f *failingLeases) PutLease(l store.Lease) error {
	if f.fail {
		return errors.New("disk on fire")
	}
	return f.LeaseStore.PutLease(l)
}

func TestAllocatorNoAckWithoutDurableLease(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	fl := &failingLeases{LeaseStore: db, fail: true}
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), fl, clk)
	mac := testMACn(1)
	ip, _ := a.offer(mac, netip.Addr{})
	res, err := a.request(leaseRequest{MAC: mac, ServerID: srvIP, Ours: srvIP, Requested: ip})
	if err == nil || res.Kind == resultAck {
		t.Fatalf("request with a failing store: %+v, %v; want an error and no ACK", res, err)
	}
	if n := len(storedLeases(t, db)); n != 0 {
		t.Fatalf("%d leases stored", n)
	}
	fl.fail = false
	if res, err := a.request(leaseRequest{MAC: mac, ServerID: srvIP, Ours: srvIP, Requested: ip}); err != nil || res.Kind != resultAck {
		t.Fatalf("retry: %+v %v", res, err)
	}
}

func TestAllocatorConcurrentClients(t *testing.T) {
	db, clk := openStore(t, t.TempDir()), newClock()
	a := newAlloc(t, labSegment("10.77.0.100", "10.77.0.199"), db, clk)
	const n = 100
	type got struct {
		mac string
		ip  netip.Addr
		err error
	}
	results := make(chan got, n)
	for i := range n {
		go func() {
			mac := testMACn(i)
			ip, err := a.offer(mac, netip.Addr{})
			if err == nil {
				var res leaseResult
				res, err = a.request(leaseRequest{MAC: mac, ServerID: srvIP, Ours: srvIP, Requested: ip})
				if err == nil && res.Kind != resultAck {
					err = fmt.Errorf("%+v", res)
				}
			}
			results <- got{mac, ip, err}
		}()
	}
	byIP := map[netip.Addr]string{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatalf("%s: %v", r.mac, r.err)
		}
		if other, dup := byIP[r.ip]; dup {
			t.Fatalf("%v given to %s and %s", r.ip, other, r.mac)
		}
		byIP[r.ip] = r.mac
	}
	if st := storedLeases(t, db); len(st) != n {
		t.Fatalf("%d leases stored, want %d", len(st), n)
	}
	if _, err := a.offer(testMACn(n), netip.Addr{}); !errors.Is(err, errExhausted) {
		t.Errorf("101st client in a 100-address range: %v", err)
	}
}
