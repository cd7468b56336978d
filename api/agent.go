package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Agent body limits. The inventory is kept in the machine's record, which
// the store caps at store.MaxRecord (1 MiB): a register body may take half
// of it, leaving the other half for the rest of the record (an approval is
// at most a 64 KiB body) and for JSON escapes the store's encoding adds. An
// inventory with hundreds of PCI functions and disks is around 100 KiB.
// Everything else the agent sends is a few hundred bytes. A body above its
// limit is refused with 413 before it is read when it declares its length,
// and after at most the limit's bytes when it does not.
const (
	maxRegisterBytes = store.MaxRecord / 2
	maxAgentBytes    = 16 << 10
	maxWait          = 120
)

// declaredTooLarge refuses a body whose Content-Length is above the
// operation's limit before anything of it is read (huma reads up to the
// limit, then refuses).
func (s *Server) declaredTooLarge(limit int64) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if n, err := strconv.ParseInt(ctx.Header("Content-Length"), 10, 64); err == nil && n >= limit {
			huma.WriteErr(s.api, ctx, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body is too large: %d bytes, the limit is %d", n, limit-1))
			return
		}
		next(ctx)
	}
}

// The agent API's bodies are defined once, in package agentwire, which the
// agent imports too; these aliases keep their names in package api (and,
// through huma, in the OpenAPI document).
type (
	RawInventory  = agentwire.RawInventory
	AgentToken    = agentwire.AgentToken
	AgentRegister = agentwire.AgentRegister
	AgentState    = agentwire.AgentState
	DecisionImage = agentwire.DecisionImage
	DecisionWipe  = agentwire.DecisionWipe
	Decision      = agentwire.Decision
	AgentProgress = agentwire.AgentProgress
	AgentResult   = agentwire.AgentResult
)

// inventorySchema stands in for agentwire.RawInventory in the OpenAPI
// document: agentwire imports nothing, so it cannot carry huma's Schema
// method, and huma would describe bare bytes as a base64 string.
type inventorySchema struct{}

// Schema documents the inventory as an open object.
func (inventorySchema) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true,
		Description: "Hardware inventory (discovery-os/inventory, docs/inventory.md), stored as received"}
}

type decisionIn struct {
	Wait int `query:"wait" minimum:"0" maximum:"120" default:"0" example:"60" doc:"Seconds to wait for a decision other than wait"`
}

type agentStateOut struct{ Body AgentState }

// opAgentRegister is the registration's operation ID: the one agent call
// that opens a session rather than using one.
const opAgentRegister = "agent-register"

