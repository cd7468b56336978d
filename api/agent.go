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

	"github.com/danielgtaylor/huma/v2"

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
	maxWait          = 300
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
	Wait int `query:"wait" minimum:"0" maximum:"300" default:"0" example:"60" doc:"Seconds to wait for a decision other than wait"`
}

type agentStateOut struct{ Body AgentState }

func (s *Server) registerAgent() {
	s.api.OpenAPI().Components.Schemas.RegisterTypeAlias(reflect.TypeFor[agentwire.RawInventory](), reflect.TypeFor[inventorySchema]())
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-register", Method: http.MethodPost, Path: Prefix + "/agent/register",
		Summary: "Register inventory and token hash", MaxBodyBytes: maxRegisterBytes,
		Description: "discovered → inventoried (or refresh an inventoried machine). An approved or ready machine that boots discovery once more only gets its inventory refreshed. A rejected machine's registration is ignored.",
		Errors:      []int{http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity},
		// huma validates a body by decoding it into generic values first:
		// about 50 bytes of allocation per byte of an inventory such as
		// [{},{},…]. agentRegister and storeToken check every field of
		// this body themselves, and the inventory stays raw bytes, so the
		// generic pass is skipped (api/agent_limits_test.go measures it).
		SkipValidateBody: true,
		Middlewares:      huma.Middlewares{s.declaredTooLarge(maxRegisterBytes)},
	}, s.agentRegister)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-token", Method: http.MethodPost, Path: Prefix + "/agent/token",
		Summary: "Replace the registration token hash", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct{ Body AgentToken }) (*agentStateOut, error) {
		st, err := s.storeToken(ctx, caller(ctx).MAC, in.Body, nil, "token")
		return st, err
	})
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-decision", Method: http.MethodGet, Path: Prefix + "/agent/decision",
		Summary: "Wait for the administrator's decision (long-poll)",
		Errors:  []int{http.StatusNotFound},
	}, s.agentDecision)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-progress", Method: http.MethodPost, Path: Prefix + "/agent/progress",
		Summary: "Report provisioning progress", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentProgress }) (*agentStateOut, error) {
		p := caller(ctx)
		return s.agentUpdate(p, "progress", fmt.Sprintf("%d%% %s", in.Body.Percent, in.Body.Message), func(m *store.Machine) error {
			to, err := lifecycle.Next(lifecycle.ActProgress, lifecycle.RoleAgent, m.State)
			if err != nil {
				return fmt.Errorf("%w: machine is %s; progress is only expected while provisioning", store.ErrTransition, m.State)
			}
			m.State, m.Progress, m.Message = to, in.Body.Percent, in.Body.Message
			return nil
		})
	})
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-result", Method: http.MethodPost, Path: Prefix + "/agent/result",
		Summary: "Report the end of provisioning", MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentResult }) (*agentStateOut, error) {
		p := caller(ctx)
		action := "provision-failed"
		if in.Body.Success {
			action = "provisioned"
		}
		out, err := s.agentUpdate(p, action, in.Body.Message, func(m *store.Machine) error {
			if in.Body.Success && m.State == store.StateReady {
				return nil // a repeated report
			}
			act := lifecycle.ActFail
			if in.Body.Success {
				act = lifecycle.ActSucceed
			}
			to, err := lifecycle.Next(act, lifecycle.RoleAgent, m.State)
			if err != nil {
				return fmt.Errorf("%w: machine is %s; a result is only expected while provisioning", store.ErrTransition, m.State)
			}
			m.State, m.Message = to, in.Body.Message
			if in.Body.Success {
				m.Progress = 100
			}
			return nil
		})
		if err == nil && in.Body.Success && lifecycle.EndsSession(lifecycle.ActSucceed) {
			// Installed: this boot has nothing left to say, and its nonce
			// must not let anyone report for the machine again.
			s.endSession(p.MAC, string(lifecycle.ActSucceed))
		}
		return out, err
	})
}

func (s *Server) agentUpdate(p principal, action, detail string, fn func(*store.Machine) error) (*agentStateOut, error) {
	m, err := s.Store.UpdateMachine(p.MAC, store.Audit{Actor: p.Actor, Action: action, Detail: detail}, fn)
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
	inv := json.RawMessage(bytes.TrimSpace(in.Body.Inventory))
	if len(inv) == 0 || inv[0] != '{' {
		return nil, fieldErr("body.inventory", "the inventory must be a JSON object", nil)
	}
	return s.storeToken(ctx, mac, in.Body.Token, inv, "register")
}

// storeToken records a new token hash (and, for register, the inventory).
func (s *Server) storeToken(ctx context.Context, mac string, t AgentToken, inv json.RawMessage, action string) (*agentStateOut, error) {
	if len(t.Salt) < 8 || len(t.Salt) > 64 {
		return nil, fieldErr(tokenLoc(action, "salt"), "want a salt of 8-64 bytes (base64)", nil)
	}
	if len(t.Hash) != token.HashLen {
		return nil, fieldErr(tokenLoc(action, "hash"), fmt.Sprintf("want a %d-byte PBKDF2-SHA256 hash (base64)", token.HashLen), nil)
	}
	now := s.now()
	p := caller(ctx)
	var rejected bool
	m, err := s.Store.UpdateMachine(mac, store.Audit{Actor: p.Actor, Action: action}, func(m *store.Machine) error {
		if m.State == store.StateRejected {
			rejected = true
			return errRejected
		}
		// The token's hour counts from when the appliance receives the
		// hash: a discovery OS may run with a wrong clock. The same hash
		// sent again (a retried call) keeps its expiry and failures.
		if m.Token == nil || !bytes.Equal(m.Token.Hash, t.Hash) {
			m.Token = &store.RegToken{Salt: t.Salt, Hash: t.Hash, ExpiresAt: now.Add(token.Lifetime)}
		}
		if inv != nil {
			m.Inventory = inv
			if to, err := lifecycle.Next(lifecycle.ActRegister, lifecycle.RoleAgent, m.State); err == nil {
				m.State = to
			}
		}
		m.LastSeen = now
		return nil
	})
	if rejected {
		return &agentStateOut{Body: AgentState{State: store.StateRejected.String()}}, nil
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "body")
	}
	return &agentStateOut{Body: AgentState{State: m.State.String()}}, nil
}

var errRejected = errors.New("machine is rejected")

func tokenLoc(action, field string) string {
	if action == "register" {
		return "body.token." + field
	}
	return "body." + field
}
