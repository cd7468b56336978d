package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/internal/ratelog"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// pxePort is where PXE clients send their DHCPREQUEST to a proxyDHCP server
// (PXE 2.1 §2.2.1).
const pxePort = 4011

// segState is a segment with its defaults filled in and its allocator (nil
// in proxy mode).
type segState struct {
	Segment
	alloc *allocator
	// found counts the segment's temporary records (MaxDiscovered).
	found *discovered
}

// instance is the state of one running Serve call, shared by its listeners.
type instance struct {
	log      *slog.Logger
	now      func() time.Time
	ttl      time.Duration
	env      bootEnv
	machines MachineStore
	grants   Granter
	relayed  []*segState
	relays   Relays
	m        *metrics
	warns    ratelog.Limiter // its default interval is warnEvery
	lim      *limiter
	// pair is this server's side of a DHCP pair (pair.go); nil: alone.
	pair *pairState
	// deferLookup: machine lookups cross the network (Server.RemoteStore
	// or a pair) and run in finish, on a worker.
	deferLookup bool
	// limits gathers the packets dropped by limits for the log line
	// Serve writes every warnEvery (reportLimits).
	limits limitReport

	// gate and inflight let Serve wait for handlers still running after
	// the sockets closed, so that nothing touches the store after Serve.
	gate     sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

// listener is one coredhcp server: an interface and a port.
type listener struct {
	in    *instance
	iface string
	port  int
	// ip is the interface's first IPv4 address, the default server id.
	ip netip.Addr
	// direct is the segment served on iface (nil on a relay-only interface).
	direct *segState
	// relays: iface is a relay interface (Relays.Interfaces), where
	// relayed packets may be accepted.
	relays bool
	// own: served by our own socket (plugin.go, serveOwn), which tells the
	// handler each packet's UDP source, instead of by coredhcp's.
	own bool
	// bind is the address an own listener is bound to on a direct
	// segment's relay interface; zero: 0.0.0.0 (relay-only interface).
	bind netip.Addr
}

// handle answers one request from src (its UDP source; zero when the
// socket cannot tell): the reply, or nil for none. It is the whole of the
// plugin's work; plugin.go adapts it to coredhcp and to our own sockets.
func (l *listener) handle(req, resp *dhcpv4.DHCPv4, src netip.Addr) *dhcpv4.DHCPv4 {
	reply, _ := l.serve(req, resp, src, nil)
	return reply
}

// serve is handle for a caller that may not be able to wait for the
// store: a socket's reader, which gives later (nil: serve may wait).
// Then a request whose answer may wait for a synced write
// (admitted.waits) is answered in one of two ways. A REQUEST from an
// unknown machine whose answer writes nothing but its lease (the common
// case under load) is answered up to the lease at once, and the lease
// store's writer finishes it, sending its datagram through the func later
// returned, once the lease is durable (finishesLater). Any other is
// checked and counted but not answered: serve returns nil and the rest of
// the work, which the caller must run (where waiting is fine) for its
// reply. Everything else is answered at once.
func (l *listener) serve(req, resp *dhcpv4.DHCPv4, src netip.Addr, later func() func(datagram)) (*dhcpv4.DHCPv4, func() *dhcpv4.DHCPv4) {
	in := l.in
	in.gate.RLock()
	if in.closed {
		in.gate.RUnlock()
		in.m.drop(dropShutdown)
		return nil, nil
	}
	in.inflight.Add(1)
	in.gate.RUnlock()
	handedOff := false
	defer func() {
		if !handedOff {
			in.inflight.Done()
		}
	}()

	mt := req.MessageType()
	in.m.request(mt)
	p, reason, detail := l.admit(req, resp, src)
	if p != nil && later != nil && p.waits() {
		// h: the reader did the work up to the lease, and a worker
		// writes it and finishes (the answer writes more than its lease).
		var h *held
		if giver := l.finishesLater(p); giver != nil {
			var reply *dhcpv4.DHCPv4
			reply, reason, detail, h = l.finishStart(p)
			switch {
			case h == nil:
				return l.account(req, mt, src, reply, reason, detail), nil
			case !h.writes:
				// Still in flight (Serve waits for it) until then ran.
				handedOff = true
				send := later()
				giver.PutLeaseThen(h.write.lease, func(err error) {
					send(l.datagramOf(req, l.safeRest(func() *dhcpv4.DHCPv4 {
						defer in.inflight.Done()
						reply, reason, detail := h.then(err)
						return l.account(req, mt, src, reply, reason, detail)
					})))
				})
				return nil, nil
			}
		}
		// Still in flight (Serve waits for it) until rest has run.
		handedOff = true
		return nil, func() *dhcpv4.DHCPv4 {
			defer in.inflight.Done()
			var reply *dhcpv4.DHCPv4
			var reason, detail string
			if h != nil {
				reply, reason, detail = h.wait()
			} else {
				reply, reason, detail = l.finish(p)
			}
			return l.account(req, mt, src, reply, reason, detail)
		}
	}
	var reply *dhcpv4.DHCPv4
	if p != nil {
		reply, reason, detail = l.finish(p)
	}
	return l.account(req, mt, src, reply, reason, detail), nil
}

// account counts and logs the outcome of request req of type mt: reply,
// or none for reason (empty: none was due), and returns reply.
func (l *listener) account(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, src netip.Addr, reply *dhcpv4.DHCPv4, reason, detail string) *dhcpv4.DHCPv4 {
	in := l.in
	if reply != nil {
		in.granted(req, reply)
		in.m.reply(reply.MessageType())
		if !in.log.Enabled(context.Background(), slog.LevelDebug) {
			return reply
		}
		in.log.Debug("dhcp reply", "iface", l.iface, "port", l.port, "mac", req.ClientHWAddr.String(),
			"request", mt.String(), "reply", reply.MessageType().String(), "yiaddr", reply.YourIPAddr.String(),
			"file", reply.BootFileName)
		return reply
	}
	if reason == "" {
		return nil // handled, no reply due (RELEASE, DECLINE)
	}
	in.m.drop(reason)
	if reason == dropLimited {
		return nil // counted by segment and reason, logged once per interval
	}
	level := slog.LevelDebug
	switch reason {
	case dropStoreError:
		level = slog.LevelError
	case dropUnknownRelay, dropRelayRefused, dropExhausted, dropStoreDown:
		level = slog.LevelWarn
	}
	if !in.log.Enabled(context.Background(), level) {
		return nil
	}
	held := 0
	if level == slog.LevelWarn {
		// Hostile traffic chooses how often these happen: the counter
		// has them all, the log one line per reason and interval.
		var ok bool
		if ok, held = in.warns.Allow(reason, in.now()); !ok {
			return nil
		}
	}
	in.log.Log(context.Background(), level, "dhcp request dropped", "reason", reason, "detail", detail, "iface", l.iface,
		"port", l.port, "mac", req.ClientHWAddr.String(), "type", mt.String(), "giaddr", req.GatewayIPAddr.String(),
		"src", srcText(src), "held_back", held)
	return nil
}

// admitted is a request past the checks that write nothing: what finish
// needs to answer it.
type admitted struct {
	req, resp  *dhcpv4.DHCPv4
	src        netip.Addr
	seg        *segState
	serverIP   netip.Addr
	mt         dhcpv4.MessageType
	mac        string
	hw         [6]byte
	now        time.Time
	macTracked bool
	// machine is the MAC's record (nil: none); not looked up for RELEASE
	// and DECLINE.
	machine *store.Machine
	// lookup: the record is looked up by finish, not admit (a shared
	// store answers over the network: not in a socket's reader).
	lookup bool
	// storeDown is the lookup's error when the store is unavailable
	// (wrapping store.ErrUnavailable): the record is unknown, and only a
	// renewal from memory is answered (renewsFromMemory).
	storeDown error
}

// waits reports whether finish may wait for a synced store write: a
// lease (REQUEST, RELEASE, DECLINE), a known machine's sighting, or an
// unknown machine's discovered record. A DISCOVER or INFORM from an
// unknown MAC on a segment without discovery writes nothing.
func (p *admitted) waits() bool {
	if p.lookup {
		return true
	}
	switch p.mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeInform:
		return p.machine != nil || p.seg.Discovery
	}
	return true
}

