package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// ApproveRequest is what an administrator decides for a machine.
type ApproveRequest struct {
	Token    string   `json:"token,omitempty" maxLength:"64" example:"FOUNDRY-ABCD-EFGH-JKLM" doc:"The registration token shown on the machine's console (case, spaces and dashes do not matter). Required unless the appliance allows approval without a token."`
	Cluster  string   `json:"cluster" maxLength:"64" example:"rack1" doc:"Existing cluster; required"`
	Profile  string   `json:"profile,omitempty" maxLength:"64" example:"debian-netboot" doc:"Existing profile; default the cluster's default profile"`
	Hostname string   `json:"hostname,omitempty" maxLength:"253" example:"node-01" doc:"RFC 1123 host name, unique among machines; lower-cased; default the current host name"`
	Disk     string   `json:"disk,omitempty" maxLength:"4096" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1" doc:"One of the inventoried disks (path, by-path or name); default the first fixed disk by stable path"`
	SSHKeys  []string `json:"ssh_keys,omitempty" maxItems:"100" example:"[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt6ZmZ5b3VyLWtleS1oZXJlLXBsZWFzZS1yZXBsYWNl admin@example\"]" doc:"authorized_keys lines"`
	Network  *Network `json:"network,omitempty" doc:"Default dhcp. Static: address/prefix inside the machine's segment, gateway (default the segment's router) and DNS (default the segment's)."`
	BMCUser  bool     `json:"bmc_user,omitempty" doc:"Have the discovery OS create a BMC user for the appliance in band before it goes on (default: the cluster's bmc_user setting)"`
}

type approveIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body ApproveRequest
}

type verifyIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body struct {
		Token string `json:"token" maxLength:"64" example:"FOUNDRY-ABCD-EFGH-JKLM"`
	}
}

// TokenCheck is the answer of verify-token.
type TokenCheck struct {
	Valid     bool      `json:"valid"`
	ExpiresAt time.Time `json:"expires_at"`
	// Registration is the ID of the registration (boot session) whose
	// token matched: approval binds the machine to it.
	Registration string `json:"registration" example:"q3Zq0Jm7S0nM2s8yYl8yQ0b9vHq6S3hC1xJr2mR9f3E"`
}

func (s *Server) registerApproval() {
	register(s, accessWrite, huma.Operation{
		OperationID: "approve-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/approve",
		Summary: "Approve an inventoried machine", Tags: []string{"machines"},
		Description: "Every rule is checked before anything is written; a refused call changes nothing except the token's failure counter. " +
			"Five wrong tokens lock approval (423) until the machine registers a new token. Approval makes the record permanent. " +
			"With a netboot profile the machine becomes ready at once (every PXE boot gets the production script); with an image profile it stays approved until the agent installs the image.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusLocked, http.StatusUnprocessableEntity},
	}, s.approve)
	register(s, accessWrite, huma.Operation{
		OperationID: "verify-machine-token", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/verify-token",
		Summary: "Check a registration token before approving", Tags: []string{"machines"},
		Description: "Lets the dashboard wizard check the console token before the review step. A wrong token counts as a failed approval attempt.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusLocked, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *verifyIn) (*struct{ Body TokenCheck }, error) {
		m, err := s.getMachine(in.MAC)
		if err != nil {
			return nil, err
		}
		if m.State != store.StateInventoried {
			return nil, notInventoried(m)
		}
		sess, detail, err := s.verifyToken(ctx, m, in.Body.Token)
		if err != nil {
			return nil, err
		}
		if detail != nil {
			return nil, huma.Error422UnprocessableEntity(detail.Message, detail)
		}
		return &struct{ Body TokenCheck }{Body: TokenCheck{Valid: true, ExpiresAt: sess.Token.ExpiresAt, Registration: sess.ID}}, nil
	})
}

func notInventoried(m store.Machine) error {
	return huma.Error409Conflict(fmt.Sprintf("machine %s is %s; only an inventoried machine (one whose discovery agent has reported) can be approved", m.MAC, m.State))
}

