package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/store"
)

// A machine's BMC: its address and the appliance's credential on it
// (reported by the discovery OS, or entered by hand), power status, on,
// off and cycle, the next boot from the network, and password rotation.
// The password is stored sealed (Server.Secrets) and never answered.

// BMCDriver is what the API needs of a BMC client; *bmc.Client satisfies
// it. Tests give a failing or counting one.
type BMCDriver interface {
	PowerState(ctx context.Context, ep bmc.Endpoint) (bmc.PowerState, error)
	Power(ctx context.Context, ep bmc.Endpoint, a bmc.Action) error
	BootPXE(ctx context.Context, ep bmc.Endpoint) error
	RestartPXE(ctx context.Context, ep bmc.Endpoint) (bmc.PowerState, error)
	SetPassword(ctx context.Context, ep bmc.Endpoint, next string) error
}

// BMCInfo is a machine's BMC as the API shows it: never its password.
type BMCInfo struct {
	Protocol   string     `json:"protocol" enum:"ipmi,redfish" example:"ipmi"`
	Address    string     `json:"address" example:"10.77.1.21"`
	Port       int        `json:"port,omitempty" example:"623" doc:"0 or absent: the protocol's default (IPMI 623, Redfish 443)"`
	MAC        string     `json:"mac,omitempty" doc:"The BMC's own LAN MAC, as the discovery OS read it"`
	Username   string     `json:"username,omitempty" example:"foundry"`
	Credential bool       `json:"credential" doc:"A password is stored (encrypted at rest; never shown)"`
	Source     string     `json:"source" enum:"agent,admin" doc:"agent: created in band by the discovery OS; admin: entered by hand"`
	UpdatedAt  time.Time  `json:"updated_at"`
	RotatedAt  *time.Time `json:"rotated_at,omitempty" doc:"When the appliance last gave its BMC user a new password"`
}

// PowerStatus is a machine's power as its BMC last reported it.
type PowerStatus struct {
	State     string     `json:"state" enum:"on,off,unknown" example:"on" doc:"unknown: never read, or the BMC's answer was neither"`
	CheckedAt *time.Time `json:"checked_at,omitempty" doc:"When the BMC last answered"`
	Error     string     `json:"error,omitempty" doc:"The BMC's own message from the last failed call, until a call succeeds"`
	ErrorAt   *time.Time `json:"error_at,omitempty"`
}

// BMCRequest enters a machine's BMC by hand.
type BMCRequest struct {
	Protocol string `json:"protocol" enum:"ipmi,redfish" example:"ipmi"`
	Address  string `json:"address" minLength:"1" maxLength:"253" example:"10.77.1.21" doc:"IP address or host name"`
	Port     int    `json:"port,omitempty" minimum:"0" maximum:"65535" doc:"0: the protocol's default"`
	Username string `json:"username" minLength:"1" maxLength:"64" example:"foundry"`
	Password string `json:"password" minLength:"1" maxLength:"64" doc:"Stored encrypted; never shown again"`
}

// PowerRequest is a power change.
type PowerRequest struct {
	Action string `json:"action" enum:"on,off,cycle" example:"cycle" doc:"cycle: hard power-off, then on"`
}

type bmcIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body BMCRequest
}

type powerIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body PowerRequest
}

type powerGetIn struct {
	MAC     string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Refresh bool   `query:"refresh" doc:"Ask the BMC now, unless it answered in the last few seconds"`
}

type powerOut struct{ Body PowerStatus }