func (s *Server) registerAgent() {
	s.api.OpenAPI().Components.Schemas.RegisterTypeAlias(reflect.TypeFor[agentwire.RawInventory](), reflect.TypeFor[inventorySchema]())
	register(s, accessAgent, huma.Operation{
		OperationID: opAgentRegister, Method: http.MethodPost, Path: Prefix + "/agent/register",
		Summary: "Open a boot session: public key, inventory and token hash", MaxBodyBytes: maxRegisterBytes,
		Description: "Uses the boot's one-time nonce (" + NonceHeader + ") to open a boot session for the boot's Ed25519 key; the call is signed with that key (RFC 9421). " +
			"discovered → inventoried. A second registration for the same MAC is a separate pending registration (a MAC conflict); approval binds to the one whose token the administrator typed. " +
			"Sent again with the same nonce and key (a retry), it answers as the first time; with another key the nonce is refused. " +
			"A machine already approved keeps its frozen inventory; a rejected machine's session is only told to power off.",
		Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
		// huma validates a body by decoding it into generic values first:
		// about 50 bytes of allocation per byte of an inventory such as
		// [{},{},…]. agentRegister and checkToken check every field of
		// this body themselves, and the inventory stays raw bytes, so the
		// generic pass is skipped (api/agent_limits_test.go measures it).
		SkipValidateBody: true,
		Middlewares:      huma.Middlewares{s.declaredTooLarge(maxRegisterBytes)},
	}, s.agentRegister)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-token", Method: http.MethodPost, Path: Prefix + "/agent/token",
		Summary: "Replace this session's registration token hash", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.agentToken)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-decision", Method: http.MethodGet, Path: Prefix + "/agent/decision",
		Summary:     "Wait for the administrator's decision (long-poll)",
		Description: "Only the session approval bound is given the image and the approval's details; another session of the same MAC waits.",
		Errors:      []int{http.StatusNotFound},
	}, s.agentDecision)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-progress", Method: http.MethodPost, Path: Prefix + "/agent/progress",
		Summary: "Report provisioning progress (the bound session only)", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentProgress }) (*agentStateOut, error) {
		p := caller(ctx)
		detail, err := progressDetail(in.Body, s.now())
		if err != nil {
			return nil, err
		}
		return s.agentReport(p, lifecycle.ActProgress, "progress", fmt.Sprintf("%d%% %s", in.Body.Percent, in.Body.Message), func(m *store.Machine) error {
			to, err := lifecycle.Next(lifecycle.ActProgress, lifecycle.RoleAgent, m.State)
			if err != nil {
				return fmt.Errorf("%w: machine is %s; progress is only expected while provisioning", store.ErrTransition, m.State)
			}
			m.State, m.Progress, m.Message = to, in.Body.Percent, in.Body.Message
			m.ProgressDetail = detail
			return nil
		})
	})
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-result", Method: http.MethodPost, Path: Prefix + "/agent/result",
		Summary: "Report the end of provisioning (the bound session only) or of a release's wipe (every session)", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentResult }) (*agentStateOut, error) {
		p := caller(ctx)
		if out, ok, err := s.wipeReport(p, in.Body); ok {
			return out, err
		}
		action, act := "provision-failed", lifecycle.ActFail
		if in.Body.Success {
			action, act = "provisioned", lifecycle.ActSucceed
		}
		return s.agentReport(p, act, action, in.Body.Message, func(m *store.Machine) error {
			if in.Body.Success && (m.State == store.StateReady || m.Installed) {
				return nil // a repeated report
			}
			if in.Body.Success && m.State == store.StateApproved && s.profileOf(*m).Kind == store.ProfileNetboot {
				// The agent of a netboot machine reboots into production
				// as soon as it is told; after a redeploy its report may
				// arrive before the redeploy's own move to ready (an
				// approval makes the machine ready in its own commit).
				to, err := lifecycle.Next(lifecycle.ActNetbootOK, lifecycle.RoleSystem, m.State)
				if err != nil {
					return fmt.Errorf("%w: %w", store.ErrTransition, err)
				}
				m.State, m.ReadyAt = to, s.now()
				return nil
			}
			to, err := lifecycle.Next(act, lifecycle.RoleAgent, m.State)
			if err != nil {
				return fmt.Errorf("%w: machine is %s; a result is only expected while provisioning", store.ErrTransition, m.State)
			}
			m.State, m.Message = to, in.Body.Message
			if in.Body.Success {
				// Written: the machine boots its disk, and is ready once
				// the installed system reports its first boot.
				m.Progress, m.Installed = 100, true
			}
			return nil
		})
	})
}

// progressDetail checks a report's download figures (the schema has bounded
// each; their relation is checked here) and returns them as stored: nil
// when the report has none.
func progressDetail(p AgentProgress, now time.Time) (*store.ProgressDetail, error) {
	switch {
	case p.BytesDone < 0:
		return nil, fieldErr("body.bytes_done", "must not be negative", p.BytesDone)
	case p.BytesTotal < 0:
		return nil, fieldErr("body.bytes_total", "must not be negative", p.BytesTotal)
	case p.RateBps < 0:
		return nil, fieldErr("body.rate_bps", "must not be negative", p.RateBps)
	case p.ETASeconds < 0 || p.ETASeconds > agentwire.MaxETASeconds:
		return nil, fieldErr("body.eta_seconds", fmt.Sprintf("want 0-%d seconds", agentwire.MaxETASeconds), p.ETASeconds)
	case p.BytesTotal > 0 && p.BytesDone > p.BytesTotal:
		return nil, fieldErr("body.bytes_done", "more than bytes_total", p.BytesDone)
	case p.BytesDone == 0 && p.BytesTotal == 0 && p.RateBps == 0 && p.ETASeconds == 0:
		return nil, nil
	}
	return &store.ProgressDetail{BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, RateBps: p.RateBps, ETASeconds: p.ETASeconds, At: now}, nil
}

// errNotBound refuses a report from a session approval did not bind.
var errNotBound = errors.New("not the approved boot session")

// agentReport changes the machine for a report of its bound session; the
// sessions end with the change when the action ends them (an install that
// succeeded).
func (s *Server) agentReport(p principal, act lifecycle.Action, action, detail string, fn func(*store.Machine) error) (*agentStateOut, error) {
	m, err := s.Store.UpdateMachineSessions(p.MAC, store.Audit{Actor: p.Actor, Action: action, Detail: detail},
		func(m *store.Machine, ss *store.Sessions) error {
			if m.Session == "" || m.Session != p.Session {
				return errNotBound
			}
			before := m.Progress
			if err := fn(m); err != nil {
				return err
			}
			// Progress arrives every few seconds: the audit log keeps the
			// first report and one per ten percent.
			if act == lifecycle.ActProgress && before/10 == m.Progress/10 {
				ss.Quiet()
			}
			if lifecycle.EndsSession(act) {
				return ss.EndAll()
			}
			return nil
		})
	if errors.Is(err, errNotBound) {
		s.log.Warn("report from a boot session approval did not bind", "mac", p.MAC, "session", p.Session, "action", action)
		return nil, huma.Error403Forbidden("this boot session is not the one the machine was approved in; only that session may report")
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+p.MAC, "body")
	}
	return &agentStateOut{Body: AgentState{State: m.State.String()}}, nil
}

