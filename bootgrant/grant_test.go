package bootgrant

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

const macA = "52:54:00:12:34:56"

var (
	ipA = netip.MustParseAddr("10.77.0.100")
	ipB = netip.MustParseAddr("10.77.0.101")
)

func TestTake(t *testing.T) {
	neighbours := map[netip.Addr]string{ipA: macA, ipB: "52:54:00:00:00:99"}
	for _, tc := range []struct {
		name   string
		grant  netip.Addr // zero: no address known
		after  time.Duration
		from   netip.Addr
		mac    string
		want   bool
		second bool // a second Take right after
	}{
		{"the granted address, once", ipA, time.Second, ipA, macA, true, false},
		{"another address", ipA, time.Second, ipB, macA, false, false},
		{"another MAC", ipA, time.Second, ipA, "52:54:00:00:00:01", false, false},
		{"after the window", ipA, DefaultWindow + time.Second, ipA, macA, false, false},
		{"IPv4-mapped IPv6 remote", ipA, time.Second, netip.AddrFrom16(ipA.As16()), macA, true, false},
		{"no address: the neighbour is the MAC", netip.Addr{}, time.Second, ipA, macA, true, false},
		{"no address: the neighbour is another MAC", netip.Addr{}, time.Second, ipB, macA, false, false},
		{"no address: no neighbour entry", netip.Addr{}, time.Second, netip.MustParseAddr("10.77.0.9"), macA, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			tb := &Table{Now: clk.now, Neighbor: func(a netip.Addr) (net.HardwareAddr, bool) {
				m, ok := neighbours[a]
				if !ok {
					return nil, false
				}
				hw, _ := net.ParseMAC(m)
				return hw, true
			}}
			tb.Grant(macA, tc.grant)
			clk.t = clk.t.Add(tc.after)
			if got := tb.Take(tc.mac, tc.from); got != tc.want {
				t.Fatalf("Take = %v, want %v", got, tc.want)
			}
			if tc.want && tb.Take(tc.mac, tc.from) {
				t.Fatal("a grant was taken twice")
			}
		})
	}
}

// Without a neighbour lookup, a grant with no address is never taken.
func TestTakeWithoutNeighbour(t *testing.T) {
	tb := &Table{}
	tb.Grant(macA, netip.Addr{})
	if tb.Take(macA, ipA) {
		t.Fatal("taken without any proof of the address")
	}
}

// A flood of grants from random MACs is bounded; the newest survive.
func TestMaxBoundsMemory(t *testing.T) {
	tb := &Table{Max: 100}
	for i := 0; i < 10000; i++ {
		tb.Grant(fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff), ipA)
	}
	if n := len(tb.byMAC); n > 100 {
		t.Fatalf("%d grants held, max 100", n)
	}
	if len(tb.order) > 200 {
		t.Fatalf("%d order entries held", len(tb.order))
	}
	last := fmt.Sprintf("02:00:00:00:%02x:%02x", 9999>>8, 9999&0xff)
	if !tb.Take(last, ipA) {
		t.Fatal("the newest grant was dropped")
	}
	// Re-granting one MAC over and over keeps one grant and bounded order.
	for i := 0; i < 1000; i++ {
		tb.Grant(macA, ipB)
	}
	if len(tb.order) > 200 || !tb.Take(macA, ipB) {
		t.Fatalf("re-grants: %d order entries, or the grant is lost", len(tb.order))
	}
}

// Many requests racing for one grant: exactly one wins.
func TestTakeRace(t *testing.T) {
	tb := &Table{}
	tb.Grant(macA, ipA)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tb.Take(macA, ipA) {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d requests took one grant", won.Load())
	}
}
