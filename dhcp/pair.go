package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// A DHCP pair: two appliances on one segment, sharing one store (etcd),
// answer as one DHCP service (docs/scale-out.md, "DHCP pair"). The rule:
//
//   - While both are alive, each answers DISCOVER and INIT-REBOOT REQUEST
//     only for the clients whose RFC 3074 hash bucket (the Pearson hash of
//     the MAC, 0-255) is its own: the primary's are 0-127, the
//     secondary's 128-255. Each offers new addresses only from its own
//     half of every range: the primary the lower, the secondary the upper.
//     So the two never compete for a client or an address.
//   - A REQUEST naming the other's server identifier releases any offer of
//     ours, as from any other server. A renewing, rebinding or
//     INIT-REBOOT REQUEST from a client this appliance has no binding for
//     is answered from the client's lease in the store: the peer's lease is
//     adopted.
//   - Each appliance bumps its heartbeat counter in the store every
//     second and reads the peer's. A peer whose counter has not changed for
//     FailoverAfter, by this appliance's monotonic clock (never by
//     comparing the two clocks), is dead: this appliance reloads every
//     segment's leases from the store (so that it never offers an address
//     the peer leased) and then answers every client from whole ranges.
//     When the counter moves again, the split resumes. An appliance that
//     stops serving DHCP cleanly says goodbye (store.HeartbeatStop) once
//     no packet is left in its handlers: its peer takes it for dead at its
//     next heartbeat instead of failover_after later, as an ISC dhcpd
//     failover peer in the shutdown state lets its partner go on alone.
//   - An ACK is sent only after the lease's transaction committed; the
//     transaction claims the address (store.ErrAddressTaken when another
//     client's live lease holds it), so even two appliances that both
//     think they serve a client never lease one address twice: the loser
//     NAKs and the client starts again from DISCOVER.
//   - An appliance whose store is unavailable cannot read the peer's
//     heartbeat and does not take the peer for dead (it could write no
//     lease for the peer's clients); it answers only renewals of the live
//     leases it knows, from memory (leasereq.go, keptOnRefusal).

// Role is an appliance's place in a DHCP pair.
type Role int

// Roles.
const (
	// Primary answers hash buckets 0-127 and leases from the lower half
	// of each range while both run.
	Primary Role = iota
	// Secondary answers buckets 128-255 and the upper halves.
	Secondary
)

// String returns the configuration name of the role.
func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Secondary:
		return "secondary"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole is the inverse of String.
func ParseRole(s string) (Role, error) {
	switch s {
	case "primary":
		return Primary, nil
	case "secondary":
		return Secondary, nil
	}
	return 0, fmt.Errorf("unknown pair role %q (want primary or secondary)", s)
}

// Failover timing.
const (
	// DefaultFailoverAfter is how long the peer's heartbeat may stand
	// still before the peer is taken for dead.
	DefaultFailoverAfter = 10 * time.Second
	// MinFailoverAfter: a heartbeat is written and read every second, so
	// a live peer's counter may look still for up to two.
	MinFailoverAfter = 3 * time.Second
	// DefaultHeartbeatEvery is how often the heartbeats are written and read.
	DefaultHeartbeatEvery = time.Second
)

// Heartbeats keep the pair's heartbeat counters; *store.DB satisfies it.
// HeartbeatValue returns store.ErrNotFound for a name never written.
// HeartbeatStop is the goodbye of an appliance that stops serving.
type Heartbeats interface {
	Heartbeat(name string) error
	HeartbeatValue(name string) (store.HeartbeatState, error)
	HeartbeatStop(name string) error
}

// Pair makes this Server one of a DHCP pair. The store must be the one
// the peer uses (store.backend etcd), so that both see every lease and
// address claim.
type Pair struct {
	// Name is this appliance's name in the pair (a resource name); its
	// heartbeat is written under it. Required.
	Name string
	// Peer is the other appliance's Name. Required.
	Peer string
	// Role is Primary (default) or Secondary; the peer has the other.
	Role Role
	// FailoverAfter is how long the peer's heartbeat may stand still
	// before this appliance serves every client; default
	// DefaultFailoverAfter (10s), at least MinFailoverAfter.
	FailoverAfter time.Duration
	// HeartbeatEvery is how often heartbeats are written and read;
	// default DefaultHeartbeatEvery (1s). FailoverAfter must be at least
	// three of them.
	HeartbeatEvery time.Duration
	// Heartbeats is where the heartbeats live. Required.
	Heartbeats Heartbeats
}