// process does the work of handle: it returns the reply, or nil with the
// drop reason and a detail for the log (an empty reason: no reply is due).
func (l *listener) process(req, resp *dhcpv4.DHCPv4, src netip.Addr) (*dhcpv4.DHCPv4, string, string) {
	p, reason, detail := l.admit(req, resp, src)
	if p == nil {
		return nil, reason, detail
	}
	return l.finish(p)
}

// admit is the first part of process: the checks, the per-MAC limit and
// the machine lookup. It returns nil with the drop reason and detail, or
// the request for finish.
func (l *listener) admit(req, resp *dhcpv4.DHCPv4, src netip.Addr) (*admitted, string, string) {
	in := l.in
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, dropMalformed, "not a BOOTREQUEST"
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return nil, dropMalformed, "not an Ethernet client"
	}
	if hw := req.ClientHWAddr; hw[0]&1 != 0 || (hw[0]|hw[1]|hw[2]|hw[3]|hw[4]|hw[5]) == 0 {
		return nil, dropMalformed, "zero or group chaddr"
	}
	mt := req.MessageType()
	switch mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeDecline:
	default:
		return nil, dropUnsupported, "message type " + mt.String()
	}
	if resp == nil {
		resp = newReply(req)
	}
	seg, reason, detail := l.segmentFor(req, src)
	if seg == nil {
		return nil, reason, detail
	}
	serverIP := seg.ServerIP
	if !serverIP.IsValid() {
		serverIP = l.ip
	}
	if !serverIP.IsValid() {
		return nil, dropNoSegment, "no server address on interface " + l.iface
	}
	if l.port == pxePort && seg.Mode != ModeProxy {
		return nil, dropWrongPort, "port 4011 on a dhcp-mode segment"
	}
	if in.pair != nil && seg.Mode == ModeDHCP && split(req, mt) && !in.pair.serves([6]byte(req.ClientHWAddr)) {
		// The pair's other server answers this client (pair.go).
		return nil, dropPeer, ""
	}
	p := &admitted{req: req, resp: resp, src: src, seg: seg, serverIP: serverIP, mt: mt,
		mac: req.ClientHWAddr.String(), hw: [6]byte(req.ClientHWAddr), now: in.now()}
	// A MAC already tracked is held to its rate before anything costs a
	// store read; an untracked one gets its bucket once past the
	// per-source limit (finish), so that random MACs do not fill the table.
	var macLimited bool
	macLimited, p.macTracked = in.lim.macLimited(p.hw, p.now, false)
	if macLimited {
		return nil, in.limitDrop(seg, limitMACRate, p.now), ""
	}
	if mt == dhcpv4.MessageTypeRelease || mt == dhcpv4.MessageTypeDecline {
		return p, "", ""
	}
	if in.pair != nil {
		if reason, detail := in.pair.admit(p); reason != "" {
			return nil, reason, detail
		}
	}
	if in.deferLookup {
		p.lookup = true
		return p, "", ""
	}
	return in.lookup(p)
}

