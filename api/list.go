package api

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/foundry-appliance/foundry/store"
)

// listCursor is the position after the last item of a page: its sort key
// and MAC. Keyset paging stays correct when machines appear or vanish
// between pages.
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
	if err != nil {
		return c, fieldErr("query.cursor", "not a cursor returned by this API", s)
	}
	return c, nil
}

// sortKey is a string that orders machines by field; times and states are
// rendered fixed-width so that string order is their order.
func sortKey(m store.Machine, field string) string {
	switch field {
	case "hostname":
		return strings.ToLower(m.Hostname)
	case "state":
		return fmt.Sprintf("%02d", int(m.State))
	case "first_seen":
		return m.FirstSeen.UTC().Format("2006-01-02T15:04:05.000000000")
	case "last_seen":
		return m.LastSeen.UTC().Format("2006-01-02T15:04:05.000000000")
	}
	return m.MAC
}

type keyed struct {
	key string
	m   store.Machine
	v   Machine
}

func (s *Server) listMachines(_ context.Context, in *listMachinesIn) (*struct{ Body MachineList }, error) {
	states := map[store.State]bool{}
	for _, raw := range in.State {
		for _, name := range strings.Split(raw, ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			st, err := store.ParseState(name)
			if err != nil {
				return nil, fieldErr("query.state", "unknown state; want one of "+stateList(), name)
			}
			states[st] = true
		}
	}
	sortField, desc := strings.CutPrefix(in.Sort, "-")
	if sortField == "" {
		sortField = "mac"
	}
	var after *listCursor
	if in.Cursor != "" {
		c, err := decodeCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		if c.Sort != in.Sort {
			return nil, fieldErr("query.cursor", "cursor belongs to another sort order ("+c.Sort+")", in.Cursor)
		}
		after = &c
	}
	all, err := s.Store.ListMachines()
	if err != nil {
		return nil, s.storeErr(err, "machines", "")
	}
	now := s.now()
	sessions := map[string][]store.Session{}
	if all, err := s.Store.ListSessions(); err != nil {
		s.log.Error("list sessions", "err", err)
	} else {
		for _, se := range all {
			sessions[se.MAC] = append(sessions[se.MAC], se)
		}
	}
	out := MachineList{Items: []Machine{}, Counts: map[string]int{}}
	for _, st := range store.States() {
		out.Counts[st.String()] = 0
	}
	q := strings.ToLower(strings.TrimSpace(in.Q))
	var hits []keyed
	for _, m := range all {
		out.Counts[m.State.String()]++
		if len(states) > 0 && !states[m.State] ||
			in.Cluster != "" && m.Cluster != in.Cluster ||
			in.Segment != "" && m.Segment != in.Segment {
			continue
		}
		v := machineView(m, sessions[m.MAC], nil, now, false)
		if q != "" && !matches(v, q) {
			continue
		}
		hits = append(hits, keyed{key: sortKey(m, sortField), m: m, v: v})
	}
	cmpKeyed := func(a, b keyed) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.m.MAC, b.m.MAC))
	}
	slices.SortFunc(hits, func(a, b keyed) int {
		if desc {
			return cmpKeyed(b, a)
		}
		return cmpKeyed(a, b)
	})
	out.Total = len(hits)
	start := 0
	if after != nil {
		pos := keyed{key: after.Key, m: store.Machine{MAC: after.MAC}}
		start = len(hits)
		for i, h := range hits {
			c := cmpKeyed(h, pos)
			if desc && c < 0 || !desc && c > 0 {
				start = i
				break
			}
		}
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 100
	}
	end := min(start+limit, len(hits))
	for _, h := range hits[start:end] {
		out.Items = append(out.Items, h.v)
	}
	if end < len(hits) {
		last := hits[end-1]
		out.NextCursor = listCursor{Sort: in.Sort, Key: last.key, MAC: last.m.MAC}.encode()
	}
	return &struct{ Body MachineList }{Body: out}, nil
}

func matches(v Machine, q string) bool {
	for _, f := range []string{v.MAC, v.Hostname, v.IP, v.Cluster, v.Profile, v.Segment,
		v.Summary.Vendor, v.Summary.Model, v.Summary.Serial} {
		if strings.Contains(strings.ToLower(f), q) {
			return true
		}
	}
	return false
}

func stateList() string {
	var names []string
	for _, st := range store.States() {
		names = append(names, st.String())
	}
	return strings.Join(names, ", ")
}
