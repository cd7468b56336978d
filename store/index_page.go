package store

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Page sizes of ListMachinePage.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// MachineQuery asks ListMachinePage for one page of machines. Its zero
// value is the first page of every machine by MAC.
type MachineQuery struct {
	// States keeps machines in any of these states; empty keeps all.
	States []State
	// Cluster and Segment keep the machines of one cluster or segment.
	Cluster string
	Segment string
	// Text keeps machines whose search text (MAC, host name, address,
	// cluster, profile, segment, vendor, model, serial, CPU model, the
	// addresses their sessions registered from) holds every word of it,
	// in any case; a word that is a MAC in another notation also matches
	// its canonical form.
	Text string
	// Conflict keeps machines with a MAC conflict: two or more live
	// sessions whose agents called within Active. It needs Active.
	Conflict bool
	// Active is how recently a session's agent must have called to count
	// towards a MAC conflict; when positive, MachinePage.Conflicts is
	// counted. Default 0: conflicts are neither counted nor filterable.
	Active time.Duration
	// Sort is one of SortOrders (default SortMAC); Desc reverses it.
	Sort string
	Desc bool
	// After is the position after which the page starts (MachinePage.Next
	// of the previous page); nil starts at the beginning.
	After *PageKey
	// Limit is the page size: default DefaultPageLimit, at most
	// MaxPageLimit.
	Limit int
}

// PageKey is a position in a sorted machine list: a machine's SortKey in
// the list's order and its MAC. Paging by position rather than by offset
// stays correct while machines appear, change and vanish between pages.
type PageKey struct {
	Key string
	MAC string
}

// MachinePage is one page of machines.
type MachinePage struct {
	// Machines are the page's machines in order, without inventories.
	Machines []Machine
	// Sessions are the live sessions of the page's machines, by MAC,
	// oldest first.
	Sessions map[string][]Session
	// Next is the position to ask for the next page from; nil when no
	// machine follows.
	Next *PageKey
	// Total counts the machines that match every filter.
	Total int
	// Counts counts the machines of each state that match every filter but
	// States: what choosing that state would show.
	Counts map[State]int
	// Conflicts counts the machines with a MAC conflict, of all machines
	// (when MachineQuery.Active is positive).
	Conflicts int
}

