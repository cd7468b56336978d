package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Release, redeploy and bind act on machines that were approved. Each new
// install or wipe needs a boot session the administrator has tied to the
// machine with its console token, or, for a release's wipe, every session
// the MAC opens: the trust model of approval (docs/security.md) holds
// after it too.

// ReleaseRequest says how a released machine's disks are wiped.
type ReleaseRequest struct {
	Full        bool `json:"full,omitempty" doc:"Overwrite every byte of every fixed disk instead of its partition tables, signatures and first and last MiB"`
	SecureErase bool `json:"secure_erase,omitempty" doc:"Have each fixed disk erase itself (NVMe: Format NVM with user-data erase); a disk that cannot is overwritten in full. The report names which was done to each disk."`
}

type releaseIn struct {
	MAC  string          `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body *ReleaseRequest // optional: a quick wipe
}

// RedeployRequest names the profile a redeploy installs.
type RedeployRequest struct {
	Profile string `json:"profile,omitempty" maxLength:"64" example:"debian-12" doc:"Existing profile; default the machine's current one"`
}

type redeployIn struct {
	MAC  string           `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body *RedeployRequest // optional: the current profile
}

type bindIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body struct {
		Token string `json:"token" maxLength:"64" example:"FOUNDRY-ABCD-EFGH-JKLM" doc:"The registration token the machine's console shows in this boot"`
	}
}

