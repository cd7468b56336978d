package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// AuditList is one page of the audit log, newest first.
type AuditList struct {
	Items      []AuditEntry `json:"items"`
	NextCursor string       `json:"next_cursor,omitempty" doc:"Pass as cursor for older entries; absent on the last page"`
}

type auditIn struct {
	MAC    string    `query:"mac" example:"52:54:00:12:34:56" doc:"Only this machine"`
	Actor  string    `query:"actor" maxLength:"128" example:"token:admin"`
	Action string    `query:"action" maxLength:"128" example:"approve"`
	Since  time.Time `query:"since" doc:"Entries at or after this time (RFC 3339)"`
	Until  time.Time `query:"until" doc:"Entries before this time (RFC 3339)"`
	Cursor string    `query:"cursor" maxLength:"64" doc:"next_cursor of the previous page"`
	Limit  int       `query:"limit" default:"100" minimum:"1" maximum:"1000"`
}

type segmentLeasesIn struct {
	Name string `path:"name" maxLength:"64" example:"lab"`
}

func (s *Server) registerAudit() {
	register(s, accessRead, huma.Operation{
		OperationID: "list-audit", Method: http.MethodGet, Path: Prefix + "/audit",
		Summary: "List audit entries", Tags: []string{"audit"},
		Description: "Newest first; filter by machine, actor, action and time range.",
		Errors:      []int{http.StatusUnprocessableEntity},
	}, func(_ context.Context, in *auditIn) (*struct{ Body AuditList }, error) {
		f := store.AuditFilter{Actor: in.Actor, Action: in.Action, Since: in.Since, Until: in.Until, After: in.Cursor, Limit: in.Limit}
		if in.MAC != "" {
			mac, err := canonicalMAC(in.MAC)
			if err != nil {
				return nil, fieldErr("query.mac", "not a MAC address", in.MAC)
			}
			f.MAC = mac
		}
		entries, err := s.Store.ListAudit(f)
		if err != nil {
			return nil, s.storeErr(err, "audit log", "query.cursor")
		}
		out := AuditList{Items: make([]AuditEntry, 0, len(entries))}
		for _, e := range entries {
			out.Items = append(out.Items, AuditEntry{ID: e.ID, Time: e.Time, MAC: e.MAC, Actor: e.Actor, Action: e.Action, Detail: e.Detail})
		}
		if len(entries) == in.Limit && len(entries) > 0 {
			out.NextCursor = entries[len(entries)-1].ID
		}
		return &struct{ Body AuditList }{Body: out}, nil
	})
}

func (s *Server) registerSegments() {
	register(s, accessRead, huma.Operation{
		OperationID: "list-segments", Method: http.MethodGet, Path: Prefix + "/segments",
		Summary: "List the configured segments", Tags: []string{"segments"},
	}, func(context.Context, *struct{}) (*struct{ Body []Segment }, error) {
		return &struct{ Body []Segment }{Body: views(s.Segments, segmentView)}, nil
	})
	register(s, accessRead, huma.Operation{
		OperationID: "list-segment-leases", Method: http.MethodGet, Path: Prefix + "/segments/{name}/leases",
		Summary: "List a segment's DHCP leases", Tags: []string{"segments"}, Errors: []int{http.StatusNotFound},
	}, func(_ context.Context, in *segmentLeasesIn) (*struct{ Body []Lease }, error) {
		known := false
		for _, seg := range s.Segments {
			known = known || seg.Name == in.Name
		}
		if !known {
			return nil, huma.Error404NotFound("segment " + in.Name + " is not configured")
		}
		ls, err := s.Store.ListLeases(in.Name)
		if err != nil {
			return nil, s.storeErr(err, "leases", "path.name")
		}
		out := make([]Lease, 0, len(ls))
		for _, l := range ls {
			out = append(out, Lease{Segment: l.Segment, MAC: l.MAC, IP: l.IP.String(), Hostname: l.Hostname, Expires: l.Expires, Declined: l.Declined})
		}
		return &struct{ Body []Lease }{Body: out}, nil
	})
}
