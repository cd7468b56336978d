package api

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// The in-band BMC user: approval (or its cluster) asks for one; the
// approved boot's agent is told to create it with a wait decision that
// carries bmc_user, creates it over /dev/ipmi0 with a password of its own
// drawing, and reports it here over its signed session; the appliance
// seals the password and goes on with the decision approval made.

type (
	DecisionBMCUser = agentwire.DecisionBMCUser
	AgentBMC        = agentwire.AgentBMC
)

// DefaultBMCUser is the name of the BMC user the appliance asks for.
const DefaultBMCUser = "foundry"

// approvalBMCUser is the BMC user an approval asks for: when the request
// or the cluster says so.
func (s *Server) approvalBMCUser(asked bool, cluster string) string {
	if !asked {
		c, err := s.Store.GetCluster(cluster)
		if err != nil || !c.BMCUser {
			return ""
		}
	}
	return DefaultBMCUser
}

// bmcUserDecision is the wait that asks the approved boot's agent for the
// BMC user before it goes on to kind: a netboot decision ends the boot
// session as it is delivered, so the user is asked for first.
func bmcUserDecision(m store.Machine, kind lifecycle.Agent) (Decision, bool) {
	if m.BMCUser == "" || (kind != lifecycle.AgentNetboot && kind != lifecycle.AgentImage) {
		return Decision{}, false
	}
	return Decision{Decision: agentwire.KindWait, State: m.State.String(), BMCUser: &DecisionBMCUser{Username: m.BMCUser},
		Message: "creating the appliance's BMC user " + m.BMCUser}, true
}

func (s *Server) registerAgentBMC() {
	register(s, accessAgent, huma.Operation{
		OperationID: "agent-bmc", Method: http.MethodPost, Path: Prefix + "/agent/bmc",
		Summary:      "Report the BMC user created in band (the bound session only)",
		Description:  "The password is sealed at once and never shown. With error, the appliance stops asking and audits why.",
		MaxBodyBytes: maxAgentBytes, Middlewares: huma.Middlewares{s.declaredTooLarge(maxAgentBytes)},
		Errors: []int{http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.agentBMC)
}

func (s *Server) agentBMC(ctx context.Context, in *struct{ Body AgentBMC }) (*agentStateOut, error) {
	p := caller(ctx)
	r := in.Body
	if r.Error != "" {
		return s.agentReport(p, "bmc-user", "bmc-user-failed", printableDetail(r.Error), func(m *store.Machine) error {
			m.BMCUser = ""
			return nil
		})
	}
	addr := strings.TrimSpace(r.Address)
	if a, err := netip.ParseAddr(addr); err == nil && a.IsUnspecified() {
		addr = "" // the BMC has no LAN address yet
	}
	ep := bmc.Endpoint{Protocol: bmc.IPMI, Host: addr, Username: r.Username, Password: r.Password}
	if addr == "" {
		ep.Host = "0.0.0.0"
	}
	if err := ep.Validate(); err != nil || r.Password == "" {
		field, msg := "body.password", "the user needs a name and a password"
		if err != nil {
			field, msg = bmcField(err), err.Error()
		}
		return nil, fieldErr(field, msg, nil)
	}
	sealed, err := s.sealPassword(p.MAC, r.Password)
	if err != nil {
		return nil, err
	}
	// The BMC's MAC is informational: kept in the one canonical form
	// (names.ParseMAC), or not at all when it is not a MAC.
	bmcMAC, _ := names.ParseMAC(strings.TrimSpace(r.MAC))
	detail := "ipmi user " + r.Username + " created in band"
	if addr != "" {
		detail += " on the BMC at " + addr
	} else {
		detail += "; the BMC reports no LAN address: enter it by hand"
	}
	out, err := s.agentReport(p, "bmc-user", "bmc-created", detail, func(m *store.Machine) error {
		if m.BMCUser == "" {
			return errNoBMCRequest
		}
		m.BMCUser = ""
		m.BMC = &store.BMC{Protocol: string(bmc.IPMI), Address: addr, MAC: bmcMAC, Username: r.Username,
			Secret: sealed, Source: store.BMCFromAgent, UpdatedAt: s.now()}
		return nil
	})
	if errors.Is(err, errNoBMCRequest) {
		return nil, huma.Error409Conflict("no BMC user was asked of this machine")
	}
	if err == nil && addr != "" {
		s.bmcs.goRefresh(s, p.MAC)
	}
	return out, err
}

var errNoBMCRequest = errors.New("no BMC user asked for")

// printableDetail is a machine's text fit for an audit entry: control
// characters replaced, at most 1000 bytes.
func printableDetail(s string) string {
	s = strings.Map(func(r rune) rune {
		if names.Printable(string(r)) {
			return r
		}
		return '?'
	}, s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}
