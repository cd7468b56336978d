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
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// MachineList is one page of machines.
type MachineList struct {
	Items      []Machine      `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty" doc:"Pass as cursor to get the next page; absent on the last page"`
	Total      int            `json:"total" doc:"Machines matching the filters (all pages)"`
	Counts     map[string]int `json:"counts" doc:"Machines per state under every filter except state: what choosing that state would show (with no filter, over all machines)"`
	Conflicts  int            `json:"conflicts" doc:"Machines with a MAC conflict (mac_conflict), over all machines"`
}

type macPath struct {
	MAC string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC (any common notation; answered in canonical form)"`
}

type machineOut struct {
	Body Machine
}

type listMachinesIn struct {
	State    []string `query:"state" example:"inventoried" doc:"Only these states (comma-separated)"`
	Cluster  string   `query:"cluster" example:"rack1"`
	Segment  string   `query:"segment" example:"lab"`
	Q        string   `query:"q" maxLength:"200" example:"QEMU" doc:"Text search: every word, in any case, in the MAC, hostname, IP, cluster, profile, segment, vendor, model, serial, CPU model or a registration's address; a MAC may be written with dashes, dots or no separators"`
	Conflict bool     `query:"conflict" doc:"Only machines with a MAC conflict (mac_conflict)"`
	Sort     string   `query:"sort" default:"mac" enum:"mac,-mac,hostname,-hostname,state,-state,first_seen,-first_seen,last_seen,-last_seen" doc:"Sort key; a leading '-' sorts descending"`
	Limit    int      `query:"limit" default:"100" minimum:"1" maximum:"1000"`
	Cursor   string   `query:"cursor" maxLength:"1024" doc:"next_cursor of the previous page (of the same sort order)"`
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
		return &machineOut{Body: s.machineView(m, true)}, nil
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
			m.ProgressDetail = nil
			m.Installed, m.FirstBootSecret, m.FirstBoot, m.ReadyAt = false, "", nil, time.Time{}
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
			m.ProgressDetail = nil
			m.Installed = false
			return nil
		})
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "end-registration", Method: http.MethodDelete, Path: Prefix + "/machines/{mac}/registrations/{id}",
		Summary: "End one registration (boot session) of a machine", Tags: []string{"machines"},
		Description: "Ends a registration that is not the machine's own: a spoofer's, or an earlier boot's left behind. Its agent can make no further call. " +
			"Ending the registration approval bound leaves the machine without an agent that may install it: rediscover it then.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.endRegistration)
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
// state the machine is in. The steps in then follow in the same commit,
// each audited as itself.
func (s *Server) transition(ctx context.Context, raw string, action lifecycle.Action, detail string, fn func(*store.Machine) error, then ...store.Step) (*machineOut, error) {
	mac, err := canonicalMAC(raw)
	if err != nil {
		return nil, err
	}
	var from store.State
	first := store.Step{Audit: store.Audit{Actor: caller(ctx).Actor, Action: string(action), Detail: detail},
		Apply: func(m *store.Machine, ss *store.Sessions) error {
			from = m.State
			to, err := lifecycle.Next(action, lifecycle.RoleAdmin, m.State)
			if err != nil {
				return fmt.Errorf("%w: %w", store.ErrTransition, err)
			}
			m.State = to
			if err := fn(m); err != nil {
				return err
			}
			// The boot sessions end with the change that leaves their
			// agents nothing to ask, in the same transaction: a long poll
			// woken by the change finds its session gone.
			if lifecycle.EndsSession(action) {
				m.Session = ""
				return ss.EndAll()
			}
			return nil
		}}
	m, err := s.Store.UpdateMachineSteps(mac, append([]store.Step{first}, then...)...)
	if errors.Is(err, errChanged) {
		return nil, huma.Error409Conflict(fmt.Sprintf("machine %s changed while it was being updated; review it and try again", mac))
	}
	if err != nil {
		se := s.storeErr(err, "machine "+mac, "path.mac")
		if se != nil && isStatus(se, http.StatusConflict) {
			return nil, huma.Error409Conflict(fmt.Sprintf("cannot %s machine %s: it is %s", action, mac, from))
		}
		return nil, se
	}
	s.afterTransition(ctx, action, m)
	return &machineOut{Body: s.machineView(m, true)}, nil
}

func isStatus(err error, code int) bool {
	se, ok := err.(huma.StatusError)
	return ok && se.GetStatus() == code
}

type registrationPath struct {
	MAC string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	ID  string `path:"id" maxLength:"64" example:"q3Zq0Jm7S0nM2s8yYl8yQ0b9vHq6S3hC1xJr2mR9f3E" doc:"Registration ID (registrations[].id)"`
}

func (s *Server) endRegistration(ctx context.Context, in *registrationPath) (*machineOut, error) {
	mac, err := canonicalMAC(in.MAC)
	if err != nil {
		return nil, err
	}
	m, err := s.Store.UpdateMachineSessions(mac, store.Audit{Actor: caller(ctx).Actor, Action: "end-registration", Detail: "registration " + names.Ref(in.ID)},
		func(m *store.Machine, ss *store.Sessions) error {
			if _, err := ss.Get(in.ID); err != nil {
				return errNoRegistration
			}
			if err := ss.End(in.ID); err != nil {
				return err
			}
			if m.State.Accepted() || m.State == store.StateRejected {
				return nil // the inventory was frozen at approval
			}
			// Until approval the machine shows the newest registration's
			// inventory: an ended registration's report must not stay.
			left, err := ss.List()
			if err != nil || len(left) == 0 {
				return err
			}
			inv, err := ss.Inventory(left[len(left)-1].ID)
			if err != nil {
				return err
			}
			m.Inventory = inv
			return nil
		})
	if errors.Is(err, errNoRegistration) {
		return nil, huma.Error404NotFound("machine "+mac+" has no live registration "+names.Ref(in.ID),
			&huma.ErrorDetail{Location: "path.id", Message: "no such registration", Value: in.ID})
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "path.mac")
	}
	return &machineOut{Body: s.machineView(m, true)}, nil
}

var errNoRegistration = errors.New("no such registration")