// lookup finds the record of p's MAC, as admit's last step or finish's
// first.
func (in *instance) lookup(p *admitted) (*admitted, string, string) {
	switch m, err := in.machines.GetMachine(p.mac); {
	case err == nil:
		// A copy, so that m itself stays on the stack: most lookups find
		// nothing (a new client) and need no heap record.
		found := m
		p.machine = &found
	case errors.Is(err, store.ErrUnavailable):
		// Not a drop yet: a renewal of a live lease is answered without
		// the record (finish).
		p.storeDown = fmt.Errorf("look up machine: %w", err)
	case !errors.Is(err, store.ErrNotFound):
		return nil, dropStoreError, fmt.Sprintf("look up machine: %v", err)
	}
	return p, "", ""
}

// finish is the rest of process, from the decision on: the limits that
// apply to new clients, the reply, and what the store records of it. It
// waits for the lease a REQUEST writes.
func (l *listener) finish(p *admitted) (*dhcpv4.DHCPv4, string, string) {
	reply, reason, detail, h := l.finishStart(p)
	if h != nil {
		return h.wait()
	}
	return reply, reason, detail
}

// finishesLater says whether p's answer may be started by a socket's
// reader and finished by its lease's write (serve): it returns the lease
// store that can take the lease without waiting, or nil. A REQUEST
// qualifies when its machine was looked up and is unknown (a known
// machine's sighting may be written after the lease) on a dhcp-mode
// segment whose store gives leases so. Up to its lease such a REQUEST
// reads only memory and the local store (the lookup admit did; a new
// record's reservation may look again).
func (l *listener) finishesLater(p *admitted) leaseGiver {
	if p.mt != dhcpv4.MessageTypeRequest || p.lookup || p.machine != nil || p.storeDown != nil || p.seg.alloc == nil {
		return nil
	}
	giver, _ := p.seg.alloc.store.(leaseGiver)
	return giver
}