// errNoneComparable says that no registration's token could be compared:
// each is locked, expired, or was replaced meanwhile.
var errNoneComparable = errors.New("no registration token to compare")

// verifyToken finds the registration (boot session) of m whose token is
// typed. Every live registration of the MAC is a candidate: a machine
// that rebooted, or a host that spoofs its MAC, has several, and the
// token on the machine's console is what tells the genuine one (MAC
// conflict). The lockout is per registration: each counts the wrong
// tokens compared against it, and at maxFailures it is compared no more
// until its agent sends a new token, so a spoofer's registrations can
// neither lock nor unlock the genuine one.
//
// The PBKDF2 derivations of typed (one per candidate's salt, the
// expensive part) run before the store transaction; the lockout check,
// the constant-time comparisons and the count of a wrong token run inside
// it, under the machine's write lock, so however many requests arrive at
// once at most maxFailures wrong comparisons are ever made against one
// token. A wrong token is audited as approve-denied; a right one writes
// nothing.
//
// It returns the matching session, or the detail to report for a wrong
// token, or an error (409 no registration or all replaced, 422 expired,
// 423 locked, 500 store failure).
func (s *Server) verifyToken(ctx context.Context, m store.Machine, typed string) (store.Session, *huma.ErrorDetail, error) {
	if strings.TrimSpace(typed) == "" {
		return store.Session{}, nil, fieldErr("body.token", "the registration token shown on the machine's console is required", nil)
	}
	sessions, err := s.Store.MachineSessions(m.MAC)
	if err != nil {
		return store.Session{}, nil, s.storeErr(err, "machine "+m.MAC, "body.token")
	}
	if len(sessions) == 0 {
		return store.Session{}, nil, huma.Error409Conflict("machine " + m.MAC + " has no live registration; boot it into discovery")
	}
	now := s.now()
	var candidates []store.Session
	locked, expired := 0, 0
	for _, se := range sessions {
		switch {
		case se.Token.Failures >= maxFailures:
			locked++
		case !now.Before(se.Token.ExpiresAt):
			expired++
		default:
			candidates = append(candidates, se)
		}
	}
	if len(candidates) == 0 {
		if locked > 0 {
			return store.Session{}, nil, lockedErr()
		}
		return store.Session{}, nil, fieldErr("body.token", "the registration token has expired; the machine's console shows a new one once it is replaced", nil)
	}
	canon, ferr := token.Normalize(typed)
	derived := make([][]byte, len(candidates)) // nil for text that is no token: it never matches
	if ferr == nil {
		for i, c := range candidates {
			derived[i] = token.Derive(canon, c.Token.Salt, c.Token.Iterations)
		}
	}
	actor := caller(ctx).Actor
	var match store.Session
	attempt := 0
	_, err = s.Store.UpdateMachineSessions(m.MAC, store.Audit{Actor: actor, Action: "approve-denied"},
		func(_ *store.Machine, ss *store.Sessions) error {
			match, attempt = store.Session{}, 0
			var compared []store.Session
			locked := false
			for i, c := range candidates {
				cur, err := ss.Get(c.ID)
				if errors.Is(err, store.ErrNotFound) {
					continue // ended meanwhile
				}
				if err != nil {
					return err
				}
				if cur.Token.Failures >= maxFailures && bytes.Equal(cur.Token.Hash, c.Token.Hash) {
					locked = true // by concurrent wrong tokens
					continue
				}
				if !bytes.Equal(cur.Token.Hash, c.Token.Hash) || !s.now().Before(cur.Token.ExpiresAt) {
					continue // replaced (derived for another salt) or expired meanwhile
				}
				if derived[i] != nil && subtle.ConstantTimeCompare(derived[i], cur.Token.Hash) == 1 {
					match = cur
					return errTokenOK
				}
				compared = append(compared, cur)
			}
			if len(compared) == 0 {
				if locked {
					return errTokenLocked
				}
				return errNoneComparable
			}
			var ids []string
			for _, c := range compared {
				c.Token.Failures++
				attempt = max(attempt, c.Token.Failures)
				if err := ss.Put(c); err != nil {
					return err
				}
				ids = append(ids, fmt.Sprintf("%s (%d of %d)", c.ID[:8], c.Token.Failures, maxFailures))
			}
			ss.SetDetail("wrong registration token; compared with registration " + strings.Join(ids, ", "))
			return nil
		})
	switch {
	case errors.Is(err, errTokenOK):
		return match, nil, nil
	case errors.Is(err, errTokenLocked):
		return store.Session{}, nil, lockedErr()
	case errors.Is(err, errNoneComparable):
		return store.Session{}, nil, huma.Error409Conflict("machine " + m.MAC + " registered a new token while it was being checked; ask for the token its console shows now")
	case err != nil:
		return store.Session{}, nil, s.storeErr(err, "machine "+m.MAC, "body.token")
	}
	s.log.Warn("wrong registration token", "mac", m.MAC, "actor", actor, "failures", attempt)
	msg := fmt.Sprintf("wrong registration token (attempt %d of %d)", attempt, maxFailures)
	if ferr != nil {
		msg = fmt.Sprintf("not a registration token like FOUNDRY-ABCD-EFGH-JKLM (attempt %d of %d)", attempt, maxFailures)
	}
	if attempt >= maxFailures {
		msg += "; approval is now locked until the machine registers a new token"
	}
	return store.Session{}, &huma.ErrorDetail{Location: "body.token", Message: msg}, nil
}

