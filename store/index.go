package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Machine lists read these keys, never a machine's inventory (schema 3;
// store.go lists the whole layout):
//
//	x/<family>/<order>/<sort key>\x00<mac>  list index entry: filter tuple
//	xq/<mac>                                  search row
//	xk/<mac>                                  empty: two or more sessions
//	xe/<expires at>\x00<mac>                  empty: a temporary machine
//	xb/<mac>                                  empty: a power-managed machine
//
// The expiry entries let the minute's expiry round read only the records
// that are due, and the BMC entries the power poller find its machines
// (schema 4), instead of every machine.
// A family is every machine ("a"), one state ("s03"), one cluster
// ("c<name>") or one segment ("g<name>"); each holds an entry per sort
// order, so that a page of any filter on one of them, in any order, is a
// range scan from the cursor. The value of an entry (state, cluster,
// segment) lets a scan check the other filters without another read.
//
// Counts per (state, cluster, segment) are kept in memory with the search
// rows (index_search.go): persistent counts measured worse. Deltas that a
// fold adds up leave tombstones that a count must step over (100,000 of
// them after a fold made one list 30 ms); counts sharded by the writer's
// MAC lock, so that writers never conflict, are up to 64 keys for each
// (state, cluster, segment) — tens of thousands to read at 100,000
// machines; and one key per count makes every two writers of a triple
// conflict, and a boot storm's creations queue on it.
//
// Every write of a machine record goes through writeMachine and every
// delete through dropMachine, which keep all of this in the same
// transaction. The migration (migrate.go) builds it in batches.

// Sort orders of a machine list (MachineQuery.Sort).
const (
	SortMAC       = "mac"
	SortHostname  = "hostname"
	SortState     = "state"
	SortFirstSeen = "first_seen"
	SortLastSeen  = "last_seen"
)

// SortOrders lists the sort orders a machine list offers.
func SortOrders() []string {
	return []string{SortMAC, SortHostname, SortState, SortFirstSeen, SortLastSeen}
}

// sortCode is the order's part of an index key; false for an unknown order.
func sortCode(order string) (byte, bool) {
	switch order {
	case SortMAC:
		return 'm', true
	case SortHostname:
		return 'h', true
	case SortState:
		return 's', true
	case SortFirstSeen:
		return 'f', true
	case SortLastSeen:
		return 'l', true
	}
	return 0, false
}

// timeKey renders a time so that string order is time order.
const timeKey = "2006-01-02T15:04:05.000000000"

// SortKey is the string by which order sorts m (ties are broken by MAC):
// the lower-case host name, the state as two digits, a time as fixed-width
// UTC, or the MAC. It is the Key of a PageKey.
func SortKey(m *Machine, order string) string {
	switch order {
	case SortHostname:
		return strings.ToLower(clean(m.Hostname))
	case SortState:
		return stateKey(m.State)
	case SortFirstSeen:
		return m.FirstSeen.UTC().Format(timeKey)
	case SortLastSeen:
		return m.LastSeen.UTC().Format(timeKey)
	}
	return m.MAC
}

func stateKey(s State) string { return fmt.Sprintf("%02d", int(s)) }

// Index families.
func familyAll() string              { return "a" }
func familyState(s State) string     { return "s" + stateKey(s) }
func familyCluster(c string) string  { return "c" + c }
func familySegment(sg string) string { return "g" + sg }

func indexPrefix(family string, code byte) string {
	return "x/" + family + "/" + string(code) + "/"
}

// families lists the index families m belongs to.
func families(m *Machine) []string {
	f := []string{familyAll(), familyState(m.State)}
	if m.Cluster != "" {
		f = append(f, familyCluster(m.Cluster))
	}
	if m.Segment != "" {
		f = append(f, familySegment(m.Segment))
	}
	return f
}

// tuple is what an index entry says of its machine: enough to check every
// filter but the free text.
type tuple struct {
	state            State
	cluster, segment string
}

func tupleOf(m *Machine) tuple { return tuple{m.State, m.Cluster, m.Segment} }

func (t tuple) encode() []byte {
	b := []byte{byte(t.state)}
	b = appendString(b, t.cluster)
	return appendString(b, t.segment)
}

