package api

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Power state is kept in memory, not in the store: it is a reading, not
// a decision, and writing it would bump every machine's revision and
// wake every event subscriber once a minute.

// Defaults of the power poller (Server.PowerPoll*).
const (
	DefaultPowerPollInterval = time.Minute
	DefaultPowerPollGap      = 500 * time.Millisecond
	powerPollTimeout         = 15 * time.Second
	// bootTimeout bounds the power-cycle into PXE that rediscover, redeploy
	// and release start.
	bootTimeout = 2 * time.Minute
)

// bmcState is the server's BMC bookkeeping: last power readings, one call
// at a time per machine, and the background calls to wait for at Close.
type bmcState struct {
	client *bmc.Client
	mu     sync.Mutex
	power  map[string]PowerStatus
	busy   map[string]chan struct{}
	wg     sync.WaitGroup
	// ctx ends the background calls when the server closes: a BMC that
	// hangs must not hold the appliance's shutdown.
	ctx    context.Context
	cancel context.CancelFunc
}

func newBMCState(s *Server) *bmcState {
	ctx, cancel := context.WithCancel(context.Background())
	return &bmcState{client: &bmc.Client{Logger: s.log}, power: map[string]PowerStatus{}, busy: map[string]chan struct{}{},
		ctx: ctx, cancel: cancel}
}

func (b *bmcState) get(mac string) (PowerStatus, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.power[mac]
	if !ok {
		return PowerStatus{State: string(bmc.PowerUnknown)}, false
	}
	return p, true
}

func (b *bmcState) set(mac string, st bmc.PowerState, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power[mac] = PowerStatus{State: string(st), CheckedAt: &at}
}

// fail records a BMC failure and keeps the last good reading.
func (b *bmcState) fail(mac, msg string, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.power[mac]
	if !ok {
		p.State = string(bmc.PowerUnknown)
	}
	p.Error, p.ErrorAt = msg, &at
	b.power[mac] = p
}

func (b *bmcState) forget(mac string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.power, mac)
}

// stale says whether mac's BMC last answered or failed more than d ago.
func (b *bmcState) stale(mac string, now time.Time, d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.power[mac]
	if !ok {
		return true
	}
	last := time.Time{}
	if p.CheckedAt != nil {
		last = *p.CheckedAt
	}
	if p.ErrorAt != nil && p.ErrorAt.After(last) {
		last = *p.ErrorAt
	}
	return now.Sub(last) >= d
}

// lock makes calls to one BMC one at a time (BMCs allow few sessions);
// other machines' calls go on.
func (b *bmcState) lock(ctx context.Context, mac string) (func(), error) {
	for {
		b.mu.Lock()
		ch, held := b.busy[mac]
		if !held {
			ch = make(chan struct{})
			b.busy[mac] = ch
			b.mu.Unlock()
			return func() {
				b.mu.Lock()
				delete(b.busy, mac)
				b.mu.Unlock()
				close(ch)
			}, nil
		}
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, huma.Error503ServiceUnavailable("another call to this machine's BMC is still running")
		}
	}
}

// refresh reads mac's power now and records the answer or the failure.
func (b *bmcState) refresh(ctx context.Context, s *Server, mac string, ep bmc.Endpoint) {
	ctx, cancel := context.WithTimeout(ctx, powerPollTimeout)
	defer cancel()
	release, err := b.lock(ctx, mac)
	if err != nil {
		return
	}
	defer release()
	st, err := s.bmcDriver().PowerState(ctx, ep)
	if err != nil {
		var be *bmc.Error
		msg := err.Error()
		if errors.As(err, &be) {
			msg = be.Msg
		}
		b.fail(mac, msg, s.now())
		return
	}
	b.set(mac, st, s.now())
}

// goRefresh reads mac's power in the background.
func (b *bmcState) goRefresh(s *Server, mac string) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		m, err := s.Store.GetMachine(mac)
		if err != nil {
			return
		}
		if ep, err := s.unseal(m); err == nil {
			b.refresh(b.ctx, s, mac, ep)
		}
	}()
}

// bootsIntoPXE says which administrator actions send a machine to a new
// network boot: with a known BMC the appliance power-cycles it there
// itself (docs/spec.md §1).
func bootsIntoPXE(a lifecycle.Action) bool {
	return a == lifecycle.ActRediscover || a == lifecycle.ActRelease || a == lifecycle.ActRedeploy
}

