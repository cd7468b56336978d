package dhcp

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// leaseRequest is what a DHCPREQUEST says about the address it wants.
type leaseRequest struct {
	MAC      string
	Hostname string
	// ServerID is option 54 (zero when absent); Ours is our own.
	ServerID, Ours netip.Addr
	// Requested is option 50; CIAddr the client's address field.
	Requested, CIAddr netip.Addr
}

// resultKind is the answer to a DHCPREQUEST.
type resultKind int

const (
	resultSilent resultKind = iota // no reply (RFC 2131 §4.3.2 "remain silent")
	resultAck
	resultNak
)

// leaseResult is the allocator's answer to a request: an ACK carrying the
// durable lease, a NAK with its reason, or silence.
type leaseResult struct {
	Kind   resultKind
	Lease  store.Lease
	Reason string
	// Kept: the ACK renews the stored lease from memory, for the time it
	// has left, because the store refused the write (keptOnRefusal).
	Kept bool
}

func nak(format string, a ...any) leaseResult {
	return leaseResult{Kind: resultNak, Reason: fmt.Sprintf(format, a...)}
}

// request handles DHCPREQUEST in its three forms (RFC 2131 §4.3.2):
// SELECTING (server id present), INIT-REBOOT (requested address, no ciaddr)
// and RENEWING/REBINDING (ciaddr). An ACK result is returned only after the
// lease is durable; an error means the store refused it and nothing is sent.
func (a *allocator) request(r leaseRequest) (leaseResult, error) {
	res, w := a.requestStart(r)
	if w == nil {
		return res, nil
	}
	return w.end(a.store.PutLease(w.lease))
}

// leaseWrite is a REQUEST between the allocator's decision and the
// store's answer: lease is to be written, and end turns the write's
// outcome into the result. The write happens outside the allocator's
// lock so that concurrent ACKs share the store's synced commits instead
// of queueing behind one another; meanwhile the address is held for the
// client.
type leaseWrite struct {
	a     *allocator
	r     leaseRequest
	b     *binding
	state string
	lease store.Lease
	// kept is what the client held before, should the store refuse the
	// write: a live lease on this address is renewed from memory then.
	kept store.Lease
}

// requestStart is request up to the write: its result when no lease is
// written (silence, NAK), or the write to make. A caller that knows the
// store is unavailable ends it with that error instead of writing.
func (a *allocator) requestStart(r leaseRequest) (leaseResult, *leaseWrite) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	b := a.byMAC[r.MAC]
	var ip netip.Addr
	state := ""
	switch {
	case r.ServerID.IsValid() && r.ServerID != r.Ours:
		a.otherSelectedLocked(b, now)
		return leaseResult{Reason: "client selected another server"}, nil
	case r.ServerID.IsValid():
		state, ip = "selecting", r.Requested
		if !ip.IsValid() {
			ip = r.CIAddr
		}
	case r.CIAddr.IsValid():
		state, ip = "renewing", r.CIAddr
	case r.Requested.IsValid():
		state, ip = "init-reboot", r.Requested
	default:
		return leaseResult{Reason: "request names no address"}, nil
	}
	if !ip.IsValid() || !a.subnet.Contains(ip) {
		return nak("%s: %v is not in subnet %v", state, ip, a.subnet), nil
	}
	if !a.usable(ip) {
		return nak("%s: %v is outside the range", state, ip), nil
	}
	owner := a.byIP[u32(ip)]
	var prior *binding
	if owner != nil && owner != b {
		if ok, p := a.free(u32(ip), now); ok {
			owner, prior = nil, p
		}
	}
	switch {
	case owner != nil && owner == b:
		// The client's own binding, live or expired: renew it.
	case owner != nil:
		return nak("%s: %v belongs to another client", state, ip), nil
	case state == "init-reboot" && b == nil:
		// RFC 2131: no record of this client, another server may have one.
		return leaseResult{Reason: "init-reboot from a client without a binding"}, nil
	case state != "selecting" && b != nil:
		return nak("%s: client's address is %v, not %v", state, b.ip, ip), nil
	}
	w := &leaseWrite{a: a, r: r, state: state}
	if b != nil && b.stored && b.ip == ip && now.Before(b.expires) {
		w.kept = store.Lease{Segment: a.seg, MAC: r.MAC, IP: ip, Hostname: b.hostname, Expires: b.expires}
	}
	// ip is the client's or free: bind it, and hold it while writing.
	// The write also takes over the store record of an expired binding
	// whose address this was (prior).
	if prior != nil {
		a.remove(prior)
	}
	if b == nil {
		b = &binding{key: r.MAC}
		a.byMAC[r.MAC] = b
	} else if b.ip != ip {
		if a.byIP[u32(b.ip)] == b {
			delete(a.byIP, u32(b.ip))
		}
	}
	b.ip = ip
	a.byIP[u32(ip)] = b
	b.hold = later(b.hold, now.Add(offerHold))
	if r.Hostname != "" {
		b.hostname = r.Hostname
	}
	w.b = b
	w.lease = store.Lease{Segment: a.seg, MAC: r.MAC, IP: ip, Hostname: b.hostname, Expires: now.Add(a.leaseTime)}
	return leaseResult{}, w
}

