package api

import (
	"bytes"
	"context"
	"crypto/subtle"
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
		if err := s.tokenUsable(m, in.Body.Token, false); err != nil {
			return nil, err
		}
		detail, err := s.verifyToken(ctx, m, in.Body.Token)
		if err != nil {
			return nil, err
		}
		if detail != nil {
			return nil, huma.Error422UnprocessableEntity(detail.Message, detail)
		}
		return &struct{ Body TokenCheck }{Body: TokenCheck{Valid: true, ExpiresAt: m.Token.ExpiresAt}}, nil
	})
}

func notInventoried(m store.Machine) error {
	return huma.Error409Conflict(fmt.Sprintf("machine %s is %s; only an inventoried machine (one whose discovery agent has reported) can be approved", m.MAC, m.State))
}

// tokenUsable refuses a missing, expired or locked token before it is
// compared; bypass reports that the lab switch allows an empty token.
func (s *Server) tokenUsable(m store.Machine, typed string, bypass bool) error {
	if bypass {
		return nil
	}
	if strings.TrimSpace(typed) == "" {
		return fieldErr("body.token", "the registration token shown on the machine's console is required", nil)
	}
	t := m.Token
	if t == nil {
		return huma.Error409Conflict("machine " + m.MAC + " has not registered a token; boot it into discovery")
	}
	if t.Failures >= maxFailures {
		// A shortcut only: verifyToken decides again under the lock.
		return lockedErr()
	}
	if !s.now().Before(t.ExpiresAt) {
		msg := fmt.Sprintf("the registration token expired at %s; the machine's console shows a new one once it is replaced", t.ExpiresAt.UTC().Format(time.RFC3339))
		return fieldErr("body.token", msg, nil)
	}
	return nil
}

// Outcomes of one guarded comparison (verifyToken), decided inside the
// store transaction.
var (
	errTokenLocked = errors.New("approval locked")
	errTokenStale  = errors.New("failure count moved")
	errTokenOK     = errors.New("token matches")
)

// verifyToken compares typed with the machine's registration token. The
// lockout decision, the comparison and the failure count happen in one
// store transaction: UpdateMachine holds the machine's write lock while
// its function runs, and the function refuses a locked token, compares,
// and counts a wrong one before the lock is released. However many
// requests arrive at once, at most maxFailures wrong comparisons are ever
// made against one token; every other request gets 423 without a
// comparison. (Checking the count on a snapshot and incrementing after the
// comparison let 40 concurrent requests all compare.)
//
// The PBKDF2 derivation of typed, the expensive part, runs before the
// transaction with the salt of the snapshot (the transaction refuses a
// replaced token); only the constant-time comparison of the derived hash
// with the stored one runs inside. A wrong token is audited as
// approve-denied with its attempt number; a right one writes nothing.
//
// It returns the detail to report for a wrong token, or an error (423
// locked, 409 token replaced, 422 expired, 500 store failure). m is the
// machine as tokenUsable accepted it.
func (s *Server) verifyToken(ctx context.Context, m store.Machine, typed string) (*huma.ErrorDetail, error) {
	actor := caller(ctx).Actor
	var derived []byte // nil for text that is no token at all: it never matches
	canon, ferr := token.Normalize(typed)
	if ferr == nil {
		derived = token.Hash(canon, m.Token.Salt)
	}
	// Each pass that finds the count moved re-reads it; the count only
	// grows while the token stays the same, so this ends within
	// maxFailures+1 passes. The bound is a guard against a store bug.
	for pass := 0; pass <= 2*maxFailures+2; pass++ {
		seen := m.Token.Failures
		attempt := seen + 1
		detail := fmt.Sprintf("wrong registration token (%d of %d)", attempt, maxFailures)
		if attempt >= maxFailures {
			detail += "; approval locked until the machine registers a new token"
		}
		_, err := s.Store.UpdateMachine(m.MAC, store.Audit{Actor: actor, Action: "approve-denied", Detail: detail},
			func(cur *store.Machine) error {
				t := cur.Token
				switch {
				case !sameToken(t, m.Token):
					return errChanged
				case t.Failures >= maxFailures:
					return errTokenLocked
				case t.Failures != seen:
					return errTokenStale
				case !s.now().Before(t.ExpiresAt):
					return errTokenStale // tokenUsable says so on the next pass
				case derived != nil && subtle.ConstantTimeCompare(derived, t.Hash) == 1:
					return errTokenOK
				}
				counted := *t
				counted.Failures++
				cur.Token = &counted
				return nil
			})
		switch {
		case errors.Is(err, errTokenOK):
			return nil, nil
		case err == nil:
			s.log.Warn("wrong registration token", "mac", m.MAC, "actor", actor, "failures", attempt)
			msg := fmt.Sprintf("wrong registration token (attempt %d of %d)", attempt, maxFailures)
			if ferr != nil {
				msg = fmt.Sprintf("not a registration token like FOUNDRY-ABCD-EFGH-JKLM (attempt %d of %d)", attempt, maxFailures)
			}
			if attempt >= maxFailures {
				msg += "; approval is now locked until the machine registers a new token"
			}
			return &huma.ErrorDetail{Location: "body.token", Message: msg}, nil
		case errors.Is(err, errTokenLocked):
			return nil, lockedErr()
		case errors.Is(err, errChanged):
			return nil, huma.Error409Conflict("machine " + m.MAC + " registered a new token while it was being checked; ask for the token its console shows now")
		case !errors.Is(err, errTokenStale):
			return nil, s.storeErr(err, "machine "+m.MAC, "body.token")
		}
		cur, err := s.Store.GetMachine(m.MAC)
		if err != nil {
			return nil, s.storeErr(err, "machine "+m.MAC, "body.token")
		}
		if !sameToken(cur.Token, m.Token) {
			return nil, huma.Error409Conflict("machine " + m.MAC + " registered a new token while it was being checked; ask for the token its console shows now")
		}
		if err := s.tokenUsable(cur, typed, false); err != nil {
			return nil, err
		}
		m = cur
	}
	return nil, huma.Error409Conflict("machine " + m.MAC + " is being approved by many requests at once; try again")
}

