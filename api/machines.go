package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// MachineList is one page of machines.
type MachineList struct {
	Items      []Machine      `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
	Total      int            `json:"total" doc:"Machines matching the filters (all pages)"`
	Counts     map[string]int `json:"counts" doc:"Machines per state, over all machines"`
}

type macPath struct {
	MAC string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC (any common notation; answered in canonical form)"`
}

type machineOut struct {
	Body Machine
}

type listMachinesIn struct {
	State   []string `query:"state" example:"inventoried" doc:"Only these states (comma-separated)"`
	Cluster string   `query:"cluster" example:"rack1"`
	Segment string   `query:"segment" example:"lab"`
	Q       string   `query:"q" maxLength:"200" example:"QEMU" doc:"Text search in MAC, hostname, IP, cluster, profile, vendor, model and serial"`
	Sort    string   `query:"sort" default:"mac" enum:"mac,-mac,hostname,-hostname,state,-state,first_seen,-first_seen,last_seen,-last_seen" doc:"Sort key; a leading '-' sorts descending"`
	Limit   int      `query:"limit" default:"100" minimum:"1" maximum:"1000"`
	Cursor  string   `query:"cursor" maxLength:"1024" doc:"next_cursor of the previous page"`
}

type reasonIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body struct {
		Reason string `json:"reason" minLength:"1" maxLength:"1000" example:"unknown hardware on the rack network"`
	}
}

// canonicalMAC parses any common MAC notation into the store's key form.
func canonicalMAC(s string) (string, error) {
	mac, err := names.ParseMAC(strings.TrimSpace(s))
	if err != nil {
		return "", fieldErr("path.mac", "not a MAC address like 52:54:00:12:34:56", s)
	}
	return mac, nil
}

func (s *Server) getMachine(raw string) (store.Machine, error) {
	mac, err := canonicalMAC(raw)
	if err != nil {
		return store.Machine{}, err
	}
	m, err := s.Store.GetMachine(mac)
	if err != nil {
		return store.Machine{}, s.storeErr(err, "machine "+mac, "path.mac")
	}
	return m, nil
}

func (s *Server) registerMachines() {
	register(s, accessRead, huma.Operation{
		OperationID: "list-machines", Method: http.MethodGet, Path: Prefix + "/machines",
		Summary: "List machines", Tags: []string{"machines"},
		Description: "Filter by state, cluster, segment and text; sort; page with the cursor.",
		Errors:      []int{http.StatusUnprocessableEntity},
	}, s.listMachines)
	register(s, accessRead, huma.Operation{
		OperationID: "get-machine", Method: http.MethodGet, Path: Prefix + "/machines/{mac}",
		Summary: "Get a machine with its full inventory", Tags: []string{"machines"},
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(_ context.Context, in *macPath) (*machineOut, error) {
		m, err := s.getMachine(in.MAC)
		if err != nil {
			return nil, err
		}
		return &machineOut{Body: machineView(m, s.now(), true)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "reject-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/reject",
		Summary: "Reject an inventoried machine", Tags: []string{"machines"},
		Description: "The machine gets no boot offer from now on; the record becomes permanent (no expiry) and stays as a deny entry until deleted.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *reasonIn) (*machineOut, error) {
		return s.transition(ctx, in.MAC, lifecycle.ActReject, in.Body.Reason, func(m *store.Machine) error {
			// A rejected machine is a deny entry (docs/spec.md §1): it must outlive
			// the discovery TTL, or it would be discovered afresh.
			m.Message = in.Body.Reason
			m.Temporary, m.ExpiresAt = false, time.Time{}
			return nil
		})
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "rediscover-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/rediscover",
		Summary: "Send a machine back to discovery", Tags: []string{"machines"},
		Description: "On its next boot the machine gets the discovery OS again and must be approved again (cluster, profile and previous approval are kept as a reference).",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *macPath) (*machineOut, error) {
		return s.transition(ctx, in.MAC, lifecycle.ActRediscover, "", func(m *store.Machine) error {
			m.Progress, m.Message = 0, "rediscover requested"
			return nil
		})
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "retry-machine", Method: http.MethodPost, Path: Prefix + "/machines/{mac}/retry",
		Summary: "Retry a failed provisioning", Tags: []string{"machines"},
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *macPath) (*machineOut, error) {
		return s.transition(ctx, in.MAC, lifecycle.ActRetry, "", func(m *store.Machine) error {
			m.Progress, m.Message = 0, "retry requested"
			return nil
		})
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "delete-machine", Method: http.MethodDelete, Path: Prefix + "/machines/{mac}",
		Summary: "Delete a machine record", Tags: []string{"machines"}, DefaultStatus: http.StatusNoContent,
		Description: "The audit history stays. An unknown MAC that boots again is discovered anew.",
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *macPath) (*struct{}, error) {
		mac, err := canonicalMAC(in.MAC)
		if err != nil {
			return nil, err
		}
		err = s.Store.DeleteMachine(mac, store.Audit{Actor: caller(ctx).Actor, Action: "delete"})
		return nil, s.storeErr(err, "machine "+mac, "path.mac")
	})
}

// transition applies an administrator's action: lifecycle.Next says
// whether the machine's state allows it and where it leads, then fn sets
// the action's other fields. A forbidden action is a 409 that says which
// state the machine is in.
func (s *Server) transition(ctx context.Context, raw string, action lifecycle.Action, detail string, fn func(*store.Machine) error) (*machineOut, error) {
	mac, err := canonicalMAC(raw)
	if err != nil {
		return nil, err
	}
	var from store.State
	m, err := s.Store.UpdateMachine(mac, store.Audit{Actor: caller(ctx).Actor, Action: string(action), Detail: detail},
		func(m *store.Machine) error {
			from = m.State
			to, err := lifecycle.Next(action, lifecycle.RoleAdmin, m.State)
			if err != nil {
				return fmt.Errorf("%w: %w", store.ErrTransition, err)
			}
			m.State = to
			return fn(m)
		})
	if err != nil {
		se := s.storeErr(err, "machine "+mac, "path.mac")
		if se != nil && isStatus(se, http.StatusConflict) {
			return nil, huma.Error409Conflict(fmt.Sprintf("cannot %s machine %s: it is %s", action, mac, from))
		}
		return nil, se
	}
	if lifecycle.EndsSession(action) {
		s.endSession(mac, string(action))
	}
	return &machineOut{Body: machineView(m, s.now(), true)}, nil
}

// endSession ends the machine's boot session after a change that leaves
// its agent nothing to ask. It runs after the change is written: a failure
// here leaves a session that the nonce's expiry ends, and is logged.
func (s *Server) endSession(mac, why string) {
	if err := s.Store.EndBootSession(mac); err != nil {
		s.log.Error("end boot session", "mac", mac, "after", why, "err", err)
	}
}

func isStatus(err error, code int) bool {
	se, ok := err.(huma.StatusError)
	return ok && se.GetStatus() == code
}