// held is an answer that waits for its lease: finishStart stopped at the
// write, and then finishes the answer with the store's outcome.
type held struct {
	write *leaseWrite
	then  func(err error) (*dhcpv4.DHCPv4, string, string)
	// writes: then writes to the store itself (a known machine's
	// sighting, a new machine's record), so it must run where waiting
	// for the store is fine.
	writes bool
}

// wait writes the lease and finishes the answer.
func (h *held) wait() (*dhcpv4.DHCPv4, string, string) {
	return h.then(h.write.a.store.PutLease(h.write.lease))
}

// finishStart is finish up to a REQUEST's lease write: the answer, or,
// when it waits for the lease, nil and what finishes it.
func (l *listener) finishStart(p *admitted) (*dhcpv4.DHCPv4, string, string, *held) {
	in := l.in
	if p.lookup {
		p.lookup = false
		if found, reason, detail := in.lookup(p); found == nil {
			return nil, reason, detail, nil
		}
	}
	req, resp, seg, mt, mac, machine, now := p.req, p.resp, p.seg, p.mt, p.mac, p.machine, p.now
	if mt == dhcpv4.MessageTypeRelease || mt == dhcpv4.MessageTypeDecline {
		return nil, l.releaseOrDecline(req, seg, p.serverIP, mac, mt), "", nil
	}
	client := parseClient(req)
	var d decision
	if p.storeDown != nil {
		if why := renewsFromMemory(seg, req, mt, mac); why != "" {
			return nil, dropStoreDown, why + ": " + p.storeDown.Error(), nil
		}
		d = decideUnread(&seg.Segment)
	} else {
		d = decide(&seg.Segment, client, machine, in.env)
	}
	if !d.Reply {
		return nil, dropPolicy, d.Reason, nil
	}
	// Known machines and the holders of an offer or lease are never held
	// to the per-source rate or the caps: a flood of new MACs slows only
	// other new MACs.
	established := (machine != nil && !machine.Temporary) || (seg.alloc != nil && seg.alloc.has(mac))
	if !established && in.lim.sourceLimited(seg, p.src, now) {
		return nil, in.limitDrop(seg, limitSourceRate, now), "", nil
	}
	if !p.macTracked {
		if limited, _ := in.lim.macLimited(p.hw, now, true); limited {
			return nil, in.limitDrop(seg, limitMACRate, now), "", nil
		}
	}
	newRecord := machine == nil && d.Discover && (mt == dhcpv4.MessageTypeDiscover || mt == dhcpv4.MessageTypeRequest)
	if newRecord && !seg.found.reserve(mac, seg.Name, now, in.machines.GetMachine) {
		return nil, in.limitDrop(seg, limitDiscovered, now), "", nil
	}
	var h *held
	var reply *dhcpv4.DHCPv4
	var reason, detail string
	if seg.Mode == ModeProxy {
		reply, reason, detail = l.proxyReply(req, resp, seg, p.serverIP, d, mt)
	} else {
		reply, reason, detail, h = l.dhcpReply(req, resp, seg, p.serverIP, d, mt, mac, established, p.storeDown)
	}
	if h == nil {
		reply, reason, detail = l.recorded(p, client, newRecord, reply, reason, detail)
		return reply, reason, detail, nil
	}
	then := h.then
	h.then = func(err error) (*dhcpv4.DHCPv4, string, string) {
		reply, reason, detail := then(err)
		return l.recorded(p, client, newRecord, reply, reason, detail)
	}
	// A known machine's sighting and a new machine's record are written
	// after the lease.
	h.writes = machine != nil || newRecord
	return nil, "", "", h
}

