package dhcp

import (
	"errors"
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// What an allocator learns from the store beyond its own writes: in a DHCP
// pair (pair.go) the peer leases too, and its leases reach this allocator
// when a client of the peer's asks here (adopt), when the store refuses an
// address the peer holds (heldElsewhere), and when the peer dies (reload).

// setShare sets the part of the range new addresses come from: this
// server's half while its pair splits (the upper half for the
// secondary), else the whole range.
func (a *allocator) setShare(split, secondary bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !split:
		a.share = share{0, a.size}
	case secondary:
		a.share = share{a.size / 2, a.size - a.size/2}
	default:
		a.share = share{0, a.size / 2}
	}
}

// learnLocked makes the store's lease l what the allocator knows of l's
// address: l.MAC holds it until l.Expires. What the allocator had there for
// another client goes (the store has one lease per address), unless l has
// expired and the address is bound again here, which the store lets the
// new binding take over. The caller holds a.mu.
func (a *allocator) learnLocked(l store.Lease, now time.Time) {
	if !a.usable(l.IP) {
		return
	}
	u := u32(l.IP)
	b := a.byMAC[l.MAC] // declined records are never in byMAC
	if b != nil && b.ip != l.IP && now.Before(b.hold) {
		// An offer or a write of this client's in flight here: its own
		// outcome decides (a lease that moves releases the stored one).
		return
	}
	if o := a.byIP[u]; o != nil && o.key != l.MAC {
		if !now.Before(l.Expires) {
			return
		}
		a.remove(o)
	}
	if l.Declined {
		d := a.byIP[u]
		if d == nil {
			d = &binding{key: l.MAC, ip: l.IP, declined: true}
			a.byIP[u] = d
		}
		d.expires, d.stored = later(d.expires, l.Expires), true
		return
	}
	switch {
	case b == nil:
		b = &binding{key: l.MAC}
		a.byMAC[l.MAC] = b
	case b.ip != l.IP:
		if a.byIP[u32(b.ip)] == b {
			delete(a.byIP, u32(b.ip))
		}
		b.expires = time.Time{}
	}
	b.ip = l.IP
	b.expires = later(b.expires, l.Expires)
	b.stored = true
	if l.Hostname != "" {
		b.hostname = l.Hostname
	}
	a.byIP[u] = b
}

// reload learns every lease of the segment from the store: what a peer
// leased becomes known before this allocator offers its half.
func (a *allocator) reload() error {
	leases, err := a.store.ListLeases(a.seg)
	if err != nil {
		return fmt.Errorf("reload leases of segment %s: %w", a.seg, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for _, l := range leases {
		if l.Segment == a.seg {
			a.learnLocked(l, now)
		}
	}
	return nil
}

// adopt learns mac's lease from the store for a REQUEST of a client this
// allocator has no binding for (its pair's peer leased to it), and reports
// whether mac has a binding now.
func (a *allocator) adopt(mac string) (bool, error) {
	l, err := a.store.GetLease(a.seg, mac)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("adopt the lease of %s: %w", mac, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byMAC[mac] == nil {
		a.learnLocked(l, a.now())
	}
	return a.byMAC[mac] != nil, nil
}
