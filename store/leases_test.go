package store

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
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