// recorded is the end of finish: a limit's drop is counted, and the
// store records what the reply says of a known or a new machine.
func (l *listener) recorded(p *admitted, client bootClient, newRecord bool, reply *dhcpv4.DHCPv4, reason, detail string) (*dhcpv4.DHCPv4, string, string) {
	in, seg := l.in, p.seg
	if reason == dropLimited {
		reason, detail = in.limitDrop(seg, detail, p.now), ""
	}
	kept := false
	switch {
	case reply == nil:
	case p.machine != nil:
		in.sighted(seg, p.req, reply, p.machine, client)
	case newRecord && boots(reply):
		// Only once the reply that boots it is built (and before it is
		// sent, so the script server finds the record): a MAC that got no
		// address (pool exhausted, NAK, silence) gets no record either.
		kept = in.discover(seg, p.mac, client)
	}
	if newRecord && !kept {
		seg.found.release(p.mac)
	}
	return reply, reason, detail
}

// limitDrop counts a packet of segment seg dropped by a limit and returns
// the drop reason.
func (in *instance) limitDrop(seg *segState, reason string, now time.Time) string {
	in.m.limit(seg.Name, reason)
	in.limits.add(seg.Name, reason, now)
	return dropLimited
}

// reportLimits logs, one line per segment and reason, how many packets the
// limits dropped since the last report, and updates the record gauges.
func (in *instance) reportLimits(segs []*segState) {
	counts, since := in.limits.take()
	for k, n := range counts {
		in.log.Warn("dhcp requests limited", "segment", k.seg, "reason", k.reason, "count", n,
			"since", since.Format(time.RFC3339))
	}
	for _, s := range segs {
		in.m.records.WithLabelValues(s.Name).Set(float64(s.found.count()))
	}
}

// sighted records where a known machine was seen: its segment, the address
// it was acknowledged (or, in proxy mode, asks from), its firmware and the
// time. A failure is logged: the facts are informational, the reply is not
// held back for them.
func (in *instance) sighted(seg *segState, req, reply *dhcpv4.DHCPv4, m *store.Machine, c bootClient) {
	s := store.Sighting{Segment: seg.Name, Arch: archName(c), Client: c.lifecycle().Firmware.String(), At: in.now()}
	if s.Client == "none" {
		s.Client = "" // an installed OS's DHCP client says nothing about its firmware
	}
	switch {
	case reply.MessageType() == dhcpv4.MessageTypeAck && fromIP(reply.YourIPAddr).IsValid():
		s.IP = fromIP(reply.YourIPAddr).String()
	case seg.Mode == ModeProxy && fromIP(req.ClientIPAddr).IsValid():
		s.IP = fromIP(req.ClientIPAddr).String()
	}
	if _, due := m.Sighted(s); !due {
		return // nothing new: no store transaction on this packet
	}
	if _, err := in.machines.RecordSighting(m.MAC, s); err != nil {
		in.log.Warn("record machine sighting", "mac", m.MAC, "segment", seg.Name, "err", err)
	}
}

// segmentFor finds the segment of a request from src: by giaddr for
// relayed packets, which are accepted only on a relay interface and from
// an allowed source (relay.go), else the interface's own segment; a PXE
// request on port 4011 comes straight from a client that already has an
// address, so a relayed proxy segment is also found by ciaddr.
func (l *listener) segmentFor(req *dhcpv4.DHCPv4, src netip.Addr) (*segState, string, string) {
	if gi := fromIP(req.GatewayIPAddr); gi.IsValid() {
		if why := l.relayRefused(src); why != "" {
			return nil, dropRelayRefused, why
		}
		for _, s := range l.in.relayed {
			if s.Subnet.Contains(gi) {
				return s, "", ""
			}
		}
		return nil, dropUnknownRelay, "no relayed segment contains giaddr " + gi.String()
	}
	if l.direct != nil {
		return l.direct, "", ""
	}
	if ci := fromIP(req.ClientIPAddr); l.port == pxePort && ci.IsValid() {
		for _, s := range l.in.relayed {
			if s.Mode == ModeProxy && s.Subnet.Contains(ci) {
				return s, "", ""
			}
		}
	}
	return nil, dropNoSegment, "no segment served directly on " + l.iface
}