func (s *Server) agentRegister(ctx context.Context, in *struct{ Body AgentRegister }) (*agentStateOut, error) {
	p := caller(ctx)
	mac, err := canonicalMAC(in.Body.MAC)
	if err != nil {
		return nil, fieldErr("body.mac", "not a MAC address", in.Body.MAC)
	}
	if mac != p.MAC {
		return nil, huma.Error403Forbidden("this boot nonce belongs to another machine",
			&huma.ErrorDetail{Location: "body.mac", Message: "does not match the nonce's MAC", Value: in.Body.MAC})
	}
	if in.Body.Token.Salt == nil && in.Body.Token.Hash == nil {
		// The schema's "required" is not checked for this body (see
		// SkipValidateBody), so its one object field is checked here.
		return nil, fieldErr("body.token", "the token's salt and hash are required", nil)
	}
	tok, err := s.checkToken(in.Body.Token, "body.token.")
	if err != nil {
		return nil, err
	}
	inv := json.RawMessage(bytes.TrimSpace(in.Body.Inventory))
	if len(inv) == 0 || inv[0] != '{' {
		return nil, fieldErr("body.inventory", "the inventory must be a JSON object", nil)
	}
	now := s.now()
	sess := store.Session{
		ID: agentsig.KeyID(p.PublicKey), PublicKey: p.PublicKey, Token: tok,
		Remote: p.Remote, ExpiresAt: now.Add(s.sessionTTL()),
	}
	m, err := s.Store.UpdateMachineSessions(mac, store.Audit{Actor: p.Actor, Action: "register"},
		func(m *store.Machine, ss *store.Sessions) error {
			if _, err := ss.Get(sess.ID); errors.Is(err, store.ErrNotFound) {
				// A new session, not a retried registration (which Open
				// answers as before).
				live, err := ss.List()
				if err != nil {
					return err
				}
				if err := admitSession(live, m.Session, sess, now); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			opened, again, err := ss.Open(p.Nonce, sess, inv)
			if err != nil {
				return err
			}
			if again {
				return errAgain
			}
			others, err := ss.List()
			if err != nil {
				return err
			}
			detail := "session " + opened.ID[:8] + " from " + opened.Remote
			if len(others) > 1 {
				detail += fmt.Sprintf("; MAC conflict: %d registrations", len(others))
			}
			ss.SetDetail(detail)
			if to, err := lifecycle.Next(lifecycle.ActRegister, lifecycle.RoleAgent, m.State); err == nil {
				m.State = to
			}
			if !m.State.Accepted() && m.State != store.StateRejected {
				// Until approval freezes one, the machine shows the latest
				// registration's inventory; each registration keeps its own.
				m.Inventory = inv
			}
			m.LastSeen = now
			return nil
		})
	if errors.Is(err, errTokenCopied) || errors.Is(err, errSessionsActive) {
		return nil, s.refuseSession(p, err)
	}
	if errors.Is(err, errAgain) {
		cur, err := s.Store.GetMachine(mac)
		if err != nil {
			return nil, s.storeErr(err, "machine "+mac, "body")
		}
		return &agentStateOut{Body: AgentState{State: cur.State.String()}}, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		// The nonce was used (by another key) or ended since the check.
		return nil, huma.Error401Unauthorized("unknown, used or expired boot nonce; reboot the machine into discovery")
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "body")
	}
	if sessions, err := s.Store.MachineSessions(mac); err == nil && len(sessions) > 1 {
		s.log.Warn("MAC conflict: another registration for this MAC", "mac", mac, "registrations", len(sessions), "remote", p.Remote)
	}
	return &agentStateOut{Body: AgentState{State: m.State.String()}}, nil
}

// errAgain marks a retried registration: its session exists already.
var errAgain = errors.New("registration sent again")