// ListMachinePage returns one page of the machines that match q, in q's
// order. Without Text or Conflict the page is a range scan of one index
// from the cursor and the counts are kept in memory, so its cost does
// not grow with the number of machines; Text reads every machine's
// search row (in memory; never an inventory), and Conflict the machines
// with more than one session. The counts and search rows may lag a
// concurrent write by the moment between its commit and its event.
func (db *DB) ListMachinePage(q MachineQuery) (MachinePage, error) {
	fail := func(err error) (MachinePage, error) { return MachinePage{}, fmt.Errorf("list machines: %w", err) }
	if q.Sort == "" {
		q.Sort = SortMAC
	}
	code, ok := sortCode(q.Sort)
	if !ok {
		return fail(fmt.Errorf("%w: sort order %s; want one of %s", ErrInvalid, label(q.Sort), strings.Join(SortOrders(), ", ")))
	}
	switch {
	case q.Limit < 0:
		return fail(fmt.Errorf("%w: negative limit %d", ErrInvalid, q.Limit))
	case q.Limit == 0:
		q.Limit = DefaultPageLimit
	case q.Limit > MaxPageLimit:
		q.Limit = MaxPageLimit
	}
	for _, st := range q.States {
		if st < 0 || int(st) >= len(States()) {
			return fail(fmt.Errorf("%w: unknown state %d", ErrInvalid, int(st)))
		}
	}
	if q.Conflict && q.Active <= 0 {
		return fail(fmt.Errorf("%w: a conflict filter needs an activity window", ErrInvalid))
	}
	if err := db.mirror.load(db.kv); err != nil {
		return fail(err)
	}
	var page MachinePage
	err := db.kv.View(func(txn kv.Txn) (err error) {
		var conflicts []string
		if q.Active > 0 {
			if conflicts, err = db.conflicted(txn, q.Active); err != nil {
				return err
			}
		}
		var macs []string
		var next *PageKey
		switch {
		case q.Conflict:
			p := newPicker(q)
			if err := db.readRows(txn, conflicts, p); err != nil {
				return err
			}
			macs, next = p.page()
			page.Total, page.Counts = p.total, p.stateCounts()
		case q.Text != "":
			p := newPicker(q)
			if err := db.searchRows(p); err != nil {
				return err
			}
			macs, next = p.page()
			page.Total, page.Counts = p.total, p.stateCounts()
		default:
			t := db.mirror.tally(q)
			page.Total, page.Counts = t.total, t.byState
			if macs, next, err = db.scanIndex(txn, t, code, q); err != nil {
				return err
			}
		}
		page.Next, page.Conflicts = next, len(conflicts)
		page.Machines, page.Sessions, err = db.readPage(txn, macs)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return page, nil
}

// tally is what a list without search words needs of the counts of
// machines by tuple: the query's total and its counts by state (cluster
// and segment filters applied, not the states), and how many machines
// each index family that could serve it holds.
type tally struct {
	total   int
	byState map[State]int
	// Machines in each family: every machine; in one of the query's
	// states; in its cluster; on its segment.
	all, states, cluster, segment int
}

// tally counts q's machines in one pass over the counts by tuple, under
// the read lock: a list no longer copies the map (~40 KB at 100,000
// machines).
func (r *rowMirror) tally(q MachineQuery) tally {
	t := tally{byState: make(map[State]int, len(States()))}
	for _, st := range States() {
		t.byState[st] = 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for tp, n := range r.count {
		t.all += n
		inStates := slices.Contains(q.States, tp.state)
		if inStates {
			t.states += n
		}
		if q.Cluster != "" && tp.cluster == q.Cluster {
			t.cluster += n
		}
		if q.Segment != "" && tp.segment == q.Segment {
			t.segment += n
		}
		if q.Cluster != "" && tp.cluster != q.Cluster || q.Segment != "" && tp.segment != q.Segment {
			continue
		}
		t.byState[tp.state] += n
		if len(q.States) == 0 || inStates {
			t.total += n
		}
	}
	return t
}

// scanIndex finds a page by scanning the index family with the fewest
// candidates from the cursor, checking each entry's tuple.
func (db *DB) scanIndex(txn kv.Txn, counts tally, code byte, q MachineQuery) ([]string, *PageKey, error) {
	fams, best := []string{familyAll()}, counts.all
	consider := func(fs []string, n int) {
		if n < best {
			fams, best = fs, n
		}
	}
	if len(q.States) > 0 {
		var fs []string
		for _, st := range q.States {
			fs = append(fs, familyState(st))
		}
		consider(fs, counts.states)
	}
	if q.Cluster != "" {
		consider([]string{familyCluster(q.Cluster)}, counts.cluster)
	}
	if q.Segment != "" {
		consider([]string{familySegment(q.Segment)}, counts.segment)
	}
	slices.Sort(fams)
	fams = slices.Compact(fams)
	m := newMerge(txn, fams, code, q.Desc, q.After)
	defer m.close()
	var macs []string
	var last PageKey
	for ; m.valid(); m.next() {
		it := m.its[m.cur]
		ok := false
		err := it.Value(func(b []byte) error {
			if len(b) < 1 {
				return errors.New("empty index entry")
			}
			d := decoder{b: b[1:]}
			cluster, segment := d.bytes(), d.bytes()
			ok = (len(q.States) == 0 || slices.Contains(q.States, State(b[0]))) &&
				(q.Cluster == "" || string(cluster) == q.Cluster) && (q.Segment == "" || string(segment) == q.Segment)
			return d.err
		})
		if err != nil {
			db.corrupt.report(kv.KeyCopy(it), fmt.Errorf("%w: %v", ErrCorrupt, err))
			continue
		}
		if !ok {
			continue
		}
		if len(macs) == q.Limit {
			return macs, &last, nil // one more follows
		}
		key, mac, _ := strings.Cut(m.suffix(m.cur), "\x00")
		macs = append(macs, mac)
		last = PageKey{Key: key, MAC: mac}
	}
	return macs, nil, nil
}

// merge walks several index families of one order as one sorted stream
// (several states at once); entries compare by their suffix, sort key and
// MAC.
type merge struct {
	its      []kv.Iterator
	prefixes []string
	desc     bool
	cur      int
}

func newMerge(txn kv.Txn, fams []string, code byte, desc bool, after *PageKey) *merge {
	m := &merge{desc: desc}
	for _, f := range fams {
		p := indexPrefix(f, code)
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(p), Reverse: desc})
		var from string
		switch {
		case after != nil:
			from = p + after.Key + "\x00" + after.MAC
		case desc:
			from = p[:len(p)-1] + "0" // just past the prefix ('/' + 1)
		default:
			from = p
		}
		it.Seek([]byte(from))
		if after != nil && it.ValidForPrefix([]byte(p)) && string(it.Key()) == from {
			it.Next()
		}
		m.its = append(m.its, it)
		m.prefixes = append(m.prefixes, p)
	}
	m.pick()
	return m
}

func (m *merge) suffix(i int) string {
	return string(m.its[i].Key()[len(m.prefixes[i]):])
}

func (m *merge) pick() {
	m.cur = -1
	var best string
	for i, it := range m.its {
		if !it.ValidForPrefix([]byte(m.prefixes[i])) {
			continue
		}
		s := m.suffix(i)
		if m.cur < 0 || !m.desc && s < best || m.desc && s > best {
			m.cur, best = i, s
		}
	}
}

func (m *merge) valid() bool { return m.cur >= 0 }

func (m *merge) next() {
	m.its[m.cur].Next()
	m.pick()
}

func (m *merge) close() {
	for _, it := range m.its {
		it.Close()
	}
}

// readRows offers the search rows of macs to p.
func (db *DB) readRows(txn kv.Txn, macs []string, p *picker) error {
	for _, mac := range macs {
		b, err := getRaw(txn, rowKey(mac))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		r, err := decodeRow([]byte(mac), b)
		if err != nil {
			db.corrupt.report(rowKey(mac), fmt.Errorf("%w: %v", ErrCorrupt, err))
			continue
		}
		p.offer(&r)
	}
	return nil
}

// picker applies a query to machines offered one by one (free-text search,
// conflicts): it counts them and keeps the page after the cursor, holding
// no more than a page at a time and copying only what it keeps.
type picker struct {
	q     MachineQuery
	words [][][]byte
	k     int
	h     pageHeap
	total int
	// byState counts by the state byte of the row: an array, not a map,
	// as a search counts some 20,000 rows of 100,000 machines.
	byState [256]int
	// root is the keyDigest of the heap's root (the page's last position
	// so far) once the page is full, rootOK whether it has one.
	root   uint64
	rootOK bool
}

func newPicker(q MachineQuery) *picker {
	return &picker{q: q, words: queryWords(q.Text), k: sortIndex(q.Sort), h: pageHeap{desc: q.Desc}}
}

// stateCounts returns the counts by state: every state, and any other
// state byte a row held.
func (p *picker) stateCounts() map[State]int {
	counts := map[State]int{}
	for _, st := range States() {
		counts[st] = 0
	}
	for b, n := range p.byState {
		if n > 0 {
			counts[State(b)] = n
		}
	}
	return counts
}

// offer offers a decoded row (readRows).
func (p *picker) offer(r *row) {
	q := &p.q
	if q.Cluster != "" && string(r.cluster) != q.Cluster || q.Segment != "" && string(r.segment) != q.Segment {
		return
	}
	if !matchWords(r.text, p.words) {
		return
	}
	p.take(r.state, r.keys[p.k], r.mac)
}

// offerMatched offers a mirror row whose text matched already, decoding
// no more of it than the query needs: its tuple only when the query has
// a cluster or segment, otherwise its state byte and its sort key.
func (p *picker) offerMatched(m rowRef) {
	q := &p.q
	if q.Cluster != "" || q.Segment != "" {
		d := decoder{b: m.row()[1:]}
		cluster, segment := d.bytes(), d.bytes()
		if q.Cluster != "" && string(cluster) != q.Cluster || q.Segment != "" && string(segment) != q.Segment {
			return
		}
	}
	if !p.count(State(m.state)) {
		return
	}
	// Most matches of a large search come after the page kept so far;
	// their digest says so without their key being read.
	if p.q.After == nil && p.rootOK {
		if d, ok := m.digest(p.k); ok && d != p.root && (d > p.root) != p.h.desc {
			return
		}
	}
	p.keepAfter(m.key(p.k), m.mac())
}

// take counts a row that matches every filter but States and keeps its
// position if it is on the page.
func (p *picker) take(st State, key, mac []byte) {
	if p.count(st) {
		p.keepAfter(key, mac)
	}
}

// count counts a row of state st that matches every filter but States,
// and reports whether it matches States too.
func (p *picker) count(st State) bool {
	p.byState[byte(st)]++
	if len(p.q.States) > 0 && !slices.Contains(p.q.States, st) {
		return false
	}
	p.total++
	return true
}

// keepAfter keeps a counted row's position if it is after the query's
// cursor and on the page.
func (p *picker) keepAfter(key, mac []byte) {
	if p.q.After != nil && p.h.compareBytes(key, mac, *p.q.After) <= 0 {
		return
	}
	p.keep(heapKey{key, mac})
}

// keep adds k to the page kept so far if it is among the limit+1 first:
// the last one says that a next page exists. The heap holds the row's
// own bytes, which are never changed in place (the mirror replaces a row;
// readRows' are copies).
func (p *picker) keep(k heapKey) {
	switch {
	case p.h.Len() <= p.q.Limit:
		heap.Push(&p.h, k)
	case p.h.compare(k, p.h.keys[0]) < 0:
		p.h.keys[0] = k
		heap.Fix(&p.h, 0)
	default:
		return
	}
	if p.h.Len() > p.q.Limit {
		p.root, p.rootOK = keyDigest(p.k, p.h.keys[0].key)
	}
}

// merge adds what o picked from other rows of the same query.
func (p *picker) merge(o *picker) {
	p.total += o.total
	for b, n := range o.byState {
		p.byState[b] += n
	}
	for _, k := range o.h.keys {
		p.keep(k)
	}
}

// page returns the page's MACs in order and the next page's position.
func (p *picker) page() ([]string, *PageKey) {
	keys := p.h.keys
	slices.SortFunc(keys, p.h.compare)
	var next *PageKey
	if len(keys) > p.q.Limit {
		keys = keys[:p.q.Limit]
		last := keys[len(keys)-1]
		next = &PageKey{Key: string(last.key), MAC: string(last.mac)}
	}
	macs := make([]string, 0, len(keys))
	for _, k := range keys {
		macs = append(macs, string(k.mac))
	}
	return macs, next
}

// heapKey is a position (sort key and MAC) in a row's bytes.
type heapKey struct{ key, mac []byte }

// pageHeap holds the first positions seen, its root the last of them.
type pageHeap struct {
	keys []heapKey
	desc bool
}

func (h *pageHeap) compare(a, b heapKey) int {
	c := cmp.Or(bytes.Compare(a.key, b.key), bytes.Compare(a.mac, b.mac))
	if h.desc {
		return -c
	}
	return c
}

// compareBytes compares the position (key, mac) with p, without copying.
func (h *pageHeap) compareBytes(key, mac []byte, p PageKey) int {
	c := compareBS(key, p.Key)
	if c == 0 {
		c = compareBS(mac, p.MAC)
	}
	if h.desc {
		return -c
	}
	return c
}

func compareBS(b []byte, s string) int {
	switch {
	case string(b) < s:
		return -1
	case string(b) == s:
		return 0
	}
	return 1
}

func (h *pageHeap) Len() int           { return len(h.keys) }
func (h *pageHeap) Less(i, j int) bool { return h.compare(h.keys[j], h.keys[i]) < 0 }
func (h *pageHeap) Swap(i, j int)      { h.keys[i], h.keys[j] = h.keys[j], h.keys[i] }
func (h *pageHeap) Push(x any)         { h.keys = append(h.keys, x.(heapKey)) }
func (h *pageHeap) Pop() any {
	x := h.keys[len(h.keys)-1]
	h.keys = h.keys[:len(h.keys)-1]
	return x
}

// conflicted returns the machines with two or more live sessions whose
// agents called within active.
func (db *DB) conflicted(txn kv.Txn, active time.Duration) ([]string, error) {
	now := db.now()
	it := txn.NewIterator(kv.IterOptions{Prefix: []byte("xk/"), KeysOnly: true})
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		mac := string(it.Key()[3:])
		ss := &Sessions{db: db, txn: txn, mac: mac, now: now}
		live, err := ss.List()
		if err != nil {
			return nil, err
		}
		n := 0
		for _, s := range live {
			if now.Sub(s.LastSeen) < active {
				n++
			}
		}
		if n > 1 {
			out = append(out, mac)
		}
	}
	return out, nil
}