// releaseOrDecline applies DHCPRELEASE or DHCPDECLINE; neither is answered.
// It returns a drop reason, empty when the message was applied.
//
// coredhcp's server (server/handle.go at the pinned version) discards
// DHCPDECLINE as an "unhandled message type" before running any plugin;
// DECLINEs reach this code through the packet-socket reader of decline.go.
func (l *listener) releaseOrDecline(req *dhcpv4.DHCPv4, seg *segState, serverIP netip.Addr, mac string, mt dhcpv4.MessageType) string {
	if seg.alloc == nil {
		return dropUnsupported
	}
	if sid := fromIP(req.ServerIdentifier()); sid.IsValid() && sid != serverIP {
		return dropSilent // meant for another server
	}
	var err error
	if mt == dhcpv4.MessageTypeRelease {
		err = seg.alloc.release(mac, fromIP(req.ClientIPAddr))
	} else {
		err = seg.alloc.decline(mac, fromIP(req.RequestedIPAddress()))
	}
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			return dropStoreDown // counted, and logged once per interval
		}
		l.in.log.Error("dhcp lease update failed", "segment", seg.Name, "mac", mac, "type", mt.String(), "err", err)
		return dropStoreError
	}
	return ""
}

// proxyReply answers a network-boot client on a proxy-mode segment with
// boot information only: an OFFER to a DISCOVER on port 67, an ACK to a
// REQUEST on port 4011.
func (l *listener) proxyReply(req, resp *dhcpv4.DHCPv4, seg *segState, serverIP netip.Addr, d decision, mt dhcpv4.MessageType) (*dhcpv4.DHCPv4, string, string) {
	var typ dhcpv4.MessageType
	switch {
	case l.port != pxePort && mt == dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case l.port == pxePort && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, dropUnsupported, "proxy mode answers DISCOVER on 67 and REQUEST on 4011 only"
	}
	if d.BootFile == "" {
		return nil, dropPolicy, d.Reason
	}
	// coredhcp routes a reply by the request: giaddr → the relay, ciaddr →
	// unicast, broadcast flag → 255.255.255.255, otherwise a raw Ethernet
	// frame to yiaddr. A proxy reply has yiaddr 0.0.0.0, so a client with
	// no address must be answered by broadcast: setting the flag on the
	// request (which coredhcp reads after the plugin chain) and on the
	// reply makes coredhcp send it to 255.255.255.255:68 on this interface.
	if fromIP(req.GatewayIPAddr) == (netip.Addr{}) && fromIP(req.ClientIPAddr) == (netip.Addr{}) {
		req.SetBroadcast()
		resp.SetBroadcast()
	}
	fillReply(req, resp, typ, replyParams{Seg: &seg.Segment, ServerIP: serverIP, Boot: d})
	return resp, "", ""
}

