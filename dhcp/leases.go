package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// LeaseStore keeps leases durably. *store.DB satisfies it. PutLease must
// not return before the lease is on disk: an ACK is sent only after it.
//
// PutLease fails with store.ErrAddressTaken (a *store.AddressTakenError)
// when another client's live lease holds the address: with two servers
// on one store, the address was leased by the other.
type LeaseStore interface {
	PutLease(store.Lease) error
	GetLease(segment, mac string) (store.Lease, error)
	DeleteLease(segment, mac string) error
	ListLeases(segment string) ([]store.Lease, error)
}

// leaseGiver is what a LeaseStore may also do: take a lease without the
// caller waiting, and call then with PutLease's result once, after the
// write (*store.DB: on its lease writer's goroutine). A socket's reader
// gives REQUESTs' leases this way (listener.serve), so that no goroutine
// waits for each.
type leaseGiver interface {
	PutLeaseThen(l store.Lease, then func(error))
}

// spaceChecker is what a LeaseStore may also say: whether it would refuse
// a write now (*store.DB: store.ErrNoSpace while its data disk is full).
type spaceChecker interface{ Writable() error }

// refusesNew says why a client without a live lease gets no offer now (the
// store would refuse its lease), or nil. A client with a live lease is
// still offered its address: its REQUEST is answered from memory.
func (a *allocator) refusesNew(mac string) error {
	sc, ok := a.store.(spaceChecker)
	if !ok {
		return nil
	}
	if a.holdsLive(mac) {
		return nil
	}
	return sc.Writable()
}

// holdsLive reports whether mac holds a live durable lease here: its
// binding is stored and has not expired. Only such a client is answered
// while the store refuses writes (keptOnRefusal).
func (a *allocator) holdsLive(mac string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.byMAC[mac]
	return b != nil && b.stored && a.now().Before(b.expires)
}

// offerHold is how long an OFFER keeps its address for the client without
// writing anything: long enough for the client's REQUEST to arrive.
const offerHold = 30 * time.Second

var (
	errExhausted = errors.New("address range exhausted")
	// errOfferCap: the pool's pending offers are at MaxPendingOffers.
	errOfferCap = errors.New("pending offers at the segment's max_pending_offers")
)

// purgeEvery is the least time between two purges of the pending offers
// at the cap: a purge walks them all, and a flood would otherwise ask for
// one with every packet.
const purgeEvery = time.Second

// binding is one address known to the allocator: a lease (live or expired,
// kept for MAC affinity), an outstanding offer, or a declined address.
type binding struct {
	// key is the MAC, or declineKey(ip) for a declined address.
	key      string
	ip       netip.Addr
	hostname string
	// expires ends the durable lease (or the decline).
	expires time.Time
	// hold keeps the address for this binding without a lease: an offer,
	// or an ACK whose lease is being written.
	hold     time.Time
	declined bool
	// stored says a record under key exists in the store.
	stored bool
}

// reclaimable reports whether the address may go to someone else.
func (b *binding) reclaimable(now time.Time) bool {
	return !now.Before(b.hold) && !now.Before(b.expires)
}

// until is when the binding stopped (or stops) holding its address.
func (b *binding) until() time.Time {
	if b.hold.After(b.expires) {
		return b.hold
	}
	return b.expires
}