func lockedErr() error {
	return huma.Error423Locked(fmt.Sprintf("approval is locked after %d wrong tokens until the machine registers a new token (reboot it into discovery, or wait for its token to be replaced)", maxFailures),
		&huma.ErrorDetail{Location: "body.token", Message: "locked until the machine registers a new token"})
}

func (s *Server) approve(ctx context.Context, in *approveIn) (*machineOut, error) {
	m, err := s.getMachine(in.MAC)
	if err != nil {
		return nil, err
	}
	if m.State != store.StateInventoried {
		return nil, notInventoried(m)
	}
	req := in.Body
	bypass := s.AllowApprovalWithoutToken && strings.TrimSpace(req.Token) == ""
	if err := s.tokenUsable(m, req.Token, bypass); err != nil {
		return nil, err
	}
	plan, errs, err := s.planApproval(m, req)
	if err != nil {
		return nil, err
	}
	if !bypass {
		detail, err := s.verifyToken(ctx, m, req.Token)
		if err != nil {
			return nil, err
		}
		if detail != nil {
			errs = append([]*huma.ErrorDetail{detail}, errs...)
		}
	}
	if len(errs) > 0 {
		return nil, huma.Error422UnprocessableEntity("approval refused: "+errs[0].Message, details(errs)...)
	}
	actor := caller(ctx).Actor
	plan.approval.ApprovedBy, plan.approval.ApprovedAt, plan.approval.TokenBypassed = actor, s.now(), bypass
	detail := fmt.Sprintf("cluster=%s profile=%s hostname=%s disk=%s network=%s", plan.cluster, plan.profile.Name,
		plan.hostname, plan.approval.Disk, plan.approval.Network.Mode)
	if bypass {
		detail += "; approved WITHOUT the console token (allow_approval_without_token is on)"
		s.log.Warn("machine approved without registration token", "mac", m.MAC, "actor", actor)
	}
	out, err := s.Store.UpdateMachine(m.MAC, store.Audit{Actor: actor, Action: "approve", Detail: detail},
		func(cur *store.Machine) error {
			to, err := lifecycle.Next(lifecycle.ActApprove, lifecycle.RoleAdmin, cur.State)
			if err != nil || !sameToken(cur.Token, m.Token) {
				return errChanged
			}
			cur.State = to
			cur.Temporary, cur.ExpiresAt = false, time.Time{}
			cur.Cluster, cur.Profile, cur.Hostname = plan.cluster, plan.profile.Name, plan.hostname
			a := plan.approval
			cur.Approval = &a
			cur.Progress, cur.Message = 0, ""
			return nil
		})
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
	if plan.profile.Kind == store.ProfileNetboot {
		// A netboot machine needs nothing more: every PXE boot from now on
		// gets the production script (docs/spec.md §1, approved → ready).
		if r, err := s.Store.UpdateMachine(m.MAC, store.Audit{Actor: actor, Action: "ready", Detail: "netboot profile " + plan.profile.Name},
			func(cur *store.Machine) error {
				to, err := lifecycle.Next(lifecycle.ActNetbootOK, lifecycle.RoleSystem, cur.State)
				if err != nil {
					return errChanged
				}
				cur.State = to
				return nil
			}); err == nil {
			out = r
		} else if !errors.Is(err, errChanged) {
			s.log.Error("mark netboot machine ready", "mac", m.MAC, "err", err)
		}
	}
	return &machineOut{Body: machineView(out, s.now(), true)}, nil
}

var errChanged = errors.New("machine changed concurrently")

func sameToken(a, b *store.RegToken) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Hash, b.Hash)
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
func (s *Server) planApproval(m store.Machine, req ApproveRequest) (approvalPlan, []*huma.ErrorDetail, error) {
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
	disk, d := diskChoice(parseInventory(m.Inventory), strings.TrimSpace(req.Disk), imageProfile)
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
