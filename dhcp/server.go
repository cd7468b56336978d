package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
)

// MachineStore is the part of the store the DHCP server needs for machine
// records. *store.DB satisfies it. GetMachine returns store.ErrNotFound for
// an unknown MAC; CreateMachine returns store.ErrExists when a concurrent
// packet created the record first. RecordSighting stores where a known
// machine was seen and with which firmware (the facts arise here, so they
// are written here).
type MachineStore interface {
	GetMachine(mac string) (store.Machine, error)
	CreateMachine(store.Machine, store.Audit) (store.Machine, error)
	RecordSighting(mac string, s store.Sighting) (bool, error)
}

// DefaultDiscoveryTTL is how long a discovered machine's temporary record
// lives without being approved.
const DefaultDiscoveryTTL = 24 * time.Hour

// Server answers DHCPv4 on Foundry's segments through coredhcp: one
// coredhcp server per interface (and port), each running a plugin bound to
// this Server.
type Server struct {
	// Segments are the networks served. Required.
	Segments []Segment
	// Leases stores the leases of dhcp-mode segments. Required when any
	// segment is in dhcp mode.
	Leases LeaseStore
	// Machines reads machine records and creates discovered ones. Required.
	Machines MachineStore
	// ScriptURL returns the iPXE script URL for a MAC, given to iPXE
	// clients (cmd/foundry: "<advertise>/boot/<mac>"). Nil: iPXE clients
	// get no boot.
	ScriptURL func(mac net.HardwareAddr) string
	// HTTPBase is the appliance URL booting machines use (http.advertise);
	// UEFI HTTP boot clients get HTTPBase + "/images/ipxe/<binary>". Empty:
	// HTTP boot clients get no boot.
	HTTPBase string
	// HaveFile reports whether an optional boot file exists (today only
	// "ipxe-arm64.efi"). Nil: optional files are not offered.
	HaveFile func(name string) bool
	// Grants is told of every boot answer with the client's address, so
	// that the script server gives a boot nonce only to the machine that
	// took part (bootgrant.Table). Nil: nobody is told, and no script
	// server that asks can issue a nonce.
	Grants Granter
	// DiscoveryTTL is the lifetime of a discovered record; default
	// DefaultDiscoveryTTL (24h).
	DiscoveryTTL time.Duration
	// Limits are the per-MAC and per-source rate limits (limit.go); the
	// zero value means their defaults. The caps are per segment
	// (Segment.MaxDiscovered, Segment.MaxPendingOffers).
	Limits Limits
	// Relays are the interfaces that receive relayed packets (giaddr set)
	// for relayed segments, and the sources relay agents may send from
	// (relay.go). Default none: relayed packets are dropped everywhere.
	Relays Relays
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the server's Prometheus metrics
	// (foundry_dhcp_requests_total, _replies_total, _drops_total,
	// _limited_total, _discovered_records); nil: no metrics.
	Registerer prometheus.Registerer
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Pair makes this server one of two on the same segments, sharing
	// Leases (pair.go, docs/scale-out.md); nil (default): the only one.
	Pair *Pair
	// RemoteStore says that Machines answers over the network (a store on
	// etcd): machine lookups then run on the workers, never in a socket's
	// reader, so that a slow or unreachable backend holds up no other
	// packet. A pair always works so.
	RemoteStore bool
}

