package store

import (
	"github.com/foundry-appliance/foundry/lifecycle"

	"encoding/json"
	"errors"
	"fmt"

	"github.com/foundry-appliance/foundry/store/kv"
)

func machineKey(mac string) []byte { return []byte("m/" + mac) }

// getRecord reads a machine's record: everything but the inventory.
func getRecord(txn kv.Txn, mac string) (Machine, error) {
	var m Machine
	if err := getJSON(txn, machineKey(mac), &m); err != nil {
		return Machine{}, err
	}
	return m, nil
}

// getMachine reads a machine with its inventory.
func getMachine(txn kv.Txn, mac string) (Machine, error) {
	m, err := getRecord(txn, mac)
	if err != nil || m.Summary.Sum == 0 || len(m.Inventory) > 0 {
		return m, err
	}
	v, err := getRaw(txn, inventoryKey(mac))
	if errors.Is(err, ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return Machine{}, fmt.Errorf("read inventory: %w", err)
	}
	if m.Inventory, err = unpackInventory(v); err != nil {
		return Machine{}, fmt.Errorf("read %s: %w", inventoryKey(mac), err)
	}
	return m, nil
}

// putMachine writes m, whose record may or may not exist, with its
// inventory, indexes and counts.
func putMachine(txn kv.Txn, m Machine) error {
	old, err := getRecord(txn, m.MAC)
	if errors.Is(err, ErrNotFound) {
		return writeMachine(txn, nil, &m)
	}
	if err != nil {
		return err
	}
	return writeMachine(txn, &old, &m)
}

// writeMachine writes next over old (its stored record, nil when it has
// none): the inventory to its own key when it changed, with a new summary
// in next.Summary; the record without it; and the list indexes.
func writeMachine(txn kv.Txn, old, next *Machine) error {
	var known []InventorySummary
	if old != nil {
		known = append(known, old.Summary)
	}
	summary, fresh := SummaryOf(next.Inventory, known...)
	next.Summary = summary
	if fresh {
		if len(next.Inventory) > maxRecord {
			return fmt.Errorf("%w: inventory is %d bytes, the limit is %d", ErrInvalid, len(next.Inventory), maxRecord)
		}
		var err error
		if len(next.Inventory) == 0 {
			err = txn.Delete(inventoryKey(next.MAC))
		} else {
			err = txn.Set(inventoryKey(next.MAC), packInventory(next.Inventory))
		}
		if err != nil {
			return err
		}
	}
	rec := *next
	rec.Inventory = nil
	if err := setJSON(txn, machineKey(next.MAC), rec); err != nil {
		return err
	}
	remotes, err := sessionRemotes(txn, next.MAC)
	if err != nil {
		return err
	}
	return writeIndexes(txn, old, next, remotes)
}

// dropMachine deletes the stored machine old with everything kept for it
// but its sessions, nonces and audit history.
func dropMachine(txn kv.Txn, old Machine) error {
	for _, k := range [][]byte{machineKey(old.MAC), inventoryKey(old.MAC), conflictKey(old.MAC)} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return writeIndexes(txn, &old, nil, nil)
}