// Outcomes of the comparing transaction that write nothing.
var (
	errTokenOK     = errors.New("token matches")
	errTokenLocked = errors.New("approval locked")
)

func lockedErr() error {
	return huma.Error423Locked(fmt.Sprintf("approval is locked after %d wrong tokens until the machine registers a new token (reboot it into discovery, or wait for its token to be replaced)", maxFailures),
		&huma.ErrorDetail{Location: "body.token", Message: "locked until the machine registers a new token"})
}

func (s *Server) approve(ctx context.Context, in *approveIn) (*machineOut, error) {
	return s.approveMachine(ctx, in.MAC, in.Body, "")
}

// approveMachine approves mac as req says. declared is empty for an
// administrator's approval, which needs the console token (unless the lab
// switch allows none) and takes what it leaves out from the machine's
// declaration in Git, if any; it is the declaration's origin for an
// approval a Git declaration makes on its own (gitops, its
// approve_without_token setting), which needs no token but binds only a
// machine with exactly one registration.
func (s *Server) approveMachine(ctx context.Context, mac string, req ApproveRequest, declared string) (*machineOut, error) {
	m, err := s.getMachine(mac)
	if err != nil {
		return nil, err
	}
	if m.State != store.StateInventoried {
		return nil, notInventoried(m)
	}
	role, from := lifecycle.RoleAdmin, declared
	if declared != "" {
		role = lifecycle.RoleGit
	} else if s.GitOps != nil {
		if d, origin, ok := s.GitOps.Declaration(m.MAC); ok {
			req, from = fromDeclaration(req, d), origin
		}
	}
	bypass := declared != "" || s.AllowApprovalWithoutToken && strings.TrimSpace(req.Token) == ""
	var (
		sess    store.Session
		errs    []*huma.ErrorDetail
		matched bool
	)
	if bypass {
		if sess, err = s.onlyRegistration(m); err != nil {
			return nil, err
		}
		matched = true
	} else {
		var detail *huma.ErrorDetail
		if sess, detail, err = s.verifyToken(ctx, m, req.Token); err != nil {
			return nil, err
		}
		if detail != nil {
			errs = append(errs, detail)
		}
		matched = detail == nil
	}
	// A released machine is approved only through a registration whose
	// agent has wiped the disks.
	if matched && m.Lifecycle("").WipePending() && sess.Wiped.IsZero() {
		return nil, huma.Error409Conflict("machine " + m.MAC + " was released and this registration has not wiped its disks yet; wait for its agent to report the wipe")
	}
	// The disk is chosen from the inventory of the registration approval
	// binds to; it is frozen into the machine's record with the approval.
	inv := m.Inventory
	if matched {
		if inv, err = s.Store.SessionInventory(sess.ID); err != nil {
			return nil, s.storeErr(err, "registration "+sess.ID, "body.token")
		}
	}
	plan, perrs, err := s.planApproval(m, req, inv)
	if err != nil {
		return nil, err
	}
	errs = append(errs, perrs...)
	if len(errs) > 0 {
		return nil, huma.Error422UnprocessableEntity("approval refused: "+errs[0].Message, details(errs)...)
	}
	actor := caller(ctx).Actor
	plan.approval.ApprovedBy, plan.approval.ApprovedAt, plan.approval.TokenBypassed = actor, s.now(), bypass
	detail := fmt.Sprintf("cluster=%s profile=%s hostname=%s disk=%s network=%s registration=%s", plan.cluster, plan.profile.Name,
		plan.hostname, plan.approval.Disk, plan.approval.Network.Mode, sess.ID[:8])
	if from != "" {
		detail += "; " + from
	}
	if bypass && declared == "" {
		detail += "; approved WITHOUT the console token (allow_approval_without_token is on)"
		s.log.Warn("machine approved without registration token", "mac", m.MAC, "actor", actor)
	}
	// The installed system presents this secret to report its first boot.
	secret, err := newSecret()
	if err != nil {
		return nil, fmt.Errorf("draw first-boot secret: %w", err)
	}
	bmcUser := s.approvalBMCUser(req.BMCUser, plan.cluster)
	if bmcUser != "" {
		detail += "; BMC user " + bmcUser + " to be created in band"
	}
	approve := store.Step{Audit: store.Audit{Actor: actor, Action: "approve", Detail: detail},
		Apply: func(cur *store.Machine, ss *store.Sessions) error {
			to, err := lifecycle.Next(lifecycle.ActApprove, role, cur.State)
			if err != nil {
				return errChanged
			}
			if now, err := ss.Get(sess.ID); err != nil || !bytes.Equal(now.Token.Hash, sess.Token.Hash) {
				return errChanged
			}
			cur.State = to
			cur.Session, cur.Inventory = sess.ID, inv
			cur.Temporary, cur.ExpiresAt = false, time.Time{}
			cur.Cluster, cur.Profile, cur.Hostname = plan.cluster, plan.profile.Name, plan.hostname
			a := plan.approval
			cur.Approval = &a
			cur.Progress, cur.Message = 0, ""
			cur.ProgressDetail = nil
			cur.Installed, cur.FirstBootSecret, cur.FirstBoot, cur.ReadyAt = false, secret, nil, time.Time{}
			cur.Wipe, cur.WipeFull, cur.WipeSecure = false, false, false
			cur.BMCUser = bmcUser
			return nil
		}}
	// A netboot machine is ready once approved (every PXE boot gets the
	// production script): in the same commit, audited as its own step.
	steps := []store.Step{approve}
	if plan.profile.Kind == store.ProfileNetboot {
		steps = append(steps, s.netbootReadyStep(actor, plan.profile.Name))
	}
	out, err := s.Store.UpdateMachineSteps(m.MAC, steps...)
	if errors.Is(err, errChanged) {
		return nil, huma.Error409Conflict("machine " + m.MAC + " changed while it was being approved (a new registration?); review it and approve again")
	}
	var taken *store.TakenError
	if errors.As(err, &taken) {
		// Uniqueness is decided in the write transaction, so that two
		// concurrent approvals cannot both take one name or address.
		loc := "body.hostname"
		if taken.Field == "address" {
			loc = "body.network.address"
		}
		return nil, huma.Error422UnprocessableEntity("approval refused: "+taken.Error(),
			&huma.ErrorDetail{Location: loc, Message: "already used by machine " + taken.By, Value: taken.Value})
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+m.MAC, "body")
	}
	return &machineOut{Body: s.machineView(out, true)}, nil
}

