package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/foundry-appliance/foundry/store"
)

// listCursor is the position after the last item of a page: its sort key
// (store.SortKey) and MAC. Keyset paging stays correct when machines
// appear or vanish between pages.
type listCursor struct {
	Sort string `json:"s"`
	Key  string `json:"k"`
	MAC  string `json:"m"`
}

func (c listCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (listCursor, error) {
	var c listCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil && c.MAC == "" {
		err = errors.New("cursor without a MAC")
	}
	if err != nil {
		return c, fieldErr("query.cursor", "not a cursor returned by this API", s)
	}
	return c, nil
}

// listMachines answers a page from the store's indexes: only the page's
// machines and their sessions are read, never an inventory.
func (s *Server) listMachines(_ context.Context, in *listMachinesIn) (*struct{ Body MachineList }, error) {
	q := store.MachineQuery{Cluster: in.Cluster, Segment: in.Segment, Text: strings.TrimSpace(in.Q),
		Conflict: in.Conflict, Active: activeWithin, Limit: in.Limit}
	seen := map[store.State]bool{}
	for _, raw := range in.State {
		for _, name := range strings.Split(raw, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			st, err := store.ParseState(name)
			if err != nil {
				return nil, fieldErr("query.state", "unknown state; want one of "+stateList(), name)
			}
			if !seen[st] {
				seen[st] = true
				q.States = append(q.States, st)
			}
		}
	}
	field, desc := strings.CutPrefix(in.Sort, "-")
	if field == "" {
		field = store.SortMAC
	}
	q.Sort, q.Desc = field, desc
	if in.Cursor != "" {
		c, err := decodeCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		if c.Sort != in.Sort {
			return nil, fieldErr("query.cursor", "cursor belongs to another sort order ("+c.Sort+")", in.Cursor)
		}
		q.After = &store.PageKey{Key: c.Key, MAC: c.MAC}
	}
	page, err := s.Store.ListMachinePage(q)
	if err != nil {
		return nil, s.storeErr(err, "machines", "query")
	}
	now := s.now()
	out := MachineList{Items: make([]Machine, 0, len(page.Machines)), Total: page.Total, Counts: map[string]int{}, Conflicts: page.Conflicts}
	for _, st := range store.States() {
		out.Counts[st.String()] = page.Counts[st]
	}
	for _, m := range page.Machines {
		out.Items = append(out.Items, machineView(m, page.Sessions[m.MAC], nil, now, false))
	}
	if page.Next != nil {
		out.NextCursor = listCursor{Sort: in.Sort, Key: page.Next.Key, MAC: page.Next.MAC}.encode()
	}
	return &struct{ Body MachineList }{Body: out}, nil
}

func stateList() string {
	var names []string
	for _, st := range store.States() {
		names = append(names, st.String())
	}
	return strings.Join(names, ", ")
}