func (s *Server) registerBMC() {
	s.registerAgentBMC()
	errs := []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusBadGateway, http.StatusServiceUnavailable}
	register(s, accessWrite, huma.Operation{
		OperationID: "set-machine-bmc", Method: http.MethodPut, Path: Prefix + "/machines/{mac}/bmc",
		Summary: "Enter a machine's BMC by hand", Tags: []string{"machines"},
		Description: "For a machine whose discovery OS could not reach its BMC in band, or to use an existing BMC account. The password is stored encrypted and never shown; the power state is read at once.",
		Errors:      errs,
	}, s.setBMC)
	register(s, accessWrite, huma.Operation{
		OperationID: "delete-machine-bmc", Method: http.MethodDelete, Path: Prefix + "/machines/{mac}/bmc",
		Summary: "Forget a machine's BMC and its credential", Tags: []string{"machines"},
		Errors: errs,
	}, s.deleteBMC)
	register(s, accessWrite, huma.Operation{
		OperationID: "rotate-machine-bmc", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/bmc/rotate",
		Summary: "Give the appliance's BMC user a new password", Tags: []string{"machines"},
		Description: "A new password is drawn, set on the BMC with the current one, checked, and stored encrypted. A BMC failure answers 502 with the BMC's own message and keeps the current password.",
		Errors:      errs,
	}, s.rotateBMC)
	register(s, accessRead, huma.Operation{
		OperationID: "get-machine-power", Method: http.MethodGet, Path: Prefix + "/machines/{mac}/power",
		Summary: "A machine's power state", Tags: []string{"machines"},
		Description: "The state the poller last read (every machine with a BMC is read at a bounded rate); refresh asks the BMC now, at most once every few seconds per machine.",
		Errors:      errs,
	}, s.getPower)
	register(s, accessWrite, huma.Operation{
		OperationID: "set-machine-power", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/power",
		Summary: "Power a machine on or off, or cycle it, through its BMC", Tags: []string{"machines"},
		Description: "Audited. A BMC failure answers 502 with the BMC's own message (and is audited as power-failed).",
		Errors:      errs,
	}, s.setPower)
	register(s, accessWrite, huma.Operation{
		OperationID: "pxe-next-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/pxe-next",
		Summary: "Make a machine's next boot a network boot, through its BMC", Tags: []string{"machines"},
		Description: "Only the next boot: a one-time boot override. Power-cycle the machine to boot it now.",
		Errors:      errs,
	}, s.pxeNext)
}

// bmcView shows a machine's BMC, never its password. Its power is read
// through GET /api/v1/machines/{mac}/power.
func bmcView(m store.Machine) *BMCInfo {
	b := m.BMC
	if b == nil {
		return nil
	}
	v := &BMCInfo{Protocol: b.Protocol, Address: b.Address, Port: b.Port, MAC: b.MAC, Username: b.Username,
		Credential: len(b.Secret) > 0, Source: b.Source, UpdatedAt: b.UpdatedAt}
	if !b.RotatedAt.IsZero() {
		t := b.RotatedAt
		v.RotatedAt = &t
	}
	return v
}

func (s *Server) setBMC(ctx context.Context, in *bmcIn) (*machineOut, error) {
	mac, err := canonicalMAC(in.MAC)
	if err != nil {
		return nil, err
	}
	r := in.Body
	proto, err := bmc.ParseProtocol(r.Protocol)
	if err != nil {
		return nil, fieldErr("body.protocol", err.Error(), r.Protocol)
	}
	ep := bmc.Endpoint{Protocol: proto, Host: strings.TrimSpace(r.Address), Port: r.Port, Username: r.Username, Password: r.Password}
	if err := ep.Validate(); err != nil {
		return nil, fieldErr(bmcField(err), err.Error(), nil)
	}
	sealed, err := s.sealPassword(mac, r.Password)
	if err != nil {
		return nil, err
	}
	m, err := s.Store.UpdateMachine(mac, store.Audit{Actor: caller(ctx).Actor, Action: "bmc-set", Detail: ep.String() + " entered by hand"},
		func(m *store.Machine) error {
			m.BMC = &store.BMC{Protocol: string(proto), Address: ep.Host, Port: ep.Port, Username: ep.Username,
				Secret: sealed, Source: store.BMCByHand, UpdatedAt: s.now()}
			return nil
		})
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "path.mac")
	}
	s.bmcs.forget(mac)
	s.bmcs.goRefresh(s, mac)
	return &machineOut{Body: s.machineView(m, true)}, nil
}

// bmcField names the request field a bmc.Endpoint.Validate error is about.
func bmcField(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "address"):
		return "body.address"
	case strings.Contains(msg, "port"):
		return "body.port"
	case strings.Contains(msg, "user name"):
		return "body.username"
	case strings.Contains(msg, "password"):
		return "body.password"
	}
	return "body.protocol"
}

