package api

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// decide is the agent's decision for a machine in its current state, from
// lifecycle.Decide; prof is the machine's profile (zero when it has none).
func decide(m store.Machine, prof store.Profile) string {
	return string(lifecycle.Decide(lifecycle.Query{Machine: m.Lifecycle(prof.Kind)}).Agent)
}

// decision builds the full answer; base is the appliance URL the agent
// used, for image URLs given as a path on the appliance.
func (s *Server) decision(m store.Machine, base string) Decision {
	var prof store.Profile
	if m.Profile != "" {
		if p, err := s.Store.GetProfile(m.Profile); err == nil {
			prof = p
		}
	}
	d := Decision{Decision: decide(m, prof), State: m.State.String()}
	if d.Decision == "wait" || d.Decision == "reject" {
		return d
	}
	d.Hostname = m.Hostname
	if a := m.Approval; a != nil {
		d.SSHKeys = a.SSHKeys
		n := networkView(a.Network)
		d.Network = &n
	}
	if d.Decision == "image" {
		img := &DecisionImage{URL: absURL(base, prof.ImageURL), SHA256: prof.ImageSHA256}
		if m.Approval != nil {
			img.DiskByPath = m.Approval.Disk
			img.Disk = m.Approval.Disk
			if disk, ok := findDisk(parseInventory(m.Inventory), m.Approval.Disk); ok {
				img.Disk = disk.Path
			}
		}
		d.Image = img
	}
	return d
}

// decided answers the agent with d, ending the boot session when d is its
// final decision (lifecycle.FinalDecision).
func (s *Server) decided(mac string, m store.Machine, d Decision) *struct{ Body Decision } {
	if lifecycle.FinalDecision(m.State, lifecycle.Agent(d.Decision)) {
		s.endSession(mac, d.Decision+" decision delivered")
	}
	return &struct{ Body Decision }{Body: d}
}

func absURL(base, ref string) string {
	if !strings.HasPrefix(ref, "/") || base == "" {
		return ref
	}
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

// agentDecision answers at once when the decision is not "wait" or the
// agent asked not to wait; otherwise it waits for a change of this machine
// (store events), the end of the wait, or shutdown.
func (s *Server) agentDecision(ctx context.Context, in *decisionIn) (*struct{ Body Decision }, error) {
	p := caller(ctx)
	// Subscribe before reading, so that a change between the read and the
	// wait is not missed.
	events, cancel := s.Store.Subscribe(16)
	defer func() { cancel() }()
	m, err := s.Store.GetMachine(p.MAC)
	if err != nil {
		return nil, s.storeErr(err, "machine "+p.MAC, "")
	}
	d := s.decision(m, p.Base)
	wait := time.Duration(min(max(in.Wait, 0), maxWait)) * time.Second
	if d.Decision != "wait" || wait == 0 {
		return s.decided(p.MAC, m, d), nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
			return &struct{ Body Decision }{Body: d}, nil
		case <-timer.C:
			return &struct{ Body Decision }{Body: d}, nil
		case ev, ok := <-events:
			if !ok {
				cancel()
				events, cancel = s.Store.Subscribe(16)
			} else if ev.Machine.MAC != p.MAC {
				continue
			}
			// The session may have ended while this request waited
			// (rediscover, delete): it gets nothing more.
			if mac, err := s.Store.CheckNonce(p.Nonce); err != nil || mac != p.MAC {
				return nil, huma.Error401Unauthorized("this boot session ended while it waited; reboot the machine into discovery")
			}
			if m, err = s.Store.GetMachine(p.MAC); err != nil {
				return nil, s.storeErr(err, "machine "+p.MAC, "")
			}
			if d = s.decision(m, p.Base); d.Decision != "wait" {
				return s.decided(p.MAC, m, d), nil
			}
		}
	}
}

// adminActions lists what an administrator may do to a machine in state s.
func adminActions(s store.State) []string {
	acts := lifecycle.Allowed(s, lifecycle.RoleAdmin)
	out := make([]string, len(acts))
	for i, a := range acts {
		out[i] = string(a)
	}
	return out
}