// Refusals of a registration or token that would let a host spoofing the
// MAC take over the genuine registration's console token.
var (
	// errTokenCopied: another live registration of the MAC holds the
	// token's salt or hash. Over plain HTTP both can be read off the
	// genuine agent's registration; registered with a forged inventory
	// and the spoofer's key, the console token the administrator reads
	// off the genuine machine would match that registration too.
	errTokenCopied = errors.New("registration token copied from another registration of this MAC")
	// errSessionsActive: the MAC has store.MaxSessions live sessions and
	// the one a new session would end (the store ends the unbound one
	// heard from least recently) is still active. Otherwise a spoofer
	// could end the genuine session with a burst of its own and then
	// register the genuine token's copy while the console still shows it.
	errSessionsActive = errors.New("too many active registrations for this MAC")
)

// admitSession decides whether session sess (not yet open) may join the
// machine's live sessions, bound being the one approval bound ("" none):
// its token must be its own, and a full set of sessions must have an
// unbound one that is no longer active for it to replace.
func admitSession(live []store.Session, bound string, sess store.Session, now time.Time) error {
	if tokenCopied(live, sess.ID, sess.Token) {
		return errTokenCopied
	}
	if len(live) < store.MaxSessions {
		return nil
	}
	var quietest *store.Session
	for i := range live {
		if l := &live[i]; l.ID != bound && (quietest == nil || l.LastSeen.Before(quietest.LastSeen)) {
			quietest = l
		}
	}
	if quietest != nil && now.Sub(quietest.LastSeen) < activeWithin {
		return errSessionsActive
	}
	return nil
}

// tokenCopied reports whether a live session other than id holds tok's
// salt or hash. An agent draws a fresh salt for every token, so two
// registrations share one only when one copied the other's.
func tokenCopied(live []store.Session, id string, tok store.RegToken) bool {
	for _, l := range live {
		if l.ID != id && (bytes.Equal(l.Token.Salt, tok.Salt) || bytes.Equal(l.Token.Hash, tok.Hash)) {
			return true
		}
	}
	return false
}

// refuseSession answers errTokenCopied (422, naming the token) or
// errSessionsActive (409, which the agent retries) and logs it: both are
// signs of a host spoofing the MAC.
func (s *Server) refuseSession(p principal, err error) error {
	s.log.Warn("possible MAC spoofing: "+err.Error(), "mac", p.MAC, "remote", p.Remote)
	if errors.Is(err, errTokenCopied) {
		return fieldErr("body.token", "this token's salt or hash is another registration's of this MAC: a copied token (possible MAC spoofing)", nil)
	}
	return huma.Error409Conflict(fmt.Sprintf("machine %s has %d registrations that are all active; try again once one is quiet (possible MAC spoofing)", p.MAC, store.MaxSessions))
}

// agentToken replaces the calling session's token hash.
func (s *Server) agentToken(ctx context.Context, in *struct{ Body AgentToken }) (*agentStateOut, error) {
	p := caller(ctx)
	tok, err := s.checkToken(in.Body, "body.")
	if err != nil {
		return nil, err
	}
	m, err := s.Store.UpdateMachineSessions(p.MAC, store.Audit{Actor: p.Actor, Action: "token", Detail: "session " + p.Session[:8]},
		func(m *store.Machine, ss *store.Sessions) error {
			cur, err := ss.Get(p.Session)
			if err != nil {
				return err
			}
			live, err := ss.List()
			if err != nil {
				return err
			}
			if tokenCopied(live, p.Session, tok) {
				return errTokenCopied
			}
			// The same hash sent again (a retried call) keeps its expiry
			// and failures.
			if !bytes.Equal(cur.Token.Hash, tok.Hash) {
				cur.Token = tok
			}
			return ss.Put(cur)
		})
	if errors.Is(err, errTokenCopied) {
		return nil, s.refuseSession(p, err)
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+p.MAC, "body")
	}
	return &agentStateOut{Body: AgentState{State: m.State.String()}}, nil
}

// checkToken checks a token hash from the agent and returns it as stored.
// Its hour counts from when the appliance receives it: a discovery OS may
// run with a wrong clock.
func (s *Server) checkToken(t AgentToken, loc string) (store.RegToken, error) {
	if len(t.Salt) < 8 || len(t.Salt) > 64 {
		return store.RegToken{}, fieldErr(loc+"salt", "want a salt of 8-64 bytes (base64)", nil)
	}
	if len(t.Hash) != token.HashLen {
		return store.RegToken{}, fieldErr(loc+"hash", fmt.Sprintf("want a %d-byte PBKDF2-SHA256 hash (base64)", token.HashLen), nil)
	}
	if err := token.CheckIterations(t.Iterations); err != nil {
		return store.RegToken{}, fieldErr(loc+"iterations", err.Error(), t.Iterations)
	}
	return store.RegToken{Salt: t.Salt, Hash: t.Hash, Iterations: t.Iterations, ExpiresAt: s.now().Add(token.Lifetime)}, nil
}
