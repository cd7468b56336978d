package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

// Agent body limits: an inventory with hundreds of PCI functions is well
// under a megabyte; everything else is a few hundred bytes.
const (
	maxRegisterBytes = 4 << 20
	maxAgentBytes    = 16 << 10
	maxWait          = 300
)

// RawInventory is the agent's inventory object, kept byte for byte as
// received (the schema is defined in discovery-os/inventory and
// documented in docs/inventory.md; newer agents may add fields).
type RawInventory json.RawMessage

// UnmarshalJSON keeps the raw bytes.
func (r *RawInventory) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// MarshalJSON writes the raw bytes.
func (r RawInventory) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// Schema documents the inventory as an open object.
func (RawInventory) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true,
		Description: "Hardware inventory (discovery-os/inventory, docs/inventory.md), stored as received"}
}

// AgentToken is the salted hash of the registration token on the console.
type AgentToken struct {
	Salt      []byte    `json:"salt" minLength:"1" doc:"Random salt, base64 (16 bytes)"`
	Hash      []byte    `json:"hash" minLength:"1" doc:"PBKDF2-SHA256(token, salt, 100000, 32), base64"`
	ExpiresAt time.Time `json:"expires_at" doc:"The agent's expiry; the appliance counts the token's hour from when it receives the hash"`
}

// AgentRegister is the agent's registration.
type AgentRegister struct {
	MAC       string       `json:"mac" maxLength:"64" example:"52:54:00:12:34:56"`
	Inventory RawInventory `json:"inventory"`
	Token     AgentToken   `json:"token"`
}

// AgentState is the machine's state after an agent call.
type AgentState struct {
	State string `json:"state" enum:"discovered,inventoried,approved,provisioning,ready,failed,rejected" example:"inventoried"`
}

// DecisionImage tells the agent what to write where.
type DecisionImage struct {
	URL    string `json:"url" example:"http://10.77.0.1:8080/images/debian-12.raw.zst"`
	SHA256 string `json:"sha256" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	// Disk is the device node in the agent's current boot, resolved from
	// the approved stable path through the latest inventory.
	Disk string `json:"disk" example:"/dev/sda" doc:"Device node to write (resolved through the latest inventory)"`
	// DiskByPath is the approved stable path.
	DiskByPath string `json:"disk_by_path,omitempty" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1"`
}

// Decision is the answer to the agent's long-poll.
type Decision struct {
	Decision string         `json:"decision" enum:"wait,netboot,image,reject" example:"image" doc:"wait: ask again; netboot: reboot (the next PXE boot gets this machine's production boot); image: write the image, then report the result; reject: power off"`
	State    string         `json:"state" example:"approved"`
	Hostname string         `json:"hostname,omitempty" example:"node-01"`
	Image    *DecisionImage `json:"image,omitempty"`
	SSHKeys  []string       `json:"ssh_keys,omitempty"`
	Network  *Network       `json:"network,omitempty"`
}

type decisionIn struct {
	Wait int `query:"wait" minimum:"0" maximum:"300" default:"0" example:"60" doc:"Seconds to wait for a decision other than wait"`
}

// AgentProgress reports provisioning progress.
type AgentProgress struct {
	Percent int    `json:"percent" minimum:"0" maximum:"100" example:"42"`
	Message string `json:"message,omitempty" maxLength:"4096" example:"writing image"`
}

// AgentResult reports the end of provisioning.
type AgentResult struct {
	Success bool   `json:"success" example:"true"`
	Message string `json:"message,omitempty" maxLength:"4096" example:"image written and verified"`
}

type agentStateOut struct{ Body AgentState }

func (s *Server) registerAgent() {
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-register", Method: http.MethodPost, Path: Prefix + "/agent/register",
		Summary: "Register inventory and token hash", MaxBodyBytes: maxRegisterBytes,
		Description: "discovered → inventoried (or refresh an inventoried machine). An approved or ready machine that boots discovery once more only gets its inventory refreshed. A rejected machine's registration is ignored.",
		Errors:      []int{http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.agentRegister)
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-token", Method: http.MethodPost, Path: Prefix + "/agent/token",
		Summary: "Replace the registration token hash", MaxBodyBytes: maxAgentBytes,
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
		Summary: "Report provisioning progress", MaxBodyBytes: maxAgentBytes,
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentProgress }) (*agentStateOut, error) {
		p := caller(ctx)
		return s.agentUpdate(p, "progress", fmt.Sprintf("%d%% %s", in.Body.Percent, in.Body.Message), func(m *store.Machine) error {
			if m.State != store.StateApproved && m.State != store.StateProvisioning {
				return fmt.Errorf("%w: machine is %s; progress is only expected while provisioning", store.ErrTransition, m.State)
			}
			m.State, m.Progress, m.Message = store.StateProvisioning, in.Body.Percent, in.Body.Message
			return nil
		})
	})
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-result", Method: http.MethodPost, Path: Prefix + "/agent/result",
		Summary: "Report the end of provisioning", MaxBodyBytes: maxAgentBytes,
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *struct{ Body AgentResult }) (*agentStateOut, error) {
		p := caller(ctx)
		action := "provision-failed"
		if in.Body.Success {
			action = "provisioned"
		}
		return s.agentUpdate(p, action, in.Body.Message, func(m *store.Machine) error {
			if in.Body.Success && m.State == store.StateReady {
				return nil // a repeated report
			}
			if m.State != store.StateApproved && m.State != store.StateProvisioning {
				return fmt.Errorf("%w: machine is %s; a result is only expected while provisioning", store.ErrTransition, m.State)
			}
			if in.Body.Success {
				m.State, m.Progress, m.Message = store.StateReady, 100, in.Body.Message
			} else {
				m.State, m.Message = store.StateFailed, in.Body.Message
			}
			return nil
		})
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
			if m.State == store.StateDiscovered {
				m.State = store.StateInventoried
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