// end is the rest of request once the store answered the write with err.
func (w *leaseWrite) end(err error) (leaseResult, error) {
	a, r, b, ip, state := w.a, w.r, w.b, w.lease.IP, w.state
	if err != nil {
		var taken *store.AddressTakenError
		if errors.As(err, &taken) {
			// Another server of the store (a DHCP pair's peer) leased
			// the address: the client starts again from DISCOVER, and
			// the address is known to be held.
			a.heldElsewhere(r.MAC, b, taken)
			return nak("%s: %v is leased to %s until %s (by another server)", state, ip, taken.By, taken.Until.UTC().Format(time.RFC3339)), nil
		}
		if keptOnRefusal(err) && w.kept.IP.IsValid() {
			return leaseResult{Kind: resultAck, Lease: w.kept, Kept: true, Reason: err.Error()}, nil
		}
		return leaseResult{}, fmt.Errorf("store lease %v for %s: %w", ip, r.MAC, err)
	}
	a.mu.Lock()
	if a.byMAC[r.MAC] == b && b.ip == ip {
		b.expires = later(b.expires, w.lease.Expires)
		b.stored = true
	}
	a.mu.Unlock()
	return leaseResult{Kind: resultAck, Lease: w.lease}, nil
}

// keptOnRefusal reports whether a lease write that failed with err
// leaves the client the lease it holds: a full data disk
// (store.ErrNoSpace) or a store that cannot be reached or has lost its
// quorum (store.ErrUnavailable). Then a client with a live stored lease
// on the address it asks for is renewed from memory, for the time its
// stored lease has left, and nothing is written: the ACK promises
// nothing the store does not hold already, so nothing acknowledged is
// lost. (An unavailable etcd may have committed a write whose answer was
// lost: the store then holds more than the ACK promised, never less.)
// Every other client gets no ACK.
func keptOnRefusal(err error) bool {
	return errors.Is(err, store.ErrNoSpace) || errors.Is(err, store.ErrUnavailable)
}

// renewsFromMemory reports why a REQUEST whose machine record could not
// be read (the store is unavailable) cannot be answered, or "" when it
// may be: a renewing, rebinding or INIT-REBOOT REQUEST (no server
// identifier) from a client with a live stored lease here, which
// request then renews from memory under keptOnRefusal's rule. A
// DISCOVER, a REQUEST for a new address, a renewal of an expired or
// unknown lease: nothing the store does not hold could be promised.
func renewsFromMemory(seg *segState, req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, mac string) string {
	switch {
	case seg.alloc == nil:
		return "store unavailable: proxy-mode segment"
	case mt != dhcpv4.MessageTypeRequest:
		return "store unavailable: no " + mt.String() + " answered until it is back"
	case fromIP(req.ServerIdentifier()).IsValid():
		return "store unavailable: no new lease until it is back"
	case !seg.alloc.holdsLive(mac):
		return "store unavailable: no live lease of this client to renew from memory"
	}
	return ""
}

// otherSelected releases what was offered to mac: the client chose
// another server's offer.
func (a *allocator) otherSelected(mac string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.otherSelectedLocked(a.byMAC[mac], a.now())
}

func (a *allocator) otherSelectedLocked(b *binding, now time.Time) {
	if b != nil && !b.stored {
		a.remove(b)
	} else if b != nil {
		b.hold = now
	}
}

// heldElsewhere records that the store refused mac's lease on an address
// another client holds: mac's binding b to it goes, the holder's lease
// takes its place until it ends.
func (a *allocator) heldElsewhere(mac string, b *binding, taken *store.AddressTakenError) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byMAC[mac] == b && b.ip == taken.IP {
		a.remove(b)
	}
	a.learnLocked(store.Lease{Segment: a.seg, MAC: taken.By, IP: taken.IP, Expires: taken.Until, Declined: taken.Declined}, a.now())
	a.log.Info("address leased by another server", "segment", a.seg, "ip", taken.IP, "holder", taken.By, "until", taken.Until, "refused", mac)
}

// release ends mac's lease on ip now (DHCPRELEASE). The binding is kept,
// expired, so that the MAC gets the same address back while nobody else
// took it.
func (a *allocator) release(mac string, ip netip.Addr) error {
	a.mu.Lock()
	b := a.byMAC[mac]
	if b == nil || b.ip != ip {
		a.mu.Unlock()
		return nil
	}
	now := a.now()
	b.expires, b.hold = now, now
	l := store.Lease{Segment: a.seg, MAC: mac, IP: ip, Hostname: b.hostname, Expires: now}
	stored := b.stored
	a.mu.Unlock()
	if !stored {
		return nil
	}
	if err := a.store.PutLease(l); err != nil {
		return fmt.Errorf("release lease %v of %s: %w", ip, mac, err)
	}
	return nil
}

// decline takes ip out of service for one lease time (DHCPDECLINE: the
// client found it in use) and drops mac's binding to it.
func (a *allocator) decline(mac string, ip netip.Addr) error {
	a.mu.Lock()
	b := a.byMAC[mac]
	if b == nil || b.ip != ip {
		a.mu.Unlock()
		return nil
	}
	a.remove(b)
	d := &binding{key: declineKey(ip), ip: ip, declined: true, expires: a.now().Add(a.leaseTime)}
	a.byIP[u32(ip)] = d
	a.mu.Unlock()

	// The client's lease goes first: it claims the address (store
	// leases.go), and the declined record claims it in its place.
	if b.stored {
		if err := a.store.DeleteLease(a.seg, mac); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("drop lease of %s on declined address %v: %w", mac, ip, err)
		}
	}
	l := store.Lease{Segment: a.seg, MAC: d.key, IP: ip, Expires: d.expires, Declined: true}
	if err := a.store.PutLease(l); err != nil {
		return fmt.Errorf("record declined address %v: %w", ip, err)
	}
	a.mu.Lock()
	d.stored = true
	a.mu.Unlock()
	// Something else on the network answers for ip: worth an operator's look.
	a.log.Warn("address declined by client: in use on the network", "segment", a.seg, "ip", ip, "mac", mac, "until", d.expires)
	return nil
}