// checkMachine validates the fields a caller controls. stored is the
// Summary.Sum of the record the machine was read from (0 for a new one):
// an inventory whose bytes have that sum is the record's own, checked
// when it was written, and is not parsed again: it is most of what a
// machine write would check (an approval's ~20 KB was 0.18 ms of it in
// perf), and most writes keep it. An update function that changes the
// bytes, in place or not, changes their sum; and the inventory an
// approval writes, a registration's, was checked when the registration
// was opened (Sessions.Open), so even bytes made to share a sum are JSON.
func checkMachine(m *Machine, stored uint64) error {
	if err := checkMAC(m.MAC); err != nil {
		return err
	}
	if m.State < 0 || int(m.State) >= len(lifecycle.States()) {
		return fmt.Errorf("%w: unknown state %d", ErrInvalid, int(m.State))
	}
	if m.Temporary && m.ExpiresAt.IsZero() {
		return fmt.Errorf("%w: a temporary machine needs expires_at", ErrInvalid)
	}
	if m.Progress < 0 || m.Progress > 100 {
		return fmt.Errorf("%w: progress %d is outside 0-100", ErrInvalid, m.Progress)
	}
	if len(m.Inventory) > 0 && (stored == 0 || inventorySum(m.Inventory) != stored) && !json.Valid(m.Inventory) {
		return fmt.Errorf("%w: inventory is not valid JSON", ErrInvalid)
	}
	if err := checkBMC(m.BMC); err != nil {
		return err
	}
	if m.Cluster != "" {
		if err := checkName("cluster", m.Cluster); err != nil {
			return err
		}
	}
	if m.Profile != "" {
		if err := checkName("profile", m.Profile); err != nil {
			return err
		}
	}
	// The segment names list index keys, like a cluster's.
	if m.Segment != "" {
		if err := checkSegment(m.Segment); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		field, v string
		limit    int
	}{
		{"hostname", m.Hostname, maxHostname},
		{"arch", m.Arch, maxLabel},
		{"ip", m.IP, maxLabel},
		{"message", m.Message, maxText},
		{"uefi_binary", m.UEFIBinary, maxLabel},
	} {
		if err := checkText(c.field, c.v, c.limit); err != nil {
			return err
		}
	}
	return nil
}