// Validate checks the pair's settings, with their defaults applied.
func (p *Pair) Validate() error {
	var errs []error
	if err := names.CheckName(p.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if err := names.CheckName(p.Peer); err != nil {
		errs = append(errs, fmt.Errorf("peer: %w", err))
	}
	if p.Name == p.Peer && p.Name != "" {
		errs = append(errs, fmt.Errorf("peer: %s is this appliance's own name", names.Label(p.Peer)))
	}
	if p.Role != Primary && p.Role != Secondary {
		errs = append(errs, fmt.Errorf("role: %v is not primary or secondary", p.Role))
	}
	every, after := p.timing()
	if every <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat interval %v is not positive", every))
	}
	if after < max(MinFailoverAfter, 3*every) {
		errs = append(errs, fmt.Errorf("failover_after: %v is below %v (heartbeats every %v may look still for two)", after, max(MinFailoverAfter, 3*every), every))
	}
	if p.Heartbeats == nil {
		errs = append(errs, errors.New("no heartbeat store"))
	}
	return errors.Join(errs...)
}

func (p *Pair) timing() (every, after time.Duration) {
	every, after = p.HeartbeatEvery, p.FailoverAfter
	if every == 0 {
		every = DefaultHeartbeatEvery
	}
	if after == 0 {
		after = DefaultFailoverAfter
	}
	return every, after
}

// HashBucket is the RFC 3074 hash bucket of a MAC, which decides which
// server of a pair answers it: Pearson's hash with the RFC's mixing table
// (section 6), starting from the key's length and taking its bytes from
// the last. The primary answers buckets 0-127, the secondary 128-255.
func HashBucket(hw [6]byte) uint8 {
	h := uint8(len(hw))
	for i := len(hw); i > 0; {
		i--
		h = loadbMix[h^hw[i]]
	}
	return h
}

// loadbMix is RFC 3074's mixing table: the 256 byte values in
// pseudo-random order.
var loadbMix = [256]uint8{
	251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0,
	232, 31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57,
	223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179,
	197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23,
	97, 16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108,
	244, 67, 207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193,
	200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75,
	27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115,
	241, 73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221,
	148, 154, 122, 12, 84, 82, 163, 44, 139, 228, 236, 205, 242, 217, 11,
	187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118, 112, 184, 172, 87,
	2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66,
	231, 52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189,
	93, 92, 51, 53, 183, 19, 171, 72, 50, 33, 104, 101, 69, 8, 252, 83, 120,
	76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136, 208, 162, 129, 190,
	132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
	149, 80, 170, 68, 6, 169, 234, 151,
}

// split reports whether a request is one the pair divides by hash
// bucket: a DISCOVER, or an INIT-REBOOT REQUEST (no server identifier, no
// ciaddr).
func split(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) bool {
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return true
	case dhcpv4.MessageTypeRequest:
		return !fromIP(req.ServerIdentifier()).IsValid() && !fromIP(req.ClientIPAddr).IsValid()
	}
	return false
}

// pairState runs this appliance's side of a pair.
type pairState struct {
	cfg          Pair
	every, after time.Duration
	log          *slog.Logger
	allocs       []*allocator // the dhcp-mode segments'
	// peerUp: the peer is alive and the pair splits the work. Read by
	// every packet; written by run.
	peerUp atomic.Bool

	// Owned by step (run's goroutine).
	seen    bool
	last    uint64    // the peer's counter when last read
	changed time.Time // when it was last seen to change (monotonic)
	stopped bool      // the peer said goodbye and has not beaten since
	failing bool      // a heartbeat write or read is failing (logged once)
}

func newPairState(p Pair, allocs []*allocator, log *slog.Logger, start time.Time) *pairState {
	ps := &pairState{cfg: p, allocs: allocs, log: log.With("pair", p.Name, "peer", p.Peer, "role", p.Role.String()), changed: start}
	ps.every, ps.after = p.timing()
	ps.peerUp.Store(true)
	for _, a := range allocs {
		a.setShare(true, p.Role == Secondary)
	}
	return ps
}

// serves reports whether this appliance answers a split request from hw:
// every one while the peer is dead, its own buckets' while it lives.
func (ps *pairState) serves(hw [6]byte) bool {
	if !ps.peerUp.Load() {
		return true
	}
	return (HashBucket(hw) >= 128) == (ps.cfg.Role == Secondary)
}