// Serve answers DHCP until ctx is done, then closes every listener and
// DECLINE reader (decline.go), waits for packets in flight and returns nil.
// It returns an error at once when the configuration is invalid or a
// listener or reader cannot start (the reader's packet socket needs
// CAP_NET_RAW, as coredhcp's raw replies do), and when a listener fails.
func (s *Server) Serve(ctx context.Context) error {
	in, listeners, err := s.setup()
	if err != nil {
		return err
	}
	// The limits' log line: once per warnEvery, and once more at the end.
	var segs []*segState
	for _, l := range listeners {
		if l.direct != nil && !slices.Contains(segs, l.direct) {
			segs = append(segs, l.direct)
		}
	}
	for _, st := range in.relayed {
		if !slices.Contains(segs, st) {
			segs = append(segs, st)
		}
	}
	reportDone := make(chan struct{})
	reportStop := make(chan struct{})
	go func() {
		defer close(reportDone)
		t := time.NewTicker(warnEvery)
		defer t.Stop()
		for {
			select {
			case <-reportStop:
				in.reportLimits(segs)
				return
			case <-t.C:
				in.reportLimits(segs)
			}
		}
	}()
	defer func() { close(reportStop); <-reportDone }()
	if in.pair != nil {
		pairCtx, stopPair := context.WithCancel(ctx)
		pairDone := make(chan struct{})
		go func() { defer close(pairDone); in.pair.run(pairCtx) }()
		// Deferred, so after stopAll: the goodbye follows the last answer.
		defer func() { stopPair(); <-pairDone; in.pair.goodbye() }()
	}
	// Each coredhcp server here has one listener, so its Wait returns when
	// that listener stops: after Close (nil), or on a socket error.
	type stopped struct {
		l   *listener
		err error
	}
	var running []runner
	var readers []*declineReader // see decline.go
	done := make(chan stopped, len(listeners))
	pending := 0
	stopAll := func() error {
		for _, r := range running {
			r.Close()
		}
		for _, r := range readers {
			r.close()
		}
		var errs []error
		for ; pending > 0; pending-- {
			errs = append(errs, (<-done).err)
		}
		// No new packet enters a handler from here on; wait for the ones
		// inside, so that nothing uses the store after Serve returns.
		in.gate.Lock()
		in.closed = true
		in.gate.Unlock()
		in.inflight.Wait()
		return errors.Join(errs...)
	}
	for _, l := range listeners {
		srv, err := l.start()
		if err != nil {
			return errors.Join(err, stopAll())
		}
		running = append(running, srv)
		pending++
		go func() { done <- stopped{l, srv.Wait()} }()
		if l.wantsDeclines() {
			r, err := l.startDeclineReader()
			if err != nil {
				return errors.Join(err, stopAll())
			}
			readers = append(readers, r)
		}
		in.log.Info("dhcp listening", "iface", l.iface, "port", l.port, "server_ip", l.ip.String(), "declines", l.wantsDeclines(),
			"relays", l.relays, "bind", l.bind.String())
	}

	select {
	case <-ctx.Done():
		if err := stopAll(); err != nil {
			return fmt.Errorf("stop dhcp: %w", err)
		}
		return nil
	case st := <-done:
		// A listener that stops before ctx is done has failed.
		pending--
		err := errors.Join(st.err, stopAll())
		return fmt.Errorf("dhcp listener on %s port %d stopped: %w", st.l.iface, st.l.port, err)
	}
}

// setup validates the configuration (Check), looks up the served
// interfaces and builds the listeners.
func (s *Server) setup() (*instance, []*listener, error) {
	ifaces, addrs, err := s.plan(HostInterfaces)
	if err != nil {
		return nil, nil, err
	}
	return s.build(ifaces, addrs)
}