var errChanged = errors.New("machine changed concurrently")

// onlyRegistration is the registration an approval without the console
// token binds to: there must be exactly one, since only the token could
// tell several apart.
func (s *Server) onlyRegistration(m store.Machine) (store.Session, error) {
	sessions, err := s.Store.MachineSessions(m.MAC)
	if err != nil {
		return store.Session{}, s.storeErr(err, "machine "+m.MAC, "body.token")
	}
	switch len(sessions) {
	case 0:
		return store.Session{}, huma.Error409Conflict("machine " + m.MAC + " has no live registration; boot it into discovery")
	case 1:
		return sessions[0], nil
	}
	return store.Session{}, huma.Error409Conflict(fmt.Sprintf("MAC conflict: machine %s has %d registrations (possible spoofing); only the console token can tell which to approve", m.MAC, len(sessions)),
		&huma.ErrorDetail{Location: "body.token", Message: "required while the MAC has more than one registration"})
}

// approvalPlan is a fully checked approval, ready to be written.
type approvalPlan struct {
	cluster  string
	profile  store.Profile
	hostname string
	approval store.Approval
}

// planApproval runs every rule except the token and the uniqueness of host
// name and static address (the store checks those as it writes) and
// returns every problem with the request; err is a store failure.
func (s *Server) planApproval(m store.Machine, req ApproveRequest, inv json.RawMessage) (approvalPlan, []*huma.ErrorDetail, error) {
	var p approvalPlan
	var errs []*huma.ErrorDetail
	add := func(ds ...*huma.ErrorDetail) {
		for _, d := range ds {
			if d != nil {
				errs = append(errs, d)
			}
		}
	}
	profileName := strings.TrimSpace(req.Profile)
	p.cluster = strings.TrimSpace(req.Cluster)
	if p.cluster == "" {
		add(&huma.ErrorDetail{Location: "body.cluster", Message: "a cluster is required: a machine never exists without one"})
	} else if c, err := s.Store.GetCluster(p.cluster); errors.Is(err, store.ErrNotFound) {
		add(&huma.ErrorDetail{Location: "body.cluster", Message: "no such cluster", Value: p.cluster})
	} else if err != nil {
		return p, nil, s.storeErr(err, "cluster "+p.cluster, "body.cluster")
	} else if profileName == "" {
		profileName = c.DefaultProfile
		if profileName == "" {
			add(&huma.ErrorDetail{Location: "body.profile", Message: "the cluster has no default profile; name one"})
		}
	}
	if profileName != "" {
		prof, err := s.Store.GetProfile(profileName)
		switch {
		case errors.Is(err, store.ErrNotFound):
			add(&huma.ErrorDetail{Location: "body.profile", Message: "no such profile", Value: profileName})
		case err != nil:
			return p, nil, s.storeErr(err, "profile "+profileName, "body.profile")
		default:
			p.profile = prof
		}
	}
	hostname := req.Hostname
	if strings.TrimSpace(hostname) == "" {
		hostname = m.Hostname
	}
	h, d := checkHostname(hostname)
	add(d)
	p.hostname = h
	imageProfile := p.profile.Kind == store.ProfileImage
	disk, d := diskChoice(store.ParseInventory(inv), strings.TrimSpace(req.Disk), imageProfile)
	add(d)
	keys, kerrs := checkSSHKeys(req.SSHKeys)
	add(asDetails(kerrs)...)
	var seg *SegmentInfo
	for i := range s.Segments {
		if s.Segments[i].Name == m.Segment {
			seg = &s.Segments[i]
		}
	}
	network, nerrs := checkNetwork(req.Network, seg)
	add(asDetails(nerrs)...)
	p.approval = store.Approval{Disk: disk, SSHKeys: keys, Network: network}
	return p, errs, nil
}

// asDetails narrows the rule checkers' problems (each an *huma.ErrorDetail).
func asDetails(errs []error) []*huma.ErrorDetail {
	out := make([]*huma.ErrorDetail, 0, len(errs))
	for _, e := range errs {
		var d *huma.ErrorDetail
		if errors.As(e, &d) {
			out = append(out, d)
		} else {
			out = append(out, &huma.ErrorDetail{Message: e.Error()})
		}
	}
	return out
}

// details widens problems back to huma's error list.
func details(ds []*huma.ErrorDetail) []error {
	out := make([]error, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}