// dhcpReply answers on a dhcp-mode segment: an address from the allocator,
// the segment's options and the boot information.
//
// A client that is not established (a known machine, or the holder of an
// offer or lease) gets an offer only under the pool's MaxPendingOffers, and
// no address from a REQUEST without an offer or lease: otherwise a flood of
// SELECTING or RENEWING REQUESTs for random addresses would lease the pool
// without one DISCOVER. A SELECTING one is NAKed, so that a client whose
// offer our restart lost starts again from DISCOVER at once; a RENEWING
// one is dropped. Both count as limited (unoffered_request); the drops
// return dropLimited with the limit's reason as detail.
//
// storeDown is the machine lookup's store.ErrUnavailable, if it failed
// so: the lease is not written (the attempt would only wait out the
// store's request timeout a second time), and only a renewal is
// answered, from memory, as if the write had been refused.
//
// A REQUEST that writes a lease is returned held: its answer waits for
// the write.
func (l *listener) dhcpReply(req, resp *dhcpv4.DHCPv4, seg *segState, serverIP netip.Addr, d decision, mt dhcpv4.MessageType, mac string, established bool, storeDown error) (*dhcpv4.DHCPv4, string, string, *held) {
	p := replyParams{Seg: &seg.Segment, ServerIP: serverIP, Config: true, Boot: d}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		if err := seg.alloc.refusesNew(mac); err != nil {
			return nil, dropStoreError, fmt.Sprintf("segment %s: no offer: %v", seg.Name, err), nil
		}
		offer := seg.alloc.offerCapped
		if established {
			offer = seg.alloc.offer
		}
		ip, err := offer(mac, fromIP(req.RequestedIPAddress()))
		if errors.Is(err, errOfferCap) {
			return nil, dropLimited, limitOffers, nil
		}
		if err != nil {
			return nil, dropExhausted, fmt.Sprintf("segment %s: %v", seg.Name, err), nil
		}
		p.YourIP, p.Lease = ip, seg.leaseTime()
		fillReply(req, resp, dhcpv4.MessageTypeOffer, p)
	case dhcpv4.MessageTypeRequest:
		sid, ci := fromIP(req.ServerIdentifier()), fromIP(req.ClientIPAddr)
		if l.in.pair != nil && !sid.IsValid() && !seg.alloc.has(mac) {
			// Renewing, rebinding or INIT-REBOOT: the pair's other
			// server may have leased to this client; its lease is in
			// the store.
			ok, err := seg.alloc.adopt(mac)
			if err != nil {
				return nil, storeDrop(err), err.Error(), nil
			}
			established = established || ok
		}
		if !established && sid == serverIP {
			// SELECTING without our offer would bind an address. A NAK
			// binds nothing and sends the client back to DISCOVER at
			// once: after a restart lost its offer, a PXE ROM would
			// otherwise repeat the REQUEST for a minute.
			now := l.in.now()
			l.in.m.limit(seg.Name, limitUnoffered)
			l.in.limits.add(seg.Name, limitUnoffered, now)
			fillNak(req, resp, serverIP, "no offer of ours for this client: start again from DISCOVER")
			return resp, "", "", nil
		}
		if !established && !sid.IsValid() && ci.IsValid() {
			// RENEWING a lease we do not have would bind an address too;
			// RFC 2131 leaves a server without the client's record
			// silent. (INIT-REBOOT never binds one for a client without
			// a binding: NAK or silence.)
			return nil, dropLimited, limitUnoffered, nil
		}
		hostname := req.HostName()
		if !validHostname(hostname) {
			hostname = ""
		}
		res, w := seg.alloc.requestStart(leaseRequest{
			MAC: mac, Hostname: hostname, Ours: serverIP,
			ServerID:  fromIP(req.ServerIdentifier()),
			Requested: fromIP(req.RequestedIPAddress()),
			CIAddr:    fromIP(req.ClientIPAddr),
		})
		switch {
		case w == nil:
			reply, reason, detail := l.requestReply(req, resp, seg, p, mac, res, nil)
			return reply, reason, detail, nil
		case storeDown != nil:
			// The lookup found the store unavailable: no write is tried
			// (it would wait out the store's timeout a second time).
			res, err := w.end(storeDown)
			reply, reason, detail := l.requestReply(req, resp, seg, p, mac, res, err)
			return reply, reason, detail, nil
		}
		return nil, "", "", &held{write: w, then: func(err error) (*dhcpv4.DHCPv4, string, string) {
			res, err := w.end(err)
			return l.requestReply(req, resp, seg, p, mac, res, err)
		}}
	case dhcpv4.MessageTypeInform:
		// RFC 2131 §4.3.5: configuration only, no lease, no yiaddr.
		fillReply(req, resp, dhcpv4.MessageTypeAck, p)
	default:
		return nil, dropUnsupported, "message type " + mt.String(), nil
	}
	return resp, "", "", nil
}

