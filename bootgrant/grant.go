// Package bootgrant remembers which address the DHCP server has just handed
// a boot to, for which MAC, so that a boot nonce is issued only to the
// machine that took part in that exchange: once, from that address, within
// a short window (docs/spec.md §1, "the unit of trust is a boot session").
//
// Without it, anyone who could reach the HTTP port could ask for
// /boot/<mac> and be given a fresh nonce for any known machine. The DHCP
// server calls Grant when it sends a boot answer; the script server calls
// Take before it puts a nonce into a discovery script.
package bootgrant

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults for Table's zero fields.
const (
	DefaultWindow = 2 * time.Minute
	DefaultMax    = 1 << 16
)

// Table holds the open grants. The zero value is ready to use; it is safe
// for concurrent use.
type Table struct {
	// Window is how long after the DHCP exchange a grant may be taken;
	// default DefaultWindow.
	Window time.Duration
	// Max bounds the grants held, so that a flood of DHCP requests from
	// random MACs costs bounded memory; when it is reached the oldest
	// grant is dropped. Default DefaultMax.
	Max int
	// Neighbor returns the MAC that the kernel's neighbour table has for
	// an on-link address. It confirms a grant made without an address (a
	// proxyDHCP answer to a client whose address another server gave);
	// nil refuses such grants.
	Neighbor func(netip.Addr) (net.HardwareAddr, bool)
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu    sync.Mutex
	byMAC map[string]grant
	order []entry // insertion order, for dropping the oldest
}

type grant struct {
	ip netip.Addr // invalid: not known (proxy mode)
	at time.Time
}

type entry struct {
	mac string
	at  time.Time
}

func (t *Table) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Table) window() time.Duration {
	if t.Window > 0 {
		return t.Window
	}
	return DefaultWindow
}

// Grant records that mac was just answered with a boot, at ip (the leased
// or client address; the zero Addr when the answer carried none). A newer
// grant for the same MAC replaces the older.
func (t *Table) Grant(mac string, ip netip.Addr) {
	max := t.Max
	if max <= 0 {
		max = DefaultMax
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byMAC == nil {
		t.byMAC = map[string]grant{}
	}
	t.byMAC[mac] = grant{ip: ip.Unmap(), at: now}
	t.order = append(t.order, entry{mac, now})
	for len(t.byMAC) > max || len(t.order) > 2*max {
		t.dropOldest()
	}
}

// dropOldest removes the oldest entry of order and its grant when that
// grant is still the one the entry recorded (a newer grant for the MAC has
// its own entry further on).
func (t *Table) dropOldest() {
	e := t.order[0]
	t.order = t.order[1:]
	if g, ok := t.byMAC[e.mac]; ok && g.at.Equal(e.at) {
		delete(t.byMAC, e.mac)
	}
}

// Take reports whether a request from remote may receive a boot nonce for
// mac, and uses the grant up: it holds when DHCP answered mac within the
// window at remote (or, with no address known, when the neighbour table
// says remote is mac).
func (t *Table) Take(mac string, remote netip.Addr) bool {
	remote = remote.Unmap()
	t.mu.Lock()
	g, ok := t.byMAC[mac]
	if !ok || t.now().Sub(g.at) > t.window() {
		delete(t.byMAC, mac)
		t.mu.Unlock()
		return false
	}
	if g.ip.IsValid() && g.ip != remote {
		t.mu.Unlock()
		return false
	}
	if !g.ip.IsValid() {
		// The neighbour lookup is a system call: not under the lock.
		t.mu.Unlock()
		if t.Neighbor == nil {
			return false
		}
		hw, ok := t.Neighbor(remote)
		if !ok || hw.String() != mac {
			return false
		}
		t.mu.Lock()
		if cur, still := t.byMAC[mac]; !still || !cur.at.Equal(g.at) {
			t.mu.Unlock()
			return false // taken or replaced meanwhile
		}
	}
	delete(t.byMAC, mac)
	t.mu.Unlock()
	return true
}
