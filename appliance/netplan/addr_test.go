package netplan

import (
	"net/netip"
	"testing"
)

func TestDefaultRange(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"10.77.0.1/24", "10.77.0.100-10.77.0.200"},
		{"10.77.0.254/24", "10.77.0.100-10.77.0.200"},
		{"10.77.0.150/24", "10.77.0.100-10.77.0.149"},
		{"10.77.0.100/24", "10.77.0.101-10.77.0.200"},
		{"10.77.0.190/24", "10.77.0.100-10.77.0.189"},
		{"172.16.0.1/16", "172.16.100.0-172.16.200.0"},
		{"10.0.0.1/8", "10.100.0.0-10.200.0.0"},
		{"192.168.1.1/25", "192.168.1.50-192.168.1.100"},
		{"192.168.1.129/25", "192.168.1.178-192.168.1.228"},
		{"192.168.1.1/30", "192.168.1.2-192.168.1.2"},
		{"192.168.1.2/30", "192.168.1.1-192.168.1.1"},
		{"192.168.1.5/29", "192.168.1.3-192.168.1.4"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.addr)
		start, end := DefaultRange(p)
		if got := RangeText(start, end); got != tt.want {
			t.Errorf("DefaultRange(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
	// Every host address of every prefix length gets a valid default.
	for bits := 8; bits <= 30; bits++ {
		size := uint32(1) << (32 - bits)
		base := u32(netip.MustParseAddr("10.0.0.0"))
		for _, off := range []uint32{1, 2, size / 4, size * 100 / 256, size / 2, size * 200 / 256, size - 3, size - 2} {
			if off < 1 || off > size-2 {
				continue
			}
			p := netip.PrefixFrom(addr4(base+off), bits)
			start, end := DefaultRange(p)
			if err := CheckRange(p, start, end); err != nil {
				t.Errorf("DefaultRange(%v) = %s: %v", p, RangeText(start, end), err)
			}
		}
	}
}

// FuzzAnswers: any answer to the setup's network questions is either refused
// or yields a segment that the DHCP rules accept and that never hands out
// the appliance's own address or router.
func FuzzAnswers(f *testing.F) {
	f.Add("10.77.0.1/24", "10.77.0.100-10.77.0.200", "")
	f.Add("10.77.0.1/24", "10.77.0.2-10.77.0.2", "10.77.0.3")
	f.Add("10.77.0.1/8", "10.255.255.254-10.0.0.2", "none")
	f.Add("1.2.3.4/30", "1.2.3.5-1.2.3.6", "1.2.3.4")
	f.Fuzz(func(t *testing.T, addr, rng, router string) {
		var a Provisioning
		var err error
		if a.Address, err = ParseAddress(addr); err != nil {
			return
		}
		start, end := DefaultRange(a.Address)
		if err := CheckRange(a.Address, start, end); err != nil {
			t.Fatalf("default range for %v: %v", a.Address, err)
		}
		if a.RangeStart, a.RangeEnd, err = ParseRange(a.Address, rng); err != nil {
			return
		}
		if a.Router, err = ParseRouter(a, router); err != nil {
			return
		}
		net := a.Address.Masked()
		inRange := func(x netip.Addr) bool { return !x.Less(a.RangeStart) && !a.RangeEnd.Less(x) }
		switch {
		case !net.Contains(a.RangeStart) || !net.Contains(a.RangeEnd) || a.RangeEnd.Less(a.RangeStart):
			t.Fatalf("accepted range %s for %v", RangeText(a.RangeStart, a.RangeEnd), a.Address)
		case inRange(a.Address.Addr()):
			t.Fatalf("range %s holds the appliance %v", RangeText(a.RangeStart, a.RangeEnd), a.Address)
		case a.Router.IsValid() && (inRange(a.Router) || !net.Contains(a.Router) || a.Router == a.Address.Addr()):
			t.Fatalf("accepted router %v with %v and %s", a.Router, a.Address, RangeText(a.RangeStart, a.RangeEnd))
		}
	})
}
