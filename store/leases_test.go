package store

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

func TestLeases(t *testing.T) {
	db, clk, _ := openTest(t)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	exp := clk.Now().Add(time.Hour).UTC()
	leases := []Lease{
		{Segment: "lab", MAC: mac(2), IP: ip("10.77.0.101"), Expires: exp},
		{Segment: "lab", MAC: mac(1), IP: ip("10.77.0.100"), Hostname: "a", Expires: exp},
		{Segment: "lab2", MAC: mac(1), IP: ip("10.78.0.100"), Expires: exp, Declined: true},
	}
	for _, l := range leases {
		if err := db.PutLease(l); err != nil {
			t.Fatal(err)
		}
	}
	// Replacing a lease keeps one record per segment and MAC.
	leases[0].IP = ip("10.77.0.150")
	if err := db.PutLease(leases[0]); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		segment string
		want    []Lease
	}{
		{"", []Lease{leases[1], leases[0], leases[2]}},
		{"lab", []Lease{leases[1], leases[0]}},
		{"lab2", []Lease{leases[2]}},
		{"la", nil}, // a prefix of a segment name is another segment
	} {
		t.Run("list "+tt.segment, func(t *testing.T) {
			got, err := db.ListLeases(tt.segment)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d leases %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				w := tt.want[i]
				if got[i].MAC != w.MAC || got[i].Segment != w.Segment || got[i].IP != w.IP ||
					!got[i].Expires.Equal(w.Expires) || got[i].Declined != w.Declined || got[i].Hostname != w.Hostname {
					t.Errorf("lease %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}

	if err := db.DeleteLease("lab", mac(1)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.ListLeases("lab"); len(got) != 1 || got[0].MAC != mac(2) {
		t.Errorf("after delete: %+v", got)
	}
	if got, _ := db.ListLeases("lab2"); len(got) != 1 {
		t.Errorf("delete in lab touched lab2: %+v", got)
	}
}

func TestLeaseErrors(t *testing.T) {
	db, _, _ := openTest(t)
	good := Lease{Segment: "lab", MAC: mac(1), IP: netip.MustParseAddr("10.0.0.1")}
	bad := func(f func(*Lease)) Lease { l := good; f(&l); return l }
	for name, l := range map[string]Lease{
		"no segment":       bad(func(l *Lease) { l.Segment = "" }),
		"slash in segment": bad(func(l *Lease) { l.Segment = "a/b" }),
		"bad MAC":          bad(func(l *Lease) { l.MAC = "01:02" }),
		"no IP":            bad(func(l *Lease) { l.IP = netip.Addr{} }),
	} {
		t.Run(name, func(t *testing.T) {
			if err := db.PutLease(l); !errors.Is(err, ErrInvalid) {
				t.Errorf("PutLease = %v, want ErrInvalid", err)
			}
		})
	}
	if got, _ := db.ListLeases(""); len(got) != 0 {
		t.Errorf("refused leases were stored: %+v", got)
	}
	for _, tt := range []struct {
		segment, mac string
		want         error
	}{{"lab", mac(1), ErrNotFound}, {"", mac(1), ErrInvalid}, {"lab", "zz", ErrInvalid}} {
		if err := db.DeleteLease(tt.segment, tt.mac); !errors.Is(err, tt.want) {
			t.Errorf("DeleteLease(%q, %q) = %v, want %v", tt.segment, tt.mac, err, tt.want)
		}
	}
	if _, err := db.ListLeases("a/b"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ListLeases(a/b) = %v, want ErrInvalid", err)
	}
}

// BenchmarkPutLease measures synced lease writes from concurrent callers
// (the DHCP server's pattern: one goroutine per packet).
func BenchmarkPutLease(b *testing.B) {
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var n atomic.Uint32
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			l := Lease{Segment: "lab", MAC: mac(int(i % 60000)), IP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
			if err := db.PutLease(l); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// claimsAgree checks the claim rule over everything stored: every lease's
// address is claimed by its MAC, every claim names a lease on its address,
// and no address has two leases.
func claimsAgree(t *testing.T, db *DB) (leases int) {
	t.Helper()
	claims := map[string]string{}
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("la/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := kv.ValueCopy(it)
			if err != nil {
				return err
			}
			claims[string(it.Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all, err := db.ListLeases("")
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[string]string{}
	for _, l := range all {
		ck := string(claimKey(l.Segment, l.IP))
		if o, dup := byAddr[ck]; dup {
			t.Errorf("%v on %s is leased to both %s and %s", l.IP, l.Segment, o, l.MAC)
		}
		byAddr[ck] = l.MAC
		if claims[ck] != l.MAC {
			t.Errorf("lease %s/%s on %v: claim %s = %q, want the lease's MAC", l.Segment, l.MAC, l.IP, ck, claims[ck])
		}
	}
	for ck, mac := range claims {
		if byAddr[ck] != mac {
			t.Errorf("claim %s = %s without that MAC's lease on the address", ck, mac)
		}
	}
	return len(all)
}

// TestLeaseClaims: a live lease keeps its address from every other MAC
// (ErrAddressTaken, nothing written); renewals, moves, expiry, declines
// and deletion keep every claim in step with the leases.
func TestLeaseClaims(t *testing.T) {
	db, clk, _ := openTest(t)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	hour := clk.Now().Add(time.Hour)
	lease := func(m int, addr string, exp time.Time) Lease {
		return Lease{Segment: "lab", MAC: mac(m), IP: ip(addr), Expires: exp}
	}
	decline := Lease{Segment: "lab", MAC: "03:00:0a:4d:00:09", IP: ip("10.77.0.9"), Expires: hour, Declined: true}
	steps := []struct {
		name  string
		put   *Lease
		del   string // MAC whose lease is deleted
		taken string // the holder PutLease must name; "" for success
	}{
		{name: "first lease claims", put: &Lease{Segment: "lab", MAC: mac(1), IP: ip("10.77.0.1"), Expires: hour}},
		{name: "another MAC, live holder", put: ptr(lease(2, "10.77.0.1", hour)), taken: mac(1)},
		{name: "same address in another segment", put: &Lease{Segment: "lab2", MAC: mac(2), IP: ip("10.77.0.1"), Expires: hour}},
		{name: "renewal", put: ptr(lease(1, "10.77.0.1", hour.Add(time.Hour)))},
		{name: "move releases the old address", put: ptr(lease(1, "10.77.0.2", hour))},
		{name: "the released address goes to another", put: ptr(lease(2, "10.77.0.1", hour))},
		{name: "a released lease (expiring now) is taken over", put: ptr(lease(2, "10.77.0.1", clk.Now()))},
		{name: "by a third MAC", put: ptr(lease(3, "10.77.0.1", hour))},
		{name: "a declined address is held", put: &decline},
		{name: "against a client", put: ptr(lease(4, "10.77.0.9", hour)), taken: decline.MAC},
		{name: "deletion frees", del: mac(3)},
		{name: "the freed address", put: ptr(lease(4, "10.77.0.1", hour))},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var err error
			if s.put != nil {
				err = db.PutLease(*s.put)
			} else {
				err = db.DeleteLease("lab", s.del)
			}
			var te *AddressTakenError
			switch {
			case s.taken == "" && err != nil:
				t.Fatal(err)
			case s.taken != "" && (!errors.As(err, &te) || !errors.Is(err, ErrAddressTaken) || !errors.Is(err, ErrTaken)):
				t.Fatalf("PutLease = %v, want an *AddressTakenError", err)
			case s.taken != "" && (te.By != s.taken || te.IP != s.put.IP || !te.Until.Equal(hour)):
				t.Fatalf("taken error %+v, want held by %s until %v", te, s.taken, hour)
			case s.taken != "":
				if _, err := db.GetLease("lab", s.put.MAC); !errors.Is(err, ErrNotFound) {
					t.Errorf("a refused lease was written: %v", err)
				}
			}
			claimsAgree(t, db)
		})
	}
	// Expiry at the store's clock: the holder's record goes with its claim.
	clk.Add(2 * time.Hour)
	if err := db.PutLease(lease(5, "10.77.0.2", clk.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetLease("lab", mac(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("the expired holder's lease after a take-over: %v, want ErrNotFound", err)
	}
	if n := claimsAgree(t, db); n != 4 {
		t.Errorf("%d leases stored, want 4", n)
	}
	if err := db.DeleteLease("lab", mac(5)); err != nil {
		t.Fatal(err)
	}
	claimsAgree(t, db)
}

func ptr[T any](v T) *T { return &v }

// TestLeaseBatchResults: leases committed together each get their own
// answer; one refused does not fail the others, and two MACs asking for
// one free address in one batch get it once.
func TestLeaseBatchResults(t *testing.T) {
	db, clk, _ := openTest(t)
	exp := clk.Now().Add(time.Hour)
	if err := db.PutLease(Lease{Segment: "lab", MAC: mac(1000), IP: netip.MustParseAddr("10.77.1.0"), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// i and i+n want one address; address 0 is mac(1000)'s.
			errs[i] = db.PutLease(Lease{Segment: "lab", MAC: mac(i), IP: netip.AddrFrom4([4]byte{10, 77, 1, byte(i % n)}), Expires: exp})
		}()
	}
	wg.Wait()
	for i := range n {
		a, b := errs[i], errs[i+n]
		switch {
		case i == 0 && (!errors.Is(a, ErrAddressTaken) || !errors.Is(b, ErrAddressTaken)):
			t.Errorf("address of a live lease: %v / %v, want both taken", a, b)
		case i > 0 && (a == nil) == (b == nil):
			t.Errorf("address %d: %v / %v, want exactly one lease", i, a, b)
		case i > 0 && !errors.Is(errors.Join(a, b), ErrAddressTaken):
			t.Errorf("address %d: %v / %v, the loser is not ErrAddressTaken", i, a, b)
		}
	}
	if got := claimsAgree(t, db); got != n {
		t.Errorf("%d leases stored, want %d", got, n)
	}
}

// TestLeaseClaimsSharedStores: two appliances on one etcd lease one
// address to two MACs at the same moment, round after round: exactly one
// of them gets it every time, and the store never holds the address twice.
func TestLeaseClaimsSharedStores(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := openShared(t, c, "pair/"), openShared(t, c, "pair/")
	exp := time.Now().Add(time.Hour)
	const rounds = 300
	var wg sync.WaitGroup
	wins := make([][2]error, rounds)
	for r := range rounds {
		ip := netip.AddrFrom4([4]byte{10, 80, byte(r >> 8), byte(r)})
		for side, db := range []*DB{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wins[r][side] = db.PutLease(Lease{Segment: "lab", MAC: mac(2*r + side), IP: ip, Expires: exp})
			}()
		}
		if r%50 == 49 {
			wg.Wait() // rounds run 100 leases at a time, in batches on both sides
		}
	}
	wg.Wait()
	won := [2]int{}
	for r, w := range wins {
		if (w[0] == nil) == (w[1] == nil) {
			t.Fatalf("round %d: %v / %v, want exactly one lease", r, w[0], w[1])
		}
		for side, err := range w {
			if err == nil {
				won[side]++
			} else if !errors.Is(err, ErrAddressTaken) {
				t.Fatalf("round %d: the loser got %v, want ErrAddressTaken", r, err)
			}
		}
	}
	if n := claimsAgree(t, a); n != rounds {
		t.Errorf("%d leases stored for %d addresses", n, rounds)
	}
	t.Logf("%d rounds: A won %d, B won %d", rounds, won[0], won[1])
}

// TestMigrateSchema5 opens a schema 4 database (leases without claims,
// one address under two records) and finds every address claimed by its
// later lease, the other record gone; the build runs again safely.
func TestMigrateSchema5(t *testing.T) {
	db, clk, dir := openTest(t)
	exp := clk.Now().Add(time.Hour)
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, 0, byte(i)}) }
	var log bytes.Buffer
	for round := range 2 {
		err := db.kv.Update(func(txn kv.Txn) error {
			for i := range 20 {
				l := Lease{Segment: "lab", MAC: mac(i), IP: ip(i), Expires: exp}
				if err := setJSON(txn, leaseKey(l.Segment, l.MAC), l); err != nil {
					return err
				}
			}
			// A crash between a lease and the deletion of the expired
			// one it displaced left two records on 10.77.0.5.
			old := Lease{Segment: "lab", MAC: mac(99), IP: ip(5), Expires: exp.Add(-2 * time.Hour)}
			if err := setJSON(txn, leaseKey(old.Segment, old.MAC), old); err != nil {
				return err
			}
			return setJSON(txn, keySchema, 4)
		})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := db.dropPrefix("la/"); err != nil {
				t.Fatal(err)
			}
		} // round 1: a build cut off after some claims, run again
		db = reopen(t, db, dir, clk, &log)
		if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
			t.Fatalf("schema %d, %v; want %d", v, err, SchemaVersion)
		}
		if n := claimsAgree(t, db); n != 20 {
			t.Fatalf("round %d: %d leases after the build, want 20 (the displaced one deleted)", round, n)
		}
		if l, err := db.GetLease("lab", mac(5)); err != nil || l.IP != ip(5) {
			t.Fatalf("the later lease on the shared address: %+v %v", l, err)
		}
	}
	if !strings.Contains(log.String(), "schema 5") {
		t.Errorf("no migration log line:\n%s", log.String())
	}
	// The claims work: another MAC cannot have a live lease's address.
	if err := db.PutLease(Lease{Segment: "lab", MAC: mac(50), IP: ip(3), Expires: exp}); !errors.Is(err, ErrAddressTaken) {
		t.Errorf("after the migration: %v, want ErrAddressTaken", err)
	}
}