// indexEntries returns m's index keys, each with the entry's value.
func indexEntries(m *Machine) map[string][]byte {
	val := tupleOf(m).encode()
	out := make(map[string][]byte, 20)
	for _, fam := range families(m) {
		for _, order := range SortOrders() {
			code, _ := sortCode(order)
			out[indexPrefix(fam, code)+SortKey(m, order)+"\x00"+m.MAC] = val
		}
	}
	if m.Temporary {
		out[string(expiryKey(m))] = nil
	}
	if m.PowerManaged() {
		out[bmcPrefix+m.MAC] = nil
	}
	return out
}

// bmcPrefix holds an entry per machine whose power the appliance manages.
const bmcPrefix = "xb/"

// PowerManagedMachines returns the MACs of the machines with a BMC the
// appliance holds a credential for (Machine.PowerManaged), in MAC order.
func (db *DB) PowerManagedMachines() ([]string, error) {
	var out []string
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(bmcPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Key()[len(bmcPrefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list power-managed machines: %w", err)
	}
	return out, nil
}

// expiryPrefix holds an entry per temporary machine, in expiry order.
const expiryPrefix = "xe/"

func expiryKey(m *Machine) []byte {
	return []byte(expiryPrefix + m.ExpiresAt.UTC().Format(timeKey) + "\x00" + m.MAC)
}

// expiryMAC is the MAC of an expiry entry and whether it was due at
// bound (the formatted time the round compares with).
func expiryMAC(key []byte, bound string) (mac string, due bool) {
	at, mac, ok := strings.Cut(strings.TrimPrefix(string(key), expiryPrefix), "\x00")
	return mac, ok && at <= bound
}

// writer is what index maintenance writes through: a transaction, or the
// migration's write batch.
type writer interface {
	Set(k, v []byte) error
	Delete(k []byte) error
}

func rowKey(mac string) []byte      { return []byte("xq/" + mac) }
func conflictKey(mac string) []byte { return []byte("xk/" + mac) }
func inventoryKey(mac string) []byte {
	return []byte("mi/" + mac)
}

// row is what a free-text search reads of a machine: its filter tuple,
// sort keys and lower-case search text, a few hundred bytes. Its fields
// share the bytes it was decoded from.
type row struct {
	state            State
	cluster, segment []byte
	mac              []byte
	keys             [5][]byte // by sortIndex
	text             []byte
}

// sortIndex is an order's place in row.keys and SortOrders.
func sortIndex(order string) int {
	for i, o := range SortOrders() {
		if o == order {
			return i
		}
	}
	return 0
}

func rowOf(m *Machine, remotes []string) []byte {
	b := tupleOf(m).encode()
	for _, o := range SortOrders()[1:] { // the MAC is the key's
		b = appendString(b, SortKey(m, o))
	}
	return appendString(b, searchText(m, remotes))
}

// decodeRow reads a row in place: its fields share mac and b, which must
// not change while the row is in use.
func decodeRow(mac, b []byte) (row, error) {
	r := row{mac: mac}
	if len(b) < 1 {
		return r, errors.New("empty search row")
	}
	r.state = State(b[0])
	d := decoder{b: b[1:]}
	r.cluster, r.segment = d.bytes(), d.bytes()
	r.keys[0] = mac
	for i := 1; i < len(r.keys); i++ {
		r.keys[i] = d.bytes()
	}
	r.text = d.bytes()
	return r, d.err
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads appendString's strings; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errors.New("truncated record")
		return nil
	}
	s := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return s
}

// writeIndexes brings the index entries and search row of a machine from
// old (nil: it had no record) to next (nil: it is deleted).
// remotes are the addresses next's sessions registered from.
func writeIndexes(txn writer, old, next *Machine, remotes []string) error {
	var before, after map[string][]byte
	if old != nil {
		before = indexEntries(old)
	}
	if next != nil {
		after = indexEntries(next)
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
	}
	for k, v := range after {
		if prev, ok := before[k]; ok && string(prev) == string(v) {
			continue
		}
		if err := txn.Set([]byte(k), v); err != nil {
			return err
		}
	}
	if next == nil {
		return txn.Delete(rowKey(old.MAC))
	}
	return txn.Set(rowKey(next.MAC), rowOf(next, remotes))
}