// declineKey is the store key of a declined address. It is a well-formed
// MAC with the group bit set, which no client can have (packets with such a
// chaddr are dropped), so it never collides with a client's lease.
func declineKey(ip netip.Addr) string {
	b := ip.As4()
	return fmt.Sprintf("03:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

func u32(ip netip.Addr) uint32 { b := ip.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// share is the offsets [lo, lo+n) of a range, from its first address.
type share struct{ lo, n uint32 }

// allocator hands out the addresses of one dhcp-mode segment. Its index is
// loaded from the store at start and kept in memory; the store is written
// only for leases that are acknowledged, released or declined.
type allocator struct {
	seg       string
	subnet    netip.Prefix
	first     uint32
	size      uint32
	reserved  map[uint32]bool
	leaseTime time.Duration
	store     LeaseStore
	now       func() time.Time
	log       *slog.Logger

	mu sync.Mutex
	// share is the part of the range new addresses come from: the whole
	// range, or this server's half while its pair splits (pair.go).
	share share
	byMAC map[string]*binding
	byIP  map[uint32]*binding
	// offers are the bindings offer made for MACs that had none, until a
	// purge finds them taken up (stored), replaced or past their hold;
	// maxPending bounds them for capped offers (offerCapped).
	offers     map[string]*binding
	maxPending int
	lastPurge  time.Time
}

// newAllocator loads the segment's leases. reserved addresses (the server,
// the router…) are never handed out; the subnet's network and broadcast
// addresses never are either.
func newAllocator(seg *Segment, reserved []netip.Addr, st LeaseStore, now func() time.Time, log *slog.Logger) (*allocator, error) {
	a := &allocator{
		seg:        seg.Name,
		subnet:     seg.Subnet,
		first:      u32(seg.RangeStart),
		size:       u32(seg.RangeEnd) - u32(seg.RangeStart) + 1,
		reserved:   map[uint32]bool{},
		leaseTime:  seg.leaseTime(),
		store:      st,
		now:        now,
		log:        log,
		byMAC:      map[string]*binding{},
		byIP:       map[uint32]*binding{},
		offers:     map[string]*binding{},
		maxPending: seg.maxPendingOffers(),
	}
	a.share = share{0, a.size}
	network := u32(seg.Subnet.Addr())
	a.reserved[network] = true
	a.reserved[network|(1<<(32-seg.Subnet.Bits())-1)] = true
	for _, r := range reserved {
		if r.Is4() {
			a.reserved[u32(r)] = true
		}
	}
	leases, err := st.ListLeases(seg.Name)
	if err != nil {
		return nil, fmt.Errorf("load leases of segment %s: %w", seg.Name, err)
	}
	for _, l := range leases {
		if l.Segment != seg.Name || !a.usable(l.IP) {
			// Left over from another range: it is NAKed on renewal.
			continue
		}
		b := &binding{key: l.MAC, ip: l.IP, hostname: l.Hostname, expires: l.Expires, declined: l.Declined, stored: true}
		u := u32(l.IP)
		if o := a.byIP[u]; o != nil {
			// Two records for one address, which the store's claims no
			// longer allow (a database of schema 4 had them after a crash
			// between a new lease and the deletion of the one it
			// displaced): the later wins.
			if !b.expires.After(o.expires) {
				b, o = o, b
			}
			delete(a.byMAC, o.key)
		}
		a.byIP[u] = b
		if !b.declined {
			a.byMAC[b.key] = b
		}
	}
	return a, nil
}

// usable reports whether ip is in the range and not reserved.
func (a *allocator) usable(ip netip.Addr) bool {
	if !ip.Is4() {
		return false
	}
	u := u32(ip)
	return u-a.first < a.size && !a.reserved[u]
}

// offer picks the address for a DISCOVER from mac and holds it for
// offerHold: the MAC's own binding if it has one (even expired), else want
// (option 50) when free, else the first free address probing from a hash
// of the MAC, else the oldest reclaimable one.
func (a *allocator) offer(mac string, want netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.offerLocked(mac, want, a.now(), false)
}

// offerCapped is offer for a client that is neither a known machine nor
// the holder of a binding: a MAC without a binding gets an address only
// while fewer than maxPending offers are outstanding (errOfferCap; an
// exhausted pool is errExhausted still).
func (a *allocator) offerCapped(mac string, want netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.offerLocked(mac, want, a.now(), true)
}

// pendingFull reports whether maxPending offers are outstanding, purging
// the ones that are not (taken up by a REQUEST, replaced, or past their
// hold) at most every purgeEvery. The caller holds a.mu.
func (a *allocator) pendingFull(now time.Time) bool {
	if len(a.offers) < a.maxPending {
		return false
	}
	if now.Sub(a.lastPurge) < purgeEvery && !now.Before(a.lastPurge) {
		return true
	}
	a.lastPurge = now
	for mac, b := range a.offers {
		if a.byMAC[mac] != b || b.stored || !now.Before(b.hold) {
			delete(a.offers, mac)
		}
	}
	return len(a.offers) >= a.maxPending
}

// has reports whether mac holds a binding: a lease (live or expired) or
// an offer.
func (a *allocator) has(mac string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byMAC[mac] != nil
}

// offerLocked is offer with a.mu held; capped applies maxPending to a new
// binding.
func (a *allocator) offerLocked(mac string, want netip.Addr, now time.Time, capped bool) (netip.Addr, error) {
	if b := a.byMAC[mac]; b != nil {
		b.hold = later(b.hold, now.Add(offerHold))
		return b.ip, nil
	}
	if capped && len(a.offers) >= a.maxPending && now.Sub(a.lastPurge) < purgeEvery && !now.Before(a.lastPurge) {
		// Under a flood, refused without looking for an address.
		return netip.Addr{}, errOfferCap
	}
	b := &binding{key: mac, hold: now.Add(offerHold)}
	var prior *binding // an expired declined entry whose address b takes
	reclaim := false
	// New addresses come from this server's share of the range only.
	lo, n := a.share.lo, a.share.n
	if want.IsValid() && a.usable(want) && u32(want)-a.first-lo < n {
		if ok, p := a.free(u32(want), now); ok {
			b.ip, prior = want, p
		}
	}
	if !b.ip.IsValid() && n > 0 {
		h := fnv.New32a()
		h.Write([]byte(mac))
		start := h.Sum32() % n
		for i := range n {
			u := a.first + lo + (start+i)%n
			if ok, p := a.free(u, now); ok && !a.reserved[u] {
				b.ip, prior = addr(u), p
				break
			}
		}
	}
	if !b.ip.IsValid() {
		for _, o := range a.byIP {
			if o.reclaimable(now) && u32(o.ip)-a.first-lo < n && (prior == nil || o.until().Before(prior.until())) {
				prior = o
			}
		}
		if prior == nil {
			return netip.Addr{}, errExhausted
		}
		b.ip, reclaim = prior.ip, true
	}
	if capped && a.pendingFull(now) {
		return netip.Addr{}, errOfferCap
	}
	if reclaim {
		a.log.Debug("reclaim expired address", "segment", a.seg, "ip", prior.ip, "from", prior.key, "to", mac)
	}
	if prior != nil {
		// Its store record, if any, is taken over (deleted) in the new
		// lease's transaction (store leases.go).
		a.remove(prior)
	}
	a.byMAC[mac] = b
	a.byIP[u32(b.ip)] = b
	a.offers[mac] = b
	return b.ip, nil
}

// free reports whether address u may be handed out without taking it from
// a client: unused, or declined and past its decline period (prior).
// The caller holds a.mu.
func (a *allocator) free(u uint32, now time.Time) (ok bool, prior *binding) {
	o := a.byIP[u]
	switch {
	case o == nil:
		return true, nil
	case o.declined && o.reclaimable(now):
		return true, o
	}
	return false, nil
}

// remove drops b from the index. The caller holds a.mu.
func (a *allocator) remove(b *binding) {
	if a.byIP[u32(b.ip)] == b {
		delete(a.byIP, u32(b.ip))
	}
	if a.byMAC[b.key] == b {
		delete(a.byMAC, b.key)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