func (s *Server) registerRelease() {
	register(s, accessWrite, huma.Operation{
		OperationID: "release-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/release",
		Summary: "Release a machine: wipe its disks in discovery, then approve it again", Tags: []string{"machines"},
		Description: "The machine's sessions end and it is discovered again: at its next boot into discovery, the agent of every registration wipes the machine's fixed disks " +
			"(partition tables, signatures, the first and last MiB of each and of each partition; every byte with full; the drive's own secure erase with secure_erase) and reports it. Only a registration that has wiped can be approved.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *releaseIn) (*machineOut, error) {
		full, secure := in.Body != nil && in.Body.Full, in.Body != nil && in.Body.SecureErase
		detail := "wipe partition tables and signatures"
		switch {
		case secure:
			detail = "the drives' own secure erase (every byte overwritten where there is none)"
		case full:
			detail = "wipe every byte"
		}
		return s.transition(ctx, in.MAC, lifecycle.ActRelease, detail, func(m *store.Machine) error {
			m.Wipe, m.WipeFull, m.WipeSecure = true, full, secure
			m.Installed, m.FirstBootSecret, m.Progress = false, "", 0
			m.FirstBoot, m.ReadyAt = nil, time.Time{}
			m.Message = "released: the disks are wiped at the next discovery boot"
			return nil
		})
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "redeploy-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/redeploy",
		Summary: "Install a ready machine again (same or another profile)", Tags: []string{"machines"},
		Description: "The approval (host name, disk, keys, network) stays. A netboot profile makes the machine ready at once. With an image profile, boot the machine into discovery " +
			"and bind that boot with the token its console shows (bind); its agent then writes the image.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, s.redeploy)
	register(s, accessWrite, huma.Operation{
		OperationID: "bind-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/bind",
		Summary: "Bind a new boot of an approved machine with its console token", Tags: []string{"machines"},
		Description: "For a machine whose approval is bound to a boot that is gone (it rebooted during the install, or it was redeployed): the registration whose console token is typed " +
			"takes over the install with the approval as it is. Wrong tokens count against each registration as at approval.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusLocked, http.StatusUnprocessableEntity},
	}, s.bind)
}

func (s *Server) redeploy(ctx context.Context, in *redeployIn) (*machineOut, error) {
	mac, err := canonicalMAC(in.MAC)
	if err != nil {
		return nil, err
	}
	cur, err := s.getMachine(mac)
	if err != nil {
		return nil, err
	}
	var name string
	if in.Body != nil {
		name = strings.TrimSpace(in.Body.Profile)
	}
	if name == "" {
		name = cur.Profile
	}
	prof, err := s.Store.GetProfile(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fieldErr("body.profile", "no such profile", name)
	}
	if err != nil {
		return nil, s.storeErr(err, "profile "+name, "body.profile")
	}
	secret, err := newSecret()
	if err != nil {
		return nil, fmt.Errorf("draw first-boot secret: %w", err)
	}
	// A netboot machine is ready again at once (every PXE boot gets the
	// production script): in the same commit, audited as its own step, so
	// that no crash leaves it approved with nothing to make it ready.
	var then []store.Step
	if prof.Kind == store.ProfileNetboot {
		then = append(then, s.netbootReadyStep(caller(ctx).Actor, prof.Name))
	}
	return s.transition(ctx, mac, lifecycle.ActRedeploy, "profile "+prof.Name, func(m *store.Machine) error {
		m.Profile = prof.Name
		m.Installed, m.FirstBootSecret, m.FirstBoot, m.ReadyAt = false, secret, nil, time.Time{}
		m.Progress, m.Message = 0, "redeploy: boot the machine into discovery and bind it with its console token"
		if m.Approval != nil {
			m.Approval.ApprovedAt = s.now()
		}
		return nil
	}, then...)
}

// netbootReadyStep makes an approved netboot machine ready: every PXE
// boot from now on gets the production script (docs/spec.md §1). It fails
// with errChanged when the machine is not approved.
func (s *Server) netbootReadyStep(actor, profile string) store.Step {
	return store.Step{Audit: store.Audit{Actor: actor, Action: "ready", Detail: "netboot profile " + profile},
		Apply: func(cur *store.Machine, _ *store.Sessions) error {
			to, err := lifecycle.Next(lifecycle.ActNetbootOK, lifecycle.RoleSystem, cur.State)
			if err != nil {
				return errChanged
			}
			cur.State, cur.ReadyAt, cur.Message = to, s.now(), ""
			return nil
		}}
}

func (s *Server) bind(ctx context.Context, in *bindIn) (*machineOut, error) {
	m, err := s.getMachine(in.MAC)
	if err != nil {
		return nil, err
	}
	if _, err := lifecycle.Next(lifecycle.ActBind, lifecycle.RoleAdmin, m.State); err != nil {
		return nil, huma.Error409Conflict(fmt.Sprintf("machine %s is %s; only an approved, provisioning or failed machine can be bound to a new boot", m.MAC, m.State))
	}
	sess, detail, err := s.verifyToken(ctx, m, in.Body.Token)
	if err != nil {
		return nil, err
	}
	if detail != nil {
		return nil, huma.Error422UnprocessableEntity("bind refused: "+detail.Message, detail)
	}
	secret, err := newSecret()
	if err != nil {
		return nil, fmt.Errorf("draw first-boot secret: %w", err)
	}
	out, err := s.Store.UpdateMachineSessions(m.MAC, store.Audit{Actor: caller(ctx).Actor, Action: string(lifecycle.ActBind), Detail: "registration " + sess.ID[:8] + " from " + sess.Remote},
		func(cur *store.Machine, ss *store.Sessions) error {
			to, err := lifecycle.Next(lifecycle.ActBind, lifecycle.RoleAdmin, cur.State)
			if err != nil {
				return errChanged
			}
			if now, err := ss.Get(sess.ID); err != nil || now.Token.ExpiresAt != sess.Token.ExpiresAt {
				return errChanged
			}
			// The boot it replaces, if its agent still runs, may not
			// install or report any more.
			if cur.Session != "" && cur.Session != sess.ID {
				if err := ss.End(cur.Session); err != nil {
					return err
				}
			}
			cur.State, cur.Session = to, sess.ID
			cur.Installed, cur.FirstBootSecret, cur.Progress, cur.Message = false, secret, 0, "bound to a new boot"
			return nil
		})
	if errors.Is(err, errChanged) {
		return nil, huma.Error409Conflict("machine " + m.MAC + " changed while it was being bound; review it and try again")
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+m.MAC, "body")
	}
	return &machineOut{Body: s.machineView(out, true)}, nil
}

// wipeReport takes a result from any session of a released machine as
// its report of the wipe; ok is false for every other result, which goes
// on to the install's report.
func (s *Server) wipeReport(p principal, r AgentResult) (*agentStateOut, bool, error) {
	action := "wiped"
	if !r.Success {
		action = "wipe-failed"
	}
	var notWipe = errors.New("not a wipe")
	m, err := s.Store.UpdateMachineSessions(p.MAC, store.Audit{Actor: p.Actor, Action: action, Detail: r.Message},
		func(m *store.Machine, ss *store.Sessions) error {
			if !m.Lifecycle("").WipePending() {
				return notWipe
			}
			sess, err := ss.Get(p.Session)
			if err != nil {
				return err
			}
			if !r.Success {
				m.Message = "wipe failed: " + r.Message
				return nil
			}
			if sess.Wiped.IsZero() {
				sess.Wiped = s.now()
				if err := ss.Put(sess); err != nil {
					return err
				}
			}
			m.Message = "disks wiped (registration " + sess.ID[:8] + "): approve it again"
			return nil
		})
	if errors.Is(err, notWipe) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, s.storeErr(err, "machine "+p.MAC, "body")
	}
	return &agentStateOut{Body: AgentState{State: m.State.String()}}, true, nil
}