// admit is the pair's check of a request before its machine record is
// read: a SELECTING REQUEST that takes up another server's offer (the
// peer's, with every client's) releases ours and gets no answer, without
// a store read for it. It returns the drop reason, or "" to go on.
func (ps *pairState) admit(p *admitted) (reason, detail string) {
	if p.mt != dhcpv4.MessageTypeRequest || p.seg.alloc == nil {
		return "", ""
	}
	if sid := fromIP(p.req.ServerIdentifier()); !sid.IsValid() || sid == p.serverIP {
		return "", ""
	}
	p.seg.alloc.otherSelected(p.mac)
	return dropSilent, "client selected another server"
}

// run beats and watches the peer every interval until ctx ends.
func (ps *pairState) run(ctx context.Context) {
	t := time.NewTicker(ps.every)
	defer t.Stop()
	ps.log.Info("dhcp pair started", "failover_after", ps.after, "heartbeat_every", ps.every)
	for {
		ps.step(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// step writes this appliance's heartbeat, reads the peer's and changes
// the pair's mode when the peer died or came back. now carries the
// monotonic clock: only differences of step times are compared.
func (ps *pairState) step(now time.Time) {
	hb := ps.cfg.Heartbeats
	werr := hb.Heartbeat(ps.cfg.Name)
	v, rerr := hb.HeartbeatValue(ps.cfg.Peer)
	if rerr == nil {
		ps.stopped = v.Stopped
	}
	switch {
	case rerr == nil && (!ps.seen || v.Count != ps.last):
		ps.seen, ps.last, ps.changed = true, v.Count, now
	case errors.Is(rerr, store.ErrNotFound):
		rerr = nil // a peer that never started: its counter stands still
	case rerr != nil:
		// A heartbeat this appliance cannot read (its store is down)
		// says nothing of the peer, and the peer's half could not be
		// served anyway: no lease can be written. The stillness is
		// counted again from when the counter can be read: a peer that
		// is really dead is found failover_after after that.
		ps.changed = now
	}
	switch err := errors.Join(werr, rerr); {
	case err != nil && !ps.failing:
		ps.log.Warn("dhcp pair heartbeat failing", "err", err)
	case err == nil && ps.failing:
		ps.log.Info("dhcp pair heartbeat working again")
	}
	ps.failing = werr != nil || rerr != nil
	alive := !ps.stopped && now.Sub(ps.changed) < ps.after
	switch {
	case alive && !ps.peerUp.Load():
		for _, a := range ps.allocs {
			a.setShare(true, ps.cfg.Role == Secondary)
		}
		ps.peerUp.Store(true)
		ps.log.Warn("dhcp pair peer is back: answering this appliance's half again")
		// What the survivor leased stays known to it; the peer learns
		// it when it loads or adopts the leases.
		ps.reload()
	case !alive && ps.peerUp.Load():
		// Only with the peer's leases known may its half be offered.
		if err := ps.reload(); err != nil {
			return // still split; tried again next step
		}
		for _, a := range ps.allocs {
			a.setShare(false, false)
		}
		ps.peerUp.Store(false)
		if ps.stopped {
			ps.log.Warn("dhcp pair peer stopped (it said goodbye): answering every client from whole ranges")
			return
		}
		ps.log.Warn("dhcp pair peer is dead: answering every client from whole ranges",
			"heartbeat_still_for", now.Sub(ps.changed).Round(time.Millisecond).String())
	}
}

// goodbye tells the peer that this appliance no longer answers, so that
// it takes over at its next heartbeat. Serve calls it after run has
// returned and no packet is left in a handler. When the store cannot
// take it, the peer finds out by the stillness of the counter.
func (ps *pairState) goodbye() {
	if err := ps.cfg.Heartbeats.HeartbeatStop(ps.cfg.Name); err != nil {
		ps.log.Warn("dhcp pair: could not tell the peer this appliance stopped; it takes over after failover_after", "err", err)
		return
	}
	ps.log.Info("dhcp pair stopped: told the peer, which answers every client from its next heartbeat")
}

// reload brings every allocator up to date with the store's leases.
func (ps *pairState) reload() error {
	var errs []error
	for _, a := range ps.allocs {
		if err := a.reload(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		ps.log.Error("dhcp pair: reload leases", "err", err)
	}
	return err
}