// touchRefs checks that the cluster and profile next newly refers to exist,
// and touches them so that a concurrent delete of either conflicts.
func touchRefs(txn kv.Txn, old, next Machine) error {
	if next.Cluster != "" && next.Cluster != old.Cluster {
		if err := touch(txn, clusterKey(next.Cluster)); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: cluster %s does not exist", ErrInvalid, next.Cluster)
		} else if err != nil {
			return err
		}
	}
	if next.Profile != "" && next.Profile != old.Profile {
		if err := touch(txn, profileKey(next.Profile)); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: profile %s does not exist", ErrInvalid, next.Profile)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// CreateMachine stores a new machine with Revision 1. FirstSeen and
// LastSeen default to now. ErrExists when the MAC is already known.
func (db *DB) CreateMachine(m Machine, a Audit) (Machine, error) {
	fail := func(err error) (Machine, error) {
		return Machine{}, fmt.Errorf("create machine %s: %w", ref(m.MAC), err)
	}
	now := db.now()
	if m.FirstSeen.IsZero() {
		m.FirstSeen = now
	}
	if m.LastSeen.IsZero() {
		m.LastSeen = now
	}
	m.Revision = 1
	if err := checkMachine(&m, 0); err != nil {
		return fail(err)
	}
	if err := checkAudit(&a, "create"); err != nil {
		return fail(err)
	}
	defer db.lockMAC(m.MAC)()
	db.known.add(m.MAC)
	err := db.update(func(txn kv.Txn) error {
		if ok, err := has(txn, machineKey(m.MAC)); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		if err := touchRefs(txn, Machine{}, m); err != nil {
			return err
		}
		if err := claimUnique(txn, Machine{}, m); err != nil {
			return err
		}
		if err := writeMachine(txn, nil, &m); err != nil {
			return err
		}
		return db.writeAudit(txn, m.MAC, a, now, m.Revision)
	})
	if err != nil {
		return fail(err)
	}
	db.publish(EventCreated, m)
	return m, nil
}

// unknownMachine is GetMachine's ErrNotFound for a MAC the known set rules
// out. The DHCP server asks for the MAC of nearly every packet, most of them
// from machines with no record: the message (the same as a wrapped
// ErrNotFound's) is built only when it is read: two allocations a lookup
// instead of four.
type unknownMachine string

func (e unknownMachine) Error() string {
	return "get machine " + string(e) + ": " + ErrNotFound.Error()
}
func (e unknownMachine) Unwrap() error { return ErrNotFound }

// GetMachine returns one machine; ErrNotFound when unknown.
func (db *DB) GetMachine(mac string) (Machine, error) {
	if err := checkMAC(mac); err != nil {
		return Machine{}, fmt.Errorf("get machine: %w", err)
	}
	if !db.known.mayExist(mac) {
		return Machine{}, unknownMachine(mac)
	}
	var m Machine
	err := db.kv.View(func(txn kv.Txn) (err error) {
		m, err = getMachine(txn, mac)
		return err
	})
	if err != nil {
		return Machine{}, fmt.Errorf("get machine %s: %w", mac, err)
	}
	return m, nil
}

// ListMachines returns every machine sorted by MAC, without inventories
// (Summary stands for them; GetMachine has the inventory). A page of
// machines is ListMachinePage's.
func (db *DB) ListMachines() ([]Machine, error) {
	out, err := list[Machine](db, "m/")
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	return out, nil
}

// UpdateMachine reads the machine, lets fn change it and writes it back in
// one synced transaction together with the audit entry. If fn returns an
// error nothing is written and that error is returned (wrapped). fn may not
// change the MAC; a State change must be allowed by State.CanTransition
// (ErrTransition otherwise; keeping the state is always allowed). Revision
// is bumped. fn may run more than once (when a concurrent transaction
// conflicts), so it must only change the machine it is given.
func (db *DB) UpdateMachine(mac string, a Audit, fn func(*Machine) error) (Machine, error) {
	if fn == nil {
		return Machine{}, fmt.Errorf("update machine %s: %w: nil update function", ref(mac), ErrInvalid)
	}
	return db.updateMachine(mac, []Step{{a, func(m *Machine, _ *Sessions) error { return fn(m) }}})
}

// A Step is one change of a machine and its audit entry
// (UpdateMachineSteps). Apply is an UpdateMachineSessions function.
type Step struct {
	Audit Audit
	Apply func(m *Machine, ss *Sessions) error
}

// UpdateMachineSteps applies steps in order, in one synced transaction:
// each is checked as an UpdateMachine function is (an allowed transition
// from the state the step before left; the MAC kept), bumps Revision and
// is audited with the revision after it; the record and its indexes are
// written once, as the last step leaves the machine, and after the commit
// subscribers get an event of each step's machine, in order (GitOps
// commits each audited step with the machine it made). An error from any
// step writes nothing; as with UpdateMachine, the steps may run more than
// once. For changes that follow each other at once (a netboot approval
// makes the machine ready): one commit, and no moment in which a reader of
// the store sees the step between.
func (db *DB) UpdateMachineSteps(mac string, steps ...Step) (Machine, error) {
	return db.updateMachine(mac, steps)
}

func (db *DB) updateMachine(mac string, steps []Step) (Machine, error) {
	fail := func(err error) (Machine, error) {
		return Machine{}, fmt.Errorf("update machine %s: %w", ref(mac), err)
	}
	if err := checkMAC(mac); err != nil {
		return fail(err)
	}
	if len(steps) == 0 {
		return fail(fmt.Errorf("%w: no update", ErrInvalid))
	}
	for i := range steps {
		if steps[i].Apply == nil {
			return fail(fmt.Errorf("%w: nil update function", ErrInvalid))
		}
		if err := checkAudit(&steps[i].Audit, "update"); err != nil {
			return fail(err)
		}
	}
	defer db.lockMAC(mac)()
	var out Machine
	var between []Machine // the machine after each step but the last
	err := db.update(func(txn kv.Txn) error {
		between = between[:0]
		old, err := getMachine(txn, mac)
		if err != nil {
			return err
		}
		next, err := old.clone()
		if err != nil {
			return err
		}
		var entries []Audit
		var revs []uint64
		// What a step is checked against: the machine as the step before
		// left it.
		prevState, prevRev, prevSession := old.State, old.Revision, old.Session
		for _, st := range steps {
			entry := st.Audit
			quiet := false
			ss := &Sessions{db: db, txn: txn, mac: mac, bound: prevSession, now: db.now(), detail: &entry.Detail, quiet: &quiet}
			if err := st.Apply(&next, ss); err != nil {
				return err
			}
			if next.MAC != old.MAC {
				return fmt.Errorf("%w: the MAC of a machine cannot change (to %s)", ErrInvalid, ref(next.MAC))
			}
			if next.State != prevState && !prevState.CanTransition(next.State) {
				return fmt.Errorf("%w from %s to %s", ErrTransition, prevState, next.State)
			}
			next.Revision = prevRev + 1
			if entry.Detail == "" && next.State != prevState {
				entry.Detail = fmt.Sprintf("state %s -> %s", prevState, next.State)
			}
			if !quiet || next.State != prevState {
				entries, revs = append(entries, entry), append(revs, next.Revision)
			}
			prevState, prevRev, prevSession = next.State, next.Revision, next.Session
			if len(between) < len(steps)-1 {
				snap, err := next.clone()
				if err != nil {
					return err
				}
				between = append(between, snap)
			}
		}
		if err := checkMachine(&next, old.Summary.Sum); err != nil {
			return err
		}
		if err := touchRefs(txn, old, next); err != nil {
			return err
		}
		if err := claimUnique(txn, old, next); err != nil {
			return err
		}
		if err := writeMachine(txn, &old, &next); err != nil {
			return err
		}
		// The machine between steps is announced with the summary of its
		// own inventory, as writeMachine would have written it (it was
		// cloned with the old record's summary).
		for i := range between {
			between[i].Summary, _ = SummaryOf(between[i].Inventory, old.Summary, next.Summary)
		}
		out = next
		for i, entry := range entries {
			if err := db.writeAudit(txn, mac, entry, db.now(), revs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	db.publish(EventUpdated, append(between, out)...)
	return out, nil
}

// clone is a deep copy of m, so that an update function that changes a
// nested field in place (m.BMC.Secret = nil) leaves the old record as it
// was: the indexes, unique keys and references compare the two.
func (m Machine) clone() (Machine, error) {
	inv := m.Inventory
	m.Inventory = nil
	b, err := json.Marshal(m)
	if err != nil {
		return Machine{}, fmt.Errorf("copy machine: %w", err)
	}
	var out Machine
	if err := decodeJSON(b, &out); err != nil {
		return Machine{}, fmt.Errorf("copy machine: %w", err)
	}
	out.Inventory = inv
	return out, nil
}

// DeleteMachine removes a machine, revokes its boot nonce and ends its
// sessions; its audit
// history stays. ErrNotFound when unknown.
func (db *DB) DeleteMachine(mac string, a Audit) error {
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("delete machine: %w", err)
	}
	if err := checkAudit(&a, "delete"); err != nil {
		return fmt.Errorf("delete machine %s: %w", mac, err)
	}
	defer db.lockMAC(mac)()
	var gone Machine
	err := db.update(func(txn kv.Txn) (err error) {
		gone, err = db.deleteMachine(txn, mac, a)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete machine %s: %w", mac, err)
	}
	db.known.remove(mac)
	db.publish(EventDeleted, gone)
	return nil
}

// deleteMachine removes the machine, its nonce and sessions, and audits
// it, in txn.
func (db *DB) deleteMachine(txn kv.Txn, mac string, a Audit) (Machine, error) {
	m, err := getMachine(txn, mac)
	if err != nil {
		return Machine{}, err
	}
	if err := dropMachine(txn, m); err != nil {
		return Machine{}, err
	}
	if err := claimUnique(txn, m, Machine{}); err != nil {
		return Machine{}, err
	}
	if err := revokeNonces(txn, mac); err != nil {
		return Machine{}, err
	}
	ss := &Sessions{db: db, txn: txn, mac: mac}
	if err := ss.EndAll(); err != nil {
		return Machine{}, err
	}
	return m, db.writeAudit(txn, mac, a, db.now(), m.Revision+1)
}
