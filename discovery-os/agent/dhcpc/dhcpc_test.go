package dhcpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var (
	ip     = netip.MustParseAddr
	prefix = netip.MustParsePrefix
)

func TestPlan(t *testing.T) {
	mask24 := net.CIDRMask(24, 32)
	tests := []struct {
		name    string
		b       binding
		want    string // config.String()
		wantErr bool
	}{
		{"mask, router and server on the subnet",
			binding{addr: ip("10.77.0.100"), mask: mask24, routers: []netip.Addr{ip("10.77.0.1")}, server: ip("10.77.0.1")},
			"10.77.0.100/24, 0.0.0.0/0 via 10.77.0.1", false},
		{"mask, no router",
			binding{addr: ip("10.77.0.100"), mask: mask24, server: ip("10.77.0.1")},
			"10.77.0.100/24", false},
		{"no mask: /32, router and server on-link, default via the router",
			binding{addr: ip("10.77.0.100"), routers: []netip.Addr{ip("10.77.0.1")}, server: ip("10.77.0.1")},
			"10.77.0.100/32, 10.77.0.1/32 on-link, 0.0.0.0/0 via 10.77.0.1", false},
		{"no mask, server apart from the router",
			binding{addr: ip("10.77.0.100"), routers: []netip.Addr{ip("10.77.0.1")}, server: ip("10.77.0.2")},
			"10.77.0.100/32, 10.77.0.1/32 on-link, 10.77.0.2/32 on-link, 0.0.0.0/0 via 10.77.0.1", false},
		{"no mask, relayed: the server is reached through the router",
			binding{addr: ip("10.77.0.100"), routers: []netip.Addr{ip("10.77.0.1")}, server: ip("192.168.5.5"), relayed: true},
			"10.77.0.100/32, 10.77.0.1/32 on-link, 0.0.0.0/0 via 10.77.0.1", false},
		{"no mask, no router: only the server",
			binding{addr: ip("10.77.0.100"), server: ip("10.77.0.1")},
			"10.77.0.100/32, 10.77.0.1/32 on-link", false},
		{"no mask, nothing else",
			binding{addr: ip("10.77.0.100")},
			"10.77.0.100/32", false},
		{"zero mask counts as none",
			binding{addr: ip("10.77.0.100"), mask: net.IPv4Mask(0, 0, 0, 0), routers: []netip.Addr{ip("10.77.0.1")}},
			"10.77.0.100/32, 10.77.0.1/32 on-link, 0.0.0.0/0 via 10.77.0.1", false},
		{"non-contiguous mask counts as none",
			binding{addr: ip("10.77.0.100"), mask: net.IPv4Mask(255, 0, 255, 0)},
			"10.77.0.100/32", false},
		{"router outside the mask's subnet gets a host route",
			binding{addr: ip("10.77.0.100"), mask: mask24, routers: []netip.Addr{ip("10.78.0.1")}, server: ip("10.77.0.1")},
			"10.77.0.100/24, 10.78.0.1/32 on-link, 0.0.0.0/0 via 10.78.0.1", false},
		{"server outside the subnet on this link",
			binding{addr: ip("10.77.0.100"), mask: mask24, routers: []netip.Addr{ip("10.77.0.1")}, server: ip("10.88.0.1")},
			"10.77.0.100/24, 10.88.0.1/32 on-link, 0.0.0.0/0 via 10.77.0.1", false},
		{"first usable router wins; our own address is no router",
			binding{addr: ip("10.77.0.100"), mask: mask24, routers: []netip.Addr{ip("0.0.0.0"), ip("10.77.0.100"), ip("10.77.0.2"), ip("10.77.0.1")}},
			"10.77.0.100/24, 0.0.0.0/0 via 10.77.0.2", false},
		{"no address", binding{mask: mask24}, "", true},
		{"unspecified address", binding{addr: ip("0.0.0.0"), mask: mask24}, "", true},
		{"multicast address", binding{addr: ip("224.0.0.1")}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := plan(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// ack builds a server's ACK; mask 0 leaves option 1 out, lease 0 leaves
// option 51 out.
func ack(t *testing.T, yiaddr string, maskBits int, lease, t1, t2 time.Duration) *dhcpv4.DHCPv4 {
	t.Helper()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.ParseIP(yiaddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))),
		dhcpv4.WithOption(dhcpv4.OptRouter(net.ParseIP("10.77.0.1"))),
	}
	if maskBits > 0 {
		mods = append(mods, dhcpv4.WithNetmask(net.CIDRMask(maskBits, 32)))
	}
	if lease > 0 {
		mods = append(mods, dhcpv4.WithLeaseTime(uint32(lease/time.Second)))
	}
	if t1 > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(t1)))
	}
	if t2 > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(t2)))
	}
	p, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLeaseTimes(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := time.Second
	tests := []struct {
		name                  string
		lease, t1, t2         time.Duration
		wantT1, wantT2, wantE time.Duration
	}{
		{"defaults: half and seven eighths", 3600 * s, 0, 0, 1800 * s, 3150 * s, 3600 * s},
		{"server's timers", 3600 * s, 600 * s, 1200 * s, 600 * s, 1200 * s, 3600 * s},
		{"T1 beyond the lease is ignored", 100 * s, 200 * s, 0, 50 * s, 87500 * time.Millisecond, 100 * s},
		{"T2 before T1 is ignored", 100 * s, 40 * s, 30 * s, 40 * s, 87500 * time.Millisecond, 100 * s},
		{"T1 after 7/8: T2 halfway to the end", 100 * s, 90 * s, 0, 90 * s, 95 * s, 100 * s},
		{"short test lease", 4 * s, 0, 0, 2 * s, 3500 * time.Millisecond, 4 * s},
		{"no lease time: forever", 0, 0, 0, forever / 2, forever - forever/8, forever},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := leaseTimes(ack(t, "10.77.0.100", 24, tt.lease, tt.t1, tt.t2), t0)
			if got.renew.Sub(t0) != tt.wantT1 || got.rebind.Sub(t0) != tt.wantT2 || got.expire.Sub(t0) != tt.wantE {
				t.Errorf("T1 %v T2 %v end %v; want %v %v %v", got.renew.Sub(t0), got.rebind.Sub(t0), got.expire.Sub(t0), tt.wantT1, tt.wantT2, tt.wantE)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	s := time.Second
	tests := []struct {
		name       string
		left, want time.Duration
	}{
		{"half the time left", 1000 * s, 500 * s},
		{"not below the floor", 100 * s, 60 * s},
		{"never past the deadline", 30 * s, 30 * s},
		{"deadline passed", -s, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryWait(t0, t0.Add(tt.left), 60*s); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeNet is a scripted server and interface on a fake clock: every
// exchange that gets no answer costs one second.
type fakeNet struct {
	t0, now time.Time
	// answer decides a request; discover always succeeds with nextAddr.
	answer   func(kind string) (ok, nak bool)
	nextAddr []string
	events   []string
	applied  config
}

func (f *fakeNet) at() string { return fmt.Sprintf("%gs", f.now.Sub(f.t0).Seconds()) }

func (f *fakeNet) up(context.Context) error { return nil }

func (f *fakeNet) discover(context.Context) (*dhcpv4.DHCPv4, error) {
	f.events = append(f.events, f.at()+" discover")
	a := f.nextAddr[0]
	f.nextAddr = f.nextAddr[1:]
	return f.ackFor(a), nil
}

func (f *fakeNet) ackFor(a string) *dhcpv4.DHCPv4 {
	p, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.ParseIP(a)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithLeaseTime(100),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))))
	return p
}

func (f *fakeNet) request(_ context.Context, prev *dhcpv4.DHCPv4, server netip.Addr) (*dhcpv4.DHCPv4, error) {
	kind := "rebind"
	if server.IsValid() {
		kind = "renew " + server.String()
	}
	f.events = append(f.events, f.at()+" "+kind)
	ok, nak := f.answer(strings.Fields(kind)[0])
	switch {
	case nak:
		return nil, errNAK
	case ok:
		// A renewal ACK without the mask: inherit must keep the /24.
		p, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(prev.YourIPAddr),
			dhcpv4.WithLeaseTime(100), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.77.0.1"))))
		return p, nil
	}
	f.now = f.now.Add(time.Second)
	return nil, errors.New("no answer")
}

func (f *fakeNet) apply(old, new config) error {
	if old.addr != new.addr {
		f.events = append(f.events, fmt.Sprintf("%s address %v", f.at(), new.addr))
	}
	f.applied = new
	return nil
}

// TestKeep runs the lease state machine on a fake clock (lease 100 s:
// T1 50 s, T2 87.5 s; retries at least 10 s apart) until 160 s.
func TestKeep(t *testing.T) {
	tests := []struct {
		name   string
		answer func(kind string) (ok, nak bool)
		want   []string
	}{
		{"renewed at T1, unicast to the server", func(string) (bool, bool) { return true, false },
			[]string{"0s discover", "0s address 10.77.0.100/24", "50s renew 10.77.0.1", "100s renew 10.77.0.1", "150s renew 10.77.0.1"}},
		{"server gone: retries, rebinding, then a new lease", func(string) (bool, bool) { return false, false },
			[]string{"0s discover", "0s address 10.77.0.100/24",
				"50s renew 10.77.0.1", "69.25s renew 10.77.0.1", "80.25s renew 10.77.0.1",
				"87.5s rebind", "98.5s rebind", "100s address invalid Prefix", "100s discover", "100s address 10.77.0.101/24",
				"150s renew 10.77.0.1"}},
		{"only rebinding answered", func(k string) (bool, bool) { return k == "rebind", false },
			[]string{"0s discover", "0s address 10.77.0.100/24",
				"50s renew 10.77.0.1", "69.25s renew 10.77.0.1", "80.25s renew 10.77.0.1",
				"87.5s rebind", "137.5s renew 10.77.0.1", "156.75s renew 10.77.0.1"}},
		{"refused: the address goes at once", func(string) (bool, bool) { return false, true },
			[]string{"0s discover", "0s address 10.77.0.100/24", "50s renew 10.77.0.1",
				"50s address invalid Prefix", "50s discover", "50s address 10.77.0.101/24",
				"100s renew 10.77.0.1", "100s address invalid Prefix", "100s discover", "100s address 10.77.0.102/24",
				"150s renew 10.77.0.1", "150s address invalid Prefix", "150s discover", "150s address 10.77.0.103/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			f := &fakeNet{t0: t0, now: t0, answer: tt.answer,
				nextAddr: []string{"10.77.0.100", "10.77.0.101", "10.77.0.102", "10.77.0.103"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var changes []netip.Prefix
			c := &Client{Interface: "eth0", MinRetry: 10 * time.Second, net: f, now: func() time.Time { return f.now },
				OnChange: func(p netip.Prefix) { changes = append(changes, p) },
				sleep: func(ctx context.Context, d time.Duration) error {
					if f.now.Add(d).After(t0.Add(160 * time.Second)) {
						cancel()
						return ctx.Err()
					}
					f.now = f.now.Add(d)
					return nil
				}}
			if p, err := c.Acquire(ctx, time.Minute); err != nil || p != prefix("10.77.0.100/24") {
				t.Fatalf("acquire: %v %v", p, err)
			}
			if err := c.Keep(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Keep ended with %v, want the context's end", err)
			}
			if !slices.Equal(f.events, tt.want) {
				t.Errorf("events:\n got %q\nwant %q", f.events, tt.want)
			}
			if f.applied.addr != c.applied.addr || f.applied.addr.Bits() != 24 {
				t.Errorf("interface has %v, client thinks %v", f.applied.addr, c.applied.addr)
			}
			var wantChanges int
			for _, e := range tt.want {
				if strings.Contains(e, " address ") {
					wantChanges++
				}
			}
			if len(changes) != wantChanges {
				t.Errorf("OnChange told %v", changes)
			}
		})
	}
}

func TestKeepNeedsALease(t *testing.T) {
	if err := (&Client{Interface: "eth0"}).Keep(context.Background()); err == nil {
		t.Fatal("Keep without Acquire did not fail")
	}
}