func (s *Server) deleteBMC(ctx context.Context, in *macPath) (*machineOut, error) {
	mac, err := canonicalMAC(in.MAC)
	if err != nil {
		return nil, err
	}
	m, err := s.Store.UpdateMachine(mac, store.Audit{Actor: caller(ctx).Actor, Action: "bmc-delete"}, func(m *store.Machine) error {
		if m.BMC == nil {
			return errNoBMC
		}
		m.BMC = nil
		return nil
	})
	if errors.Is(err, errNoBMC) {
		return nil, huma.Error404NotFound("machine " + mac + " has no BMC")
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "path.mac")
	}
	s.bmcs.forget(mac)
	return &machineOut{Body: s.machineView(m, true)}, nil
}

var errNoBMC = errors.New("no BMC")

func (s *Server) rotateBMC(ctx context.Context, in *macPath) (*machineOut, error) {
	m, ep, err := s.endpoint(in.MAC)
	if err != nil {
		return nil, err
	}
	next, err := bmc.GeneratePassword()
	if err != nil {
		return nil, err
	}
	sealed, err := s.sealPassword(m.MAC, next)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Actor
	release, err := s.bmcs.lock(ctx, m.MAC)
	if err != nil {
		return nil, err
	}
	callErr := s.bmcDriver().SetPassword(ctx, ep, next)
	if callErr != nil {
		// The BMC may have taken the new password and failed only the
		// check (or the answer was lost): keep whichever one works.
		probe := ep
		probe.Password = next
		if _, err := s.bmcDriver().PowerState(ctx, probe); err != nil {
			release()
			return nil, s.bmcFailed(m.MAC, actor, "rotate", callErr)
		}
	}
	release()
	out, err := s.Store.UpdateMachine(m.MAC, store.Audit{Actor: actor, Action: "bmc-rotate", Detail: "new password for " + ep.String()},
		func(cur *store.Machine) error {
			if cur.BMC == nil || cur.BMC.Username != ep.Username || cur.BMC.Address != ep.Host {
				return errChanged
			}
			cur.BMC.Secret, cur.BMC.RotatedAt = sealed, s.now()
			return nil
		})
	if errors.Is(err, errChanged) {
		return nil, huma.Error409Conflict("machine " + m.MAC + "'s BMC changed during the rotation; the BMC user " + ep.Username + " now has a password the appliance did not keep: enter it again")
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+m.MAC, "path.mac")
	}
	return &machineOut{Body: s.machineView(out, true)}, nil
}

func (s *Server) getPower(ctx context.Context, in *powerGetIn) (*powerOut, error) {
	m, ep, err := s.endpoint(in.MAC)
	if err != nil {
		return nil, err
	}
	if in.Refresh && s.bmcs.stale(m.MAC, s.now(), minRefresh) {
		s.bmcs.refresh(ctx, s, m.MAC, ep)
	}
	p, _ := s.bmcs.get(m.MAC)
	return &powerOut{Body: p}, nil
}

// minRefresh is how often a refresh may ask one BMC.
const minRefresh = 5 * time.Second

func (s *Server) setPower(ctx context.Context, in *powerIn) (*powerOut, error) {
	a, err := bmc.ParseAction(in.Body.Action)
	if err != nil {
		return nil, fieldErr("body.action", err.Error(), in.Body.Action)
	}
	m, ep, err := s.endpoint(in.MAC)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Actor
	release, err := s.bmcs.lock(ctx, m.MAC)
	if err != nil {
		return nil, err
	}
	err = s.bmcDriver().Power(ctx, ep, a)
	release()
	if err != nil {
		return nil, s.bmcFailed(m.MAC, actor, "power "+string(a), err)
	}
	st := bmc.PowerOn
	if a == bmc.ActionOff {
		st = bmc.PowerOff
	}
	s.bmcs.set(m.MAC, st, s.now())
	s.auditBMC(m.MAC, store.Audit{Actor: actor, Action: "power-" + string(a), Detail: ep.String()})
	p, _ := s.bmcs.get(m.MAC)
	return &powerOut{Body: p}, nil
}

