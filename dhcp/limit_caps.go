package dhcp

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// recheckEvery is the least time between two checks, at the cap, of the
// temporary records a segment counts: approval or deletion of a
// discovered machine frees its place within this time.
const recheckEvery = time.Minute

// discovered counts the temporary records DHCP made on one segment, so
// that their number stays at most max (Segment.MaxDiscovered). Only the
// DHCP server makes temporary records; they leave by expiry (ExpiresAt,
// known here), by approval or by deletion (not seen here: at the cap each
// counted record is looked up again, at most every recheckEvery).
type discovered struct {
	max int

	mu      sync.Mutex
	macs    map[string]time.Time // MAC → ExpiresAt; a zero time is a reservation
	checked time.Time
}

func newDiscovered(max int) *discovered {
	return &discovered{max: max, macs: map[string]time.Time{}}
}

// reserve takes a place for mac's record, which the caller then creates
// (keep) or not (release). It reports false at the cap. get looks a
// counted record up when the cap asks for a recheck.
func (d *discovered) reserve(mac, seg string, now time.Time, get func(string) (store.Machine, error)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.macs[mac]; ok {
		return true // a concurrent packet of the same MAC holds it
	}
	if len(d.macs) >= d.max {
		d.prune(seg, now, get)
	}
	if len(d.macs) >= d.max {
		return false
	}
	d.macs[mac] = time.Time{}
	return true
}

// prune drops counted records that have expired, and, at most every
// recheckEvery, those the store no longer has as temporary records of seg.
// Reservations stay. The caller holds d.mu.
func (d *discovered) prune(seg string, now time.Time, get func(string) (store.Machine, error)) {
	recheck := get != nil && (now.Sub(d.checked) >= recheckEvery || now.Before(d.checked))
	if recheck {
		d.checked = now
	}
	for mac, exp := range d.macs {
		switch {
		case exp.IsZero():
		case !now.Before(exp):
			delete(d.macs, mac)
		case recheck:
			m, err := get(mac)
			if errors.Is(err, store.ErrNotFound) || (err == nil && (!m.Temporary || m.Segment != seg)) {
				delete(d.macs, mac)
			}
		}
	}
}

// keep turns mac's reservation into a counted record that expires at exp.
func (d *discovered) keep(mac string, exp time.Time) {
	d.mu.Lock()
	d.macs[mac] = exp
	d.mu.Unlock()
}

// release gives a reservation back.
func (d *discovered) release(mac string) {
	d.mu.Lock()
	if exp, ok := d.macs[mac]; ok && exp.IsZero() {
		delete(d.macs, mac)
	}
	d.mu.Unlock()
}

// count is how many records (and reservations) are counted.
func (d *discovered) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.macs)
}

// auditLister is the store's audit log, which *store.DB has: at start the
// segments' counts are seeded from the discoveries of the last TTL.
type auditLister interface {
	ListAudit(store.AuditFilter) ([]store.AuditEntry, error)
}

// seedDiscovered counts the temporary records that exist at start on each
// segment of byName: the MACs the log shows DHCP discovered within ttl,
// each looked up (the record may have been approved, deleted or expired
// since). Without an audit log the counts start at zero.
func seedDiscovered(ms MachineStore, byName map[string]*segState, now time.Time, ttl time.Duration) error {
	al, ok := ms.(auditLister)
	if !ok {
		return nil
	}
	f := store.AuditFilter{Actor: "dhcp", Action: "discover", Since: now.Add(-ttl), Limit: 1000}
	seen := map[string]bool{}
	for {
		es, err := al.ListAudit(f)
		if err != nil {
			return fmt.Errorf("count discovered machines: %w", err)
		}
		for _, e := range es {
			if e.MAC == "" || seen[e.MAC] {
				continue
			}
			seen[e.MAC] = true
			m, err := ms.GetMachine(e.MAC)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("count discovered machines: %w", err)
			}
			if st := byName[m.Segment]; st != nil && m.Temporary && m.ExpiresAt.After(now) {
				st.found.keep(m.MAC, m.ExpiresAt)
			}
		}
		if len(es) < f.Limit {
			return nil
		}
		f.After = es[len(es)-1].ID
	}
}
