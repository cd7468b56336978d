package store

import (
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Sighting is what the DHCP server saw of a known machine: where it is and
// what firmware asked. Empty fields are left as they are.
type Sighting struct {
	Segment string
	IP      string
	Arch    string
	Client  string
	At      time.Time
}

// SightingRefresh is how stale LastSeen may get before an unchanged
// sighting is written again: a booting machine sends several packets a
// second, and each synced write costs a disk flush.
const SightingRefresh = time.Minute

// Sighted returns m with the facts of s applied, and whether that needs a
// write: a fact changed, or LastSeen is SightingRefresh stale. Callers that
// already hold the record (the DHCP handler, per packet) ask it first and
// skip the store when nothing is due.
func (m Machine) Sighted(s Sighting) (Machine, bool) {
	next := m
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&next.Segment, s.Segment)
	set(&next.IP, s.IP)
	set(&next.Arch, s.Arch)
	set(&next.Client, s.Client)
	changed := next.Segment != m.Segment || next.IP != m.IP || next.Arch != m.Arch || next.Client != m.Client
	if !changed && s.At.Sub(m.LastSeen) < SightingRefresh {
		return m, false
	}
	if s.At.After(next.LastSeen) {
		next.LastSeen = s.At
	}
	return next, true
}

// RecordSighting stores s on the machine's record when it changes a fact,
// or when LastSeen is older than SightingRefresh. It is not audited (it
// changes no decision) but publishes an update event, so the dashboard
// shows the address as soon as it is leased. wrote reports a write;
// ErrNotFound for an unknown MAC.
func (db *DB) RecordSighting(mac string, s Sighting) (wrote bool, err error) {
	fail := func(err error) (bool, error) {
		return false, fmt.Errorf("record sighting of %s: %w", ref(mac), err)
	}
	if err := checkMAC(mac); err != nil {
		return fail(err)
	}
	if s.Segment != "" {
		if err := checkSegment(s.Segment); err != nil {
			return fail(err)
		}
	}
	for _, f := range []struct{ name, v string }{{"ip", s.IP}, {"arch", s.Arch}, {"client", s.Client}} {
		if len(f.v) > maxName || !printable(f.v) {
			return fail(fmt.Errorf("%w: %s %s", ErrInvalid, f.name, label(f.v)))
		}
	}
	if s.At.IsZero() {
		s.At = db.now()
	}
	defer db.lockMAC(mac)()
	var out Machine
	err = db.update(func(txn kv.Txn) error {
		m, err := getMachine(txn, mac)
		if err != nil {
			return err
		}
		next, ok := m.Sighted(s)
		if !ok {
			return nil
		}
		next.Revision = m.Revision + 1
		out, wrote = next, true
		return putMachine(txn, next)
	})
	if err != nil {
		return fail(err)
	}
	if wrote {
		db.publish(EventUpdated, out)
	}
	return wrote, nil
}