func (s *Server) pxeNext(ctx context.Context, in *macPath) (*powerOut, error) {
	m, ep, err := s.endpoint(in.MAC)
	if err != nil {
		return nil, err
	}
	actor := caller(ctx).Actor
	release, err := s.bmcs.lock(ctx, m.MAC)
	if err != nil {
		return nil, err
	}
	err = s.bmcDriver().BootPXE(ctx, ep)
	release()
	if err != nil {
		return nil, s.bmcFailed(m.MAC, actor, "pxe-next", err)
	}
	s.auditBMC(m.MAC, store.Audit{Actor: actor, Action: "pxe-next", Detail: "next boot from the network, " + ep.String()})
	p, _ := s.bmcs.get(m.MAC)
	return &powerOut{Body: p}, nil
}

// endpoint is the machine and its BMC with the password unsealed.
func (s *Server) endpoint(raw string) (store.Machine, bmc.Endpoint, error) {
	m, err := s.getMachine(raw)
	if err != nil {
		return m, bmc.Endpoint{}, err
	}
	ep, err := s.unseal(m)
	if errors.Is(err, errNoBMC) {
		return m, ep, huma.Error409Conflict("machine " + m.MAC + " has no BMC credential: enter its BMC (PUT /api/v1/machines/{mac}/bmc) or approve it with a BMC user")
	}
	return m, ep, err
}

func (s *Server) unseal(m store.Machine) (bmc.Endpoint, error) {
	b := m.BMC
	if b == nil || len(b.Secret) == 0 {
		return bmc.Endpoint{}, errNoBMC
	}
	if b.Address == "" {
		return bmc.Endpoint{}, huma.Error409Conflict("the BMC of " + m.MAC + " reported no LAN address: enter its address by hand (PUT /api/v1/machines/{mac}/bmc)")
	}
	if s.Secrets == nil {
		return bmc.Endpoint{}, huma.Error503ServiceUnavailable("the appliance has no key for BMC credentials (Server.Secrets)")
	}
	pw, err := s.Secrets.Open(b.Secret, m.MAC)
	if err != nil {
		s.log.Error("unseal bmc credential", "mac", m.MAC, "err", err)
		return bmc.Endpoint{}, huma.Error409Conflict("machine " + m.MAC + "'s BMC credential does not open with this appliance's key (data_dir/bmc.key replaced?): enter it again")
	}
	return bmc.Endpoint{Protocol: bmc.Protocol(b.Protocol), Host: b.Address, Port: b.Port, Username: b.Username, Password: string(pw)}, nil
}

func (s *Server) sealPassword(mac, pw string) ([]byte, error) {
	if s.Secrets == nil {
		return nil, huma.Error503ServiceUnavailable("the appliance has no key for BMC credentials (Server.Secrets)")
	}
	return s.Secrets.Seal([]byte(pw), mac)
}

func (s *Server) bmcDriver() BMCDriver {
	if s.BMC != nil {
		return s.BMC
	}
	return s.bmcs.client
}

// bmcFailed audits a failed BMC call and answers 502 with the BMC's own
// message; the failure is also shown with the machine's power.
func (s *Server) bmcFailed(mac, actor, op string, err error) error {
	msg := err.Error()
	var be *bmc.Error
	if errors.As(err, &be) {
		msg = be.Msg
	}
	s.bmcs.fail(mac, msg, s.now())
	s.auditBMC(mac, store.Audit{Actor: actor, Action: "bmc-failed", Detail: op + ": " + msg})
	s.log.Warn("bmc call failed", "mac", mac, "op", op, "err", err)
	return huma.NewError(http.StatusBadGateway, fmt.Sprintf("the BMC of %s refused %s: %s", mac, op, msg))
}

func (s *Server) auditBMC(mac string, a store.Audit) {
	if len(a.Detail) > 1000 {
		a.Detail = a.Detail[:1000]
	}
	if err := s.Store.AppendAudit(mac, a); err != nil {
		s.log.Error("audit", "mac", mac, "action", a.Action, "err", err)
	}
}