// afterTransition power-cycles m into PXE after rediscover, redeploy and
// release when its BMC credential is known. It runs in the background: a
// BMC that is slow or down delays nothing and blocks nothing; the outcome
// (or the BMC's own error) is audited and shown with the machine's power.
func (s *Server) afterTransition(ctx context.Context, a lifecycle.Action, m store.Machine) {
	if !bootsIntoPXE(a) || m.BMC == nil || len(m.BMC.Secret) == 0 || m.BMC.Address == "" || s.bmcs == nil {
		return
	}
	actor := caller(ctx).Actor
	s.bmcs.wg.Add(1)
	go func() {
		defer s.bmcs.wg.Done()
		ep, err := s.unseal(m)
		if err != nil {
			s.auditBMC(m.MAC, store.Audit{Actor: actor, Action: "bmc-failed", Detail: "power-cycle into PXE after " + string(a) + ": " + err.Error()})
			return
		}
		ctx, cancel := context.WithTimeout(s.bmcs.ctx, bootTimeout)
		defer cancel()
		release, err := s.bmcs.lock(ctx, m.MAC)
		if err != nil {
			return
		}
		was, err := s.bmcDriver().RestartPXE(ctx, ep)
		release()
		if err != nil {
			s.bmcFailed(m.MAC, actor, "power-cycle into PXE after "+string(a), err)
			return
		}
		s.bmcs.set(m.MAC, bmc.PowerOn, s.now())
		s.auditBMC(m.MAC, store.Audit{Actor: actor, Action: "power-pxe", Detail: "next boot from the network and power " + map[bool]string{true: "on", false: "cycle"}[was == bmc.PowerOff] + " after " + string(a) + ", " + ep.String()})
	}()
}

// waitBMC ends the background BMC calls and waits for them (Close).
func (s *Server) waitBMC() {
	if s.bmcs != nil {
		s.bmcs.cancel()
		s.bmcs.wg.Wait()
	}
}

// PollPower reads the power state of every machine with a BMC credential,
// each at most once per PowerPollInterval, one BMC at a time and at most
// one every PowerPollGap: with many machines a round takes longer, the
// rate to the BMC network stays the same. It returns when ctx ends.
func (s *Server) PollPower(ctx context.Context) error {
	s.Handler()
	if s.initErr != nil {
		return s.initErr
	}
	every, gap := s.PowerPollInterval, s.PowerPollGap
	if every <= 0 {
		every = DefaultPowerPollInterval
	}
	if gap <= 0 {
		gap = DefaultPowerPollGap
	}
	t := &pollTargets{macs: map[string]bool{}}
	go t.follow(ctx, s)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := s.now()
		for _, mac := range t.list() {
			if !s.bmcs.stale(mac, now, every) {
				continue
			}
			m, err := s.Store.GetMachine(mac)
			if err != nil {
				break
			}
			if ep, err := s.unseal(m); err == nil {
				s.bmcs.refresh(ctx, s, mac, ep)
			}
			break // one BMC per tick
		}
	}
}

// pollTargets is the set of machines with a BMC credential, kept from
// the store's events (reloaded whenever the subscription is dropped).
type pollTargets struct {
	mu   sync.Mutex
	macs map[string]bool
}

func (t *pollTargets) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.macs))
	for m := range t.macs {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

func (t *pollTargets) follow(ctx context.Context, s *Server) {
	for ctx.Err() == nil {
		events, cancel := s.Store.Subscribe(1024)
		all, err := s.Store.PowerManagedMachines()
		if err == nil {
			t.mu.Lock()
			clear(t.macs)
			for _, mac := range all {
				t.macs[mac] = true
			}
			t.mu.Unlock()
		}
	loop:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case ev, ok := <-events:
				if !ok {
					break loop
				}
				t.mu.Lock()
				if ev.Type != store.EventDeleted && ev.Machine.PowerManaged() {
					t.macs[ev.Machine.MAC] = true
				} else {
					delete(t.macs, ev.Machine.MAC)
					if ev.Type == store.EventDeleted {
						s.bmcs.forget(ev.Machine.MAC)
					}
				}
				t.mu.Unlock()
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