// readPage reads the records and live sessions of the page's machines.
// Each machine is two Badger lookups and a decode, some 13 µs (a page of
// 100 was most of a list's time in process), so an engine that can be
// read from several goroutines at once (kv.ParallelReader) reads the
// page in parts, one per processor.
func (db *DB) readPage(txn kv.Txn, macs []string) ([]Machine, map[string][]Session, error) {
	// Each part writes only its own chunks' places; the machines that
	// were found are then moved down over the others'.
	ms := make([]Machine, len(macs))
	lives := make([][]Session, len(macs))
	found := make([]bool, len(macs))
	parts := 1
	if p, ok := txn.(kv.ParallelReader); ok && p.ParallelReads() {
		parts = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, parts)
	now := db.now()
	// One iterator per part for the session indexes: a Badger iterator
	// costs more to make than to move.
	its := make([]kv.Iterator, parts)
	defer func() {
		for _, it := range its {
			if it != nil {
				it.Close()
			}
		}
	}()
	inChunks(len(macs), pageReadChunk, parts, false, func(part, lo, hi int) {
		if errs[part] != nil {
			return
		}
		if its[part] == nil {
			its[part] = txn.NewIterator(kv.IterOptions{Prefix: []byte("sm/"), KeysOnly: true})
		}
		for i := lo; i < hi; i++ {
			var err error
			ms[i], lives[i], found[i], err = db.readPageMachine(txn, its[part], macs[i], now)
			if err != nil {
				errs[part] = err
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	sessions := make(map[string][]Session, len(macs))
	n := 0
	for i := range ms {
		if found[i] {
			ms[n] = ms[i]
			sessions[macs[i]] = lives[i]
			n++
		}
	}
	clear(ms[n:])
	return ms[:n], sessions, nil
}

// pageReadChunk is how many machines of a page a part of readPage takes
// at a time: a tenth of a default page, about 0.1 ms.
const pageReadChunk = 10

// readPageMachine reads one machine of a page (found false when it is
// gone or does not decode, which is reported) and its live sessions,
// through it, an iterator over the session index.
func (db *DB) readPageMachine(txn kv.Txn, it kv.Iterator, mac string, now time.Time) (Machine, []Session, bool, error) {
	m, err := getRecord(txn, mac)
	if errors.Is(err, ErrNotFound) {
		return Machine{}, nil, false, nil
	}
	if errors.Is(err, ErrCorrupt) {
		db.corrupt.report(machineKey(mac), err)
		return Machine{}, nil, false, nil
	}
	if err != nil {
		return Machine{}, nil, false, err
	}
	m.Inventory = nil // a record of schema 2 that was never rewritten
	var ids []string
	prefix := sessionMACPrefix(mac)
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		ids = append(ids, string(it.Key()[len(prefix):]))
	}
	ss := &Sessions{db: db, txn: txn, mac: mac, now: now}
	live, err := ss.liveOf(ids)
	if err != nil {
		return Machine{}, nil, false, err
	}
	return m, live, true, nil
}
