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

// decision builds the answer for the agent of session: the decision of
// lifecycle.Decide, with the approval's details only where Decide allows
// them (the session approval bound). base is the appliance URL the agent
// used, for image URLs given as a path on the appliance. final reports
// that the answer ends the session (lifecycle.FinalDecision).
func (s *Server) decision(m store.Machine, sess store.Session, base string) (d Decision, final bool) {
	prof := s.profileOf(m)
	lm := m.Lifecycle(prof.Kind)
	bound := m.Session != "" && m.Session == sess.ID
	f := lifecycle.Decide(lifecycle.Query{Machine: lm, Bound: bound, Wiped: !sess.Wiped.IsZero()})
	d = Decision{Decision: string(f.Agent), State: m.State.String()}
	final = lifecycle.FinalDecision(lm, f.Agent)
	if f.Agent == lifecycle.AgentWipe {
		d.Wipe = &DecisionWipe{Full: m.WipeFull, Secure: m.WipeSecure}
		return d, final
	}
	if f.Agent == lifecycle.AgentWait && m.State.Accepted() && !bound {
		d.Message = "this machine's approval is bound to another boot; an administrator can bind this boot with the token on this console (foundry machines bind)"
	}
	if !f.AgentDetails {
		return d, final
	}
	if bd, ok := bmcUserDecision(m, f.Agent); ok {
		return bd, false
	}
	d.Hostname = m.Hostname
	if a := m.Approval; a != nil {
		d.SSHKeys = a.SSHKeys
		n := networkView(a.Network)
		d.Network = &n
	}
	if f.Agent == lifecycle.AgentImage {
		ref, sum := prof.ImageURL, prof.ImageSHA256
		if prof.Image != "" {
			var wait string
			if ref, sum, wait = s.libraryImage(prof.Image); wait != "" {
				// Not from this appliance yet (libraryImage): the agent
				// waits, and asks again when the copy changes.
				return Decision{Decision: string(lifecycle.AgentWait), State: m.State.String(), Message: wait}, false
			}
		}
		img := &DecisionImage{URL: absURL(base, ref), SHA256: sum}
		if m.Approval != nil {
			// The approved disk as chosen from the inventory frozen at
			// approval; the agent resolves it on its own hardware.
			img.Disk = m.Approval.Disk
			if strings.HasPrefix(img.Disk, "/dev/disk/by-path/") {
				img.DiskByPath = img.Disk
			}
		}
		d.Image = img
		d.FirstBootURL = firstBootURL(base, m)
	}
	return d, final
}

// profileOf is m's profile; zero when it has none or it does not exist.
func (s *Server) profileOf(m store.Machine) store.Profile {
	if m.Profile == "" {
		return store.Profile{}
	}
	p, err := s.Store.GetProfile(m.Profile)
	if err != nil {
		return store.Profile{}
	}
	return p
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

// decided answers the agent with d, ending its boot session when d is
// its final decision.
func (s *Server) decided(p principal, d Decision, final bool) *struct{ Body Decision } {
	if final {
		_, err := s.Store.UpdateMachineSessions(p.MAC, store.Audit{Actor: p.Actor, Action: "session-end", Detail: d.Decision + " decision delivered"},
			func(_ *store.Machine, ss *store.Sessions) error { return ss.End(p.Session) })
		if err != nil {
			// The session then ends at its expiry.
			s.log.Error("end boot session", "mac", p.MAC, "session", p.Session, "err", err)
		}
	}
	return &struct{ Body Decision }{Body: d}
}

// agentDecision answers at once when the decision is not "wait" or the
// agent asked not to wait; otherwise it waits for a change of this machine
// (store events), the end of the wait, or shutdown.
func (s *Server) agentDecision(ctx context.Context, in *decisionIn) (*struct{ Body Decision }, error) {
	p := caller(ctx)
	// Subscribe before reading, so that a change between the read and the
	// wait is not missed; the session is checked after subscribing, so
	// that an end since the call was admitted is not missed either.
	events, cancel := s.Store.Subscribe(16)
	defer func() { cancel() }()
	// A machine told to wait for this appliance's copy of its image is
	// answered as soon as the copy is verified.
	copied := s.imagesChanged()
	var sess store.Session
	ended := func() bool {
		var err error
		sess, err = s.Store.GetSession(p.Session)
		return err != nil
	}
	if ended() {
		return nil, errSessionEnded
	}
	m, err := s.Store.GetMachine(p.MAC)
	if err != nil {
		return nil, s.storeErr(err, "machine "+p.MAC, "")
	}
	d, final := s.decision(m, sess, p.Base)
	wait := time.Duration(min(max(in.Wait, 0), maxWait)) * time.Second
	if d.Decision != "wait" || wait == 0 || d.BMCUser != nil {
		return s.decided(p, d, final), nil
	}
	// reconsider reads the session and the machine again: an answer when
	// the session ended or the decision is no longer to wait, else nil.
	reconsider := func() (*struct{ Body Decision }, error) {
		if ended() {
			return nil, errSessionEnded
		}
		if m, err = s.Store.GetMachine(p.MAC); err != nil {
			return nil, s.storeErr(err, "machine "+p.MAC, "")
		}
		if d, final = s.decision(m, sess, p.Base); d.Decision != "wait" || d.BMCUser != nil {
			return s.decided(p, d, final), nil
		}
		return nil, nil
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
		case <-copied:
			copied = s.imagesChanged()
			if out, err := reconsider(); out != nil || err != nil {
				return out, err
			}
		case ev, ok := <-events:
			if !ok {
				cancel()
				events, cancel = s.Store.Subscribe(16)
			} else if ev.Machine.MAC != p.MAC {
				continue
			}
			// Sessions end in the same transaction as the change that
			// ends them (rediscover, delete), so the event sees it.
			if out, err := reconsider(); out != nil || err != nil {
				return out, err
			}
		}
	}
}

var errSessionEnded = huma.Error401Unauthorized("this boot session has ended; reboot the machine into discovery")

// adminActions lists what an administrator may do to a machine in state s.
func adminActions(s store.State) []string {
	acts := lifecycle.Allowed(s, lifecycle.RoleAdmin)
	out := make([]string, len(acts))
	for i, a := range acts {
		out[i] = string(a)
	}
	return out
}