// build loads the leases and makes one listener per interface and port;
// addrs holds each interface's IPv4 addresses (the first is its default
// server address).
func (s *Server) build(ifaces []string, addrs map[string][]netip.Addr) (*instance, []*listener, error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	segs := slices.Clone(s.Segments)
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return nil, nil, err
	}
	m.segmentMetrics(segs)
	in := &instance{
		log:      log,
		now:      s.Now,
		ttl:      s.DiscoveryTTL,
		env:      bootEnv{ScriptURL: s.ScriptURL, HTTPBase: s.HTTPBase, HaveFile: s.HaveFile},
		machines: s.Machines,
		relays:   s.Relays,
		grants:   s.Grants,
		m:        m,
		lim:      newLimiter(s.Limits),
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.ttl <= 0 {
		in.ttl = DefaultDiscoveryTTL
	}

	ifaceIP := map[string]netip.Addr{}
	for name, a := range addrs {
		ifaceIP[name] = firstIPv4(a)
	}
	states := map[string]*segState{}
	byName := map[string]*segState{}
	relayedProxy := false
	for i := range segs {
		st := &segState{Segment: segs[i], found: newDiscovered(segs[i].maxDiscovered())}
		byName[st.Name] = st
		if st.Interface != "" && !st.ServerIP.IsValid() {
			if !ifaceIP[st.Interface].IsValid() {
				return nil, nil, fmt.Errorf("dhcp: segment %s: interface %s has no IPv4 address and no server ip is set", st.Name, st.Interface)
			}
			st.ServerIP = ifaceIP[st.Interface]
		}
		if st.Mode == ModeDHCP {
			reserved := append([]netip.Addr{st.Router, st.ServerIP}, st.DNS...)
			if st.alloc, err = newAllocator(&st.Segment, reserved, s.Leases, in.now, log); err != nil {
				return nil, nil, fmt.Errorf("dhcp: %w", err)
			}
		}
		if st.Relayed {
			in.relayed = append(in.relayed, st)
			relayedProxy = relayedProxy || st.Mode == ModeProxy
		} else {
			states[st.Interface] = st
		}
	}
	if s.Pair != nil {
		var allocs []*allocator
		for _, st := range byName {
			if st.alloc != nil {
				allocs = append(allocs, st.alloc)
			}
		}
		in.pair = newPairState(*s.Pair, allocs, log, time.Now())
	}
	in.deferLookup = s.RemoteStore || in.pair != nil
	if err := seedDiscovered(s.Machines, byName, in.now(), in.ttl); err != nil {
		return nil, nil, fmt.Errorf("dhcp: %w", err)
	}
	for name, st := range byName {
		m.records.WithLabelValues(name).Set(float64(st.found.count()))
	}
	var listeners []*listener
	for _, name := range ifaces {
		direct := states[name]
		relays := s.Relays.receives(name)
		// Only our own sockets see a packet's source; coredhcp's serve
		// the direct segments.
		l := &listener{in: in, iface: name, port: dhcpv4.ServerPort, ip: ifaceIP[name], direct: direct,
			relays: relays, own: relays && direct == nil}
		listeners = append(listeners, l)
		if relays && direct != nil {
			// A direct segment's interface listed as a relay interface:
			// coredhcp keeps 0.0.0.0 for the segment's broadcasts, and a
			// socket of ours on each of the interface's addresses takes
			// the unicasts relays send there (the kernel gives a unicast
			// to the socket bound to its destination address before one
			// bound to 0.0.0.0), so that their sources can be checked.
			for _, a := range addrs[name] {
				if a.Is4() {
					b := *l
					b.own, b.bind = true, a
					listeners = append(listeners, &b)
				}
			}
		}
		if (direct != nil && direct.Mode == ModeProxy) || relayedProxy {
			pxe := *l
			pxe.port = pxePort
			listeners = append(listeners, &pxe)
		}
	}
	return in, listeners, nil
}

// check validates what needs no system lookup.
func (s *Server) check() error {
	if len(s.Segments) == 0 {
		return errors.New("dhcp: no segments")
	}
	if err := validateSegments(s.Segments); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	if err := s.Limits.Validate(); err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	if s.Pair != nil {
		if err := s.Pair.Validate(); err != nil {
			return fmt.Errorf("dhcp: pair: %w", err)
		}
	}
	if s.Machines == nil {
		return errors.New("dhcp: no machine store")
	}
	for _, sg := range s.Segments {
		if sg.Mode == ModeDHCP && s.Leases == nil {
			return fmt.Errorf("dhcp: segment %s: no lease store", sg.Name)
		}
	}
	return nil
}