// requestReply answers a REQUEST with the allocator's result res, or with
// nothing when err (the store refused the lease).
func (l *listener) requestReply(req, resp *dhcpv4.DHCPv4, seg *segState, p replyParams, mac string, res leaseResult, err error) (*dhcpv4.DHCPv4, string, string) {
	switch {
	case err != nil:
		return nil, storeDrop(err), err.Error()
	case res.Kind == resultSilent:
		return nil, dropSilent, res.Reason
	case res.Kind == resultNak:
		l.in.log.Info("dhcp nak", "segment", seg.Name, "mac", mac, "reason", res.Reason)
		fillNak(req, resp, p.ServerIP, res.Reason)
		return resp, "", ""
	}
	p.YourIP, p.Lease = res.Lease.IP, seg.leaseTime()
	if res.Kept {
		// The store refused the write (keptOnRefusal): the stored
		// lease for the time it has left.
		p.Lease = min(p.Lease, max(res.Lease.Expires.Sub(l.in.now()).Truncate(time.Second), time.Second))
		l.in.m.keptRenewals.Inc()
		// Every renewal of an outage comes here: one line per interval.
		if ok, held := l.in.warns.Allow("renewed_from_memory", l.in.now()); ok {
			l.in.log.Warn("dhcp lease renewed from memory", "segment", seg.Name, "mac", mac, "ip", res.Lease.IP.String(),
				"expires", res.Lease.Expires, "lease", p.Lease.String(), "why", res.Reason, "held_back", held)
		}
	}
	fillReply(req, resp, dhcpv4.MessageTypeAck, p)
	return resp, "", ""
}

// storeDrop is the drop reason for a store error: dropStoreDown when the
// store is unavailable (counted, and logged once per interval, as an
// outage makes many), dropStoreError otherwise.
func storeDrop(err error) string {
	if errors.Is(err, store.ErrUnavailable) {
		return dropStoreDown
	}
	return dropStoreError
}

// boots reports whether reply gives the client something to boot: an
// OFFER or ACK naming a boot file.
func boots(reply *dhcpv4.DHCPv4) bool {
	switch reply.MessageType() {
	case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck:
		return reply.BootFileName != "" || reply.BootFileNameOption() != ""
	}
	return false
}

// srcText is a packet's UDP source for the log.
func srcText(src netip.Addr) string {
	if !src.IsValid() {
		return "unknown"
	}
	return src.String()
}

// discover creates the temporary record of an unknown MAC booting on a
// discovery segment (its place in seg.found reserved) and reports whether
// it exists now. A concurrent packet may have created it first.
func (in *instance) discover(seg *segState, mac string, c bootClient) bool {
	now := in.now()
	m := store.Machine{
		MAC:       mac,
		State:     store.StateDiscovered,
		Hostname:  names.DiscoveredHostname(mac),
		Client:    c.lifecycle().Firmware.String(),
		Temporary: true,
		ExpiresAt: now.Add(in.ttl),
		Segment:   seg.Name,
		Arch:      archName(c),
		FirstSeen: now,
		LastSeen:  now,
	}
	a := store.Audit{Actor: "dhcp", Action: "discover", Detail: fmt.Sprintf("segment %s, arch %s", seg.Name, m.Arch)}
	_, err := in.machines.CreateMachine(m, a)
	if errors.Is(err, store.ErrTaken) {
		// Another machine has the short name (the same last three bytes
		// under another vendor prefix, or an administrator's choice): the
		// whole MAC is unique.
		m.Hostname = names.DiscoveredHostnameFull(mac)
		_, err = in.machines.CreateMachine(m, a)
	}
	switch {
	case err == nil:
		in.log.Info("machine discovered", "mac", mac, "segment", seg.Name, "arch", m.Arch)
	case errors.Is(err, store.ErrExists):
	default:
		in.log.Error("create discovered machine", "mac", mac, "segment", seg.Name, "err", err)
		return false
	}
	seg.found.keep(mac, m.ExpiresAt)
	in.m.records.WithLabelValues(seg.Name).Set(float64(seg.found.count()))
	return true
}
