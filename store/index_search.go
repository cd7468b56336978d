package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store/kv"
)

// rowMirror keeps every machine's search row (xq/<mac>) in memory, and the
// number of machines of each (state, cluster, segment) that the rows
// say. A search must look at every machine, and Badger steps through
// 100,000 keys in tens of milliseconds where memory takes a few; every
// list shows counts (index.go says why they are not kept on disk). The
// rows are a few hundred bytes each: about 30 MB for 100,000 machines.
//
// Nothing the mirror keeps holds a pointer but a few chunks (rowBytes)
// and the counts: the garbage collector marks what a pointer leads to,
// and each of 100,000 rows' MAC and bytes and each string key of the
// index by MAC was an object of its own, marked by every collection
// (some 30 ms of processor time a cycle at 100,000 machines, every half
// second under BenchmarkScale's requests, while they ran).
//
// Badger stays the truth: the mirror is loaded from it by the first list,
// and afterwards re-reads a machine's row after every committed change of
// that machine (publish calls refresh, under the machine's lock) and
// after a swept session. Between a commit and its refresh, a list may
// count or find the machine as it was a moment before.
type rowMirror struct {
	mu     sync.RWMutex
	loaded bool
	rows   []mirrorRow
	// pairs[i] is the set of byte pairs in the lines of row i's text
	// that are its own, not numbered in dict (pairBit): a word with a
	// pair whose bit is clear is in none of them, which most rows of a
	// search show without their text being read. They are kept apart
	// from the rows, 32 bytes each, so that a search for words not known
	// (matchCache) streams 3 MB at 100,000 machines, not the 12 MB of
	// rows they were part of (that scan was a fifth of such a search's
	// processor time, perf).
	pairs []pairSet
	// lines[i] is row i's lines numbered in dict (linedict.go), which a
	// search matches once each rather than in every row's text.
	lines []rowLines
	dict  lineDict
	bytes rowBytes    // the rows' MACs and bytes
	at    macMap[int] // index in rows by MAC
	count map[tuple]int
	// minDead is the least of dead rows' bytes worth a compaction
	// (compact); 0 means 4 chunks'.
	minDead int
	matches matchCache // recent searches' answers by row

	// loadMu serialises loads. While one reads Badger, refreshes only
	// note their MAC in pending (under pendMu), to be read again once the
	// load is in place: a writer never waits for a load.
	loadMu  sync.Mutex
	pendMu  sync.Mutex
	loading bool
	pending map[string]struct{}
}

type mirrorRow struct {
	// chunk and at are where the row's MAC is in the mirror's rowBytes,
	// macLen bytes long, followed by the row's rowLen bytes (rowRef).
	chunk, at      int32
	macLen, rowLen int32
	// row[text:end] is the row's text, found once when the row is read,
	// so that a search matches it without decoding the row; text is -1
	// when the row does not decode.
	text, end int32
	// keys[k-1] is where the sort key of sortIndex k (1 to 4; 0 is the
	// MAC) is in row, found once like the text: a search offers some
	// 20,000 rows of 100,000 machines to its page by their key, and
	// decoding the row up to it each time was an eighth of the search.
	// {0, 0} when the row does not decode or is too long for uint16
	// offsets (the key is decoded then).
	keys [len(row{}.keys) - 1][2]uint16
	// state is row[0], and digests[k] the keyDigest of sort key k (valid
	// when bit k of digested is set): a search over 100,000 machines
	// offers ~20,000 matching rows to its page, nearly all of them behind
	// the page kept so far, and reading the row's own bytes for its state
	// and key missed the processor's cache each time (a fifth of a search,
	// perf). The mirror's rows are read in order, so these are not missed.
	state    byte
	digested uint8
	digests  [len(row{}.keys)]uint64
}

// rowBytes keeps the mirror rows' MACs and bytes, each row's after the
// one before in chunks of up to rowChunk bytes. Bytes once written are
// never written again: a row that changes is written anew and its old
// bytes counted as dead until compact copies the live ones to new
// chunks. A search may thus keep a row's bytes after it lets go of the
// mirror's lock (its page's keys and MACs).
type rowBytes struct {
	chunks     [][]byte
	live, dead int // bytes that rows refer to, and that they no longer do
}

// rowChunk is the largest chunk (a row longer than that has one of its
// own): large enough that 100,000 rows are a few dozen chunks, small
// enough that adding one never copies the mirror.
const rowChunk = 1 << 20

// add writes mac and row and returns where (chunk, at).
func (rb *rowBytes) add(mac, row []byte) (chunk, at int32) {
	n := len(mac) + len(row)
	if len(rb.chunks) == 0 || cap(rb.chunks[len(rb.chunks)-1])-len(rb.chunks[len(rb.chunks)-1]) < n {
		// Chunks grow with the mirror: a few machines do not take a
		// megabyte.
		rb.chunks = append(rb.chunks, make([]byte, 0, max(n, min(rowChunk, max(4<<10, rb.live)))))
	}
	c := &rb.chunks[len(rb.chunks)-1]
	at = int32(len(*c))
	*c = append(append(*c, mac...), row...)
	rb.live += n
	return int32(len(rb.chunks) - 1), at
}

// free counts m's bytes as dead.
func (rb *rowBytes) free(m *mirrorRow) {
	n := int(m.macLen + m.rowLen)
	rb.live, rb.dead = rb.live-n, rb.dead+n
}

// rowRef is a mirror row with the chunks its bytes are in.
type rowRef struct {
	*mirrorRow
	chunks [][]byte
}

func (m rowRef) mac() []byte {
	end := m.at + m.macLen
	return m.chunks[m.chunk][m.at:end:end]
}

func (m rowRef) row() []byte {
	at := m.at + m.macLen
	end := at + m.rowLen
	return m.chunks[m.chunk][at:end:end]
}

// keyDigest is an order-preserving summary of a sort key of sortIndex k:
// when two keys' digests differ, the keys compare as their digests do
// (equal digests say nothing). ok is false for a key of an unexpected
// shape (a garbled row), which is compared in full.
//   - A MAC (k 0), canonical lower-case hex, is its 48-bit number.
//   - A time (timeKey, fixed width) is the number its first 19 digits
//     make, down to 10 µs: the year alone is the same 8 bytes for every
//     machine.
//   - Any other key is its first 8 bytes, big-endian, zero-padded: of
//     two keys whose padded prefixes differ, the one with the lower prefix
//     is the lower (at the first differing byte, either both have a byte,
//     or the shorter ended and is a prefix of the longer).
func keyDigest(k int, key []byte) (d uint64, ok bool) {
	switch SortOrders()[k] {
	case SortMAC:
		// Only the canonical form sorts as its number.
		return names.MACNumber(string(key))
	case SortFirstSeen, SortLastSeen:
		if len(key) != len(timeKey) {
			return 0, false
		}
		digits := 0
		for i, c := range key {
			if f := timeKey[i]; '0' <= f && f <= '9' { // a digit's place in the layout
				if c < '0' || c > '9' {
					return 0, false
				}
				if digits < 19 {
					d = d*10 + uint64(c-'0')
					digits++
				}
			} else if c != f {
				return 0, false
			}
		}
		return d, true
	}
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:]), true
}

// digest is keyDigest of the row's sort key k, as newMirrorRow found it.
func (m *mirrorRow) digest(k int) (uint64, bool) {
	return m.digests[k], m.digested&(1<<k) != 0
}

// pairSet is a set of byte pairs, hashed to 256 bits: 32 bytes a row
// (3 MB for 100,000 machines). A text of 150 bytes sets under half the
// bits, so a word of several letters that is not in a text is rarely
// let through.
type pairSet [4]uint64

// allPairs is the set of every pair: an undecodable row's, which every
// word passes (newMirrorRow).
var allPairs = pairSet{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}

func pairBit(a, b byte) uint32 { return (uint32(a)<<8 | uint32(b)) * 2654435761 >> 24 }

func pairsOf(text []byte) pairSet {
	var s pairSet
	s.add(text)
	return s
}

// add adds text's pairs to s.
func (s *pairSet) add(text []byte) {
	for i := 1; i < len(text); i++ {
		h := pairBit(text[i-1], text[i])
		s[h>>6] |= 1 << (h & 63)
	}
}

// within reports whether every pair of s is in t.
func (s *pairSet) within(t *pairSet) bool {
	return s[0]&^t[0]|s[1]&^t[1]|s[2]&^t[2]|s[3]&^t[3] == 0
}

// textQuery is a search's words, each alternative with its pairs and
// the numbered lines holding it, and a key that is the same for the same
// words (matchCache).
type textQuery struct {
	words [][]wordAlt
	key   string
}

// wordAlt is one form of a search's word.
type wordAlt struct {
	w     []byte
	pairs pairSet
	lines lineHits // set by bind
	// whole: w has a '\n' and may span lines, so it is looked for in
	// every row's whole text (none of queryWords' has).
	whole bool
}

func newTextQuery(words [][][]byte) textQuery {
	var q textQuery
	var key []byte
	for _, alts := range words {
		var as []wordAlt
		for _, w := range alts {
			as = append(as, wordAlt{w: w, pairs: pairsOf(w), whole: bytes.IndexByte(w, '\n') >= 0})
			key = append(append(key, w...), 0)
		}
		q.words = append(q.words, as)
		key = append(key, 1)
	}
	q.key = string(key)
	return q
}

// bind finds the numbered lines of d holding each word; the mirror's
// lock is held until the search ends.
func (q *textQuery) bind(d *lineDict) {
	for _, as := range q.words {
		for k := range as {
			as[k].lines = d.hitsOf(as[k].w)
		}
	}
}

// match is matchWords(m's text, words). A word is in the text when one
// of the row's numbered lines (ls) holds it, or in the rest of the text,
// which is read only when the row has (ps, the pairs of its own lines)
// every pair of the word. A row that does not decode has no text
// (newMirrorRow), no numbered lines and every pair, and matches, so that
// offerRow reports it every time.
func (q *textQuery) match(ps *pairSet, ls *rowLines, m rowRef) bool {
	for _, alts := range q.words {
		found := false
		for k := range alts {
			a := &alts[k]
			if a.lines.in(ls) || (a.whole || a.pairs.within(ps)) && (m.text < 0 || bytes.Contains(m.row()[m.text:m.end], a.w)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// key returns the row's sort key of sortIndex k, for a row that decodes
// (text >= 0): the MAC, or the k-th key after the tuple's cluster and
// segment.
func (m rowRef) key(k int) []byte {
	if k == 0 {
		return m.mac()
	}
	row := m.row()
	if at := m.keys[k-1]; at[1] > 0 { // a key ends after the state byte
		return row[at[0]:at[1]]
	}
	d := decoder{b: row[1:]}
	for range k + 1 {
		d.bytes()
	}
	return d.bytes()
}

// newMirrorRow reads what a search needs from a row, numbers its text's
// lines that others share in d, and returns the pairs of the rest (every
// pair when it does not decode); its bytes are yet to be placed (chunk,
// at).
func newMirrorRow(d *lineDict, mac, row []byte) (mirrorRow, pairSet, rowLines) {
	n := mirrorRow{macLen: int32(len(mac)), rowLen: int32(len(row))}
	r, err := decodeRow(mac, row)
	if err != nil {
		n.text, n.end = -1, -1
		return n, allPairs, rowLines{}
	}
	// r's fields are parts of row: where one starts is how much shorter
	// its capacity is.
	at := func(part []byte) int { return cap(row) - cap(part) }
	m := mirrorRow{macLen: n.macLen, rowLen: n.rowLen, text: int32(at(r.text)), end: int32(at(r.text) + len(r.text)),
		state: byte(r.state)}
	if len(row) <= math.MaxUint16 {
		for i, key := range r.keys[1:] {
			m.keys[i] = [2]uint16{uint16(at(key)), uint16(at(key) + len(key))}
		}
	}
	for k, key := range r.keys {
		if d, ok := keyDigest(k, key); ok {
			m.digests[k] = d
			m.digested |= 1 << k
		}
	}
	ls, ps := d.split(r.text)
	return m, ps, ls
}

// load reads every row once; a second call does nothing.
func (r *rowMirror) load(e kv.Engine) error {
	r.mu.RLock()
	loaded := r.loaded
	r.mu.RUnlock()
	if loaded {
		return nil
	}
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	r.mu.RLock()
	loaded = r.loaded
	r.mu.RUnlock()
	if loaded {
		return nil
	}
	// A change committed before this point is in the snapshot read below;
	// one committed after it is refreshed once the rows are in place.
	r.pendMu.Lock()
	r.loading, r.pending = true, map[string]struct{}{}
	r.pendMu.Unlock()
	defer func() {
		r.pendMu.Lock()
		pending := r.pending
		r.loading, r.pending = false, nil
		r.pendMu.Unlock()
		for mac := range pending {
			r.refresh(e, mac)
		}
	}()
	var fresh rowMirror
	err := e.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("xq/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			// The value is read in place: put copies it.
			err := it.Value(func(v []byte) error {
				fresh.put(it.Key()[3:], v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.rows, r.pairs, r.lines, r.dict = fresh.rows, fresh.pairs, fresh.lines, fresh.dict
	r.bytes, r.at, r.count, r.loaded = fresh.bytes, fresh.at, fresh.count, true
	r.matches.clear()
	r.mu.Unlock()
	return nil
}

// put adds a row of a MAC that has none in the mirror, copying mac and
// row; r.mu is held or r not yet shared.
func (r *rowMirror) put(mac, row []byte) {
	r.at.set(string(mac), len(r.rows))
	m, ps, ls := r.place(mac, row)
	r.rows, r.pairs, r.lines = append(r.rows, m), append(r.pairs, ps), append(r.lines, ls)
	r.add(row, 1)
}

// place reads a row for the mirror (newMirrorRow) and copies its bytes
// in.
func (r *rowMirror) place(mac, row []byte) (mirrorRow, pairSet, rowLines) {
	m, ps, ls := newMirrorRow(&r.dict, mac, row)
	m.chunk, m.at = r.bytes.add(mac, row)
	return m, ps, ls
}

// ref is row i with the chunks its bytes are in; r.mu is held.
func (r *rowMirror) ref(i int) rowRef { return rowRef{&r.rows[i], r.bytes.chunks} }

// compact copies the live rows' bytes to new chunks once the dead rows'
// bytes are more than half the live ones', and at least a few chunks'
// worth: every change of a machine writes its row again, and until then
// the dead bytes are live heap to the collector (at 100,000 machines,
// up to ~15 MB more). r.mu is held for writing.
func (r *rowMirror) compact() {
	if r.bytes.dead*2 <= r.bytes.live || r.bytes.dead < cmp.Or(r.minDead, 4*rowChunk) {
		return
	}
	var fresh rowBytes
	for i := range r.rows {
		m := r.ref(i)
		r.rows[i].chunk, r.rows[i].at = fresh.add(m.mac(), m.row())
	}
	r.bytes = fresh
}

// rowTuple reads the tuple at the start of a row; false when it does not
// decode (searchRows reports such a row).
func rowTuple(row []byte) (tuple, bool) {
	if len(row) < 1 {
		return tuple{}, false
	}
	d := decoder{b: row[1:]}
	cluster, segment := d.bytes(), d.bytes()
	return tuple{State(row[0]), string(cluster), string(segment)}, d.err == nil
}

// add counts row n more times.
func (r *rowMirror) add(row []byte, n int) {
	t, ok := rowTuple(row)
	if !ok {
		return
	}
	if r.count == nil {
		r.count = map[tuple]int{}
	}
	if r.count[t] += n; r.count[t] == 0 {
		delete(r.count, t)
	}
}

// drop forgets every row: the next list loads them again.
func (r *rowMirror) drop() {
	r.mu.Lock()
	r.forget()
	r.mu.Unlock()
}

// forget empties the mirror (r.mu held for writing).
func (r *rowMirror) forget() {
	r.rows, r.pairs, r.lines, r.dict = nil, nil, nil, lineDict{}
	r.bytes, r.at, r.count, r.loaded = rowBytes{}, macMap[int]{}, nil, false
	r.matches.clear()
}

// refresh re-reads one machine's row (deleting it when it is gone).
func (r *rowMirror) refresh(e kv.Engine, mac string) {
	r.pendMu.Lock()
	if r.loading {
		r.pending[mac] = struct{}{}
		r.pendMu.Unlock()
		return
	}
	r.pendMu.Unlock()
	r.mu.RLock()
	loaded := r.loaded
	r.mu.RUnlock()
	if !loaded {
		return
	}
	var v []byte
	err := e.View(func(txn kv.Txn) (err error) { v, err = getRaw(txn, rowKey(mac)); return err })
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		return // dropped meanwhile
	}
	i, ok := r.at.get(mac)
	if ok && (err == nil || errors.Is(err, ErrNotFound)) {
		r.add(r.ref(i).row(), -1)
		r.bytes.free(&r.rows[i])
		r.dict.release(&r.lines[i])
	}
	switch {
	case err == nil && ok:
		r.rows[i], r.pairs[i], r.lines[i] = r.place([]byte(mac), v)
		r.add(v, 1)
		r.matches.forget(i)
	case err == nil:
		r.put([]byte(mac), v) // a new last row: unknown (matchCache)
	case ok && errors.Is(err, ErrNotFound):
		last := len(r.rows) - 1
		r.rows[i], r.pairs[i], r.lines[i] = r.rows[last], r.pairs[last], r.lines[last]
		r.at.set(string(r.ref(i).mac()), i)
		r.rows, r.pairs, r.lines = r.rows[:last], r.pairs[:last], r.lines[:last]
		r.at.delete(mac)
		r.matches.forget(i)
		r.matches.forget(last)
	case !errors.Is(err, ErrNotFound):
		// Unreadable now (a closed database): load again on the next list
		// rather than answer from a mirror that may have missed a change.
		r.forget()
		return
	}
	r.compact()
}

// eachChunkLocked calls fn with every row's index, a chunk of eachChunk
// rows at a time, from parts goroutines at once (inChunks). Chunk c is
// rows c*eachChunk up to (c+1)*eachChunk whichever way the rows are
// visited, so a part may keep something per 64 rows (matchBits) that no
// other part touches. r.mu is held for reading; fn must not change a row.
func (r *rowMirror) eachChunkLocked(parts int, backwards bool, fn func(part, lo, hi int)) {
	inChunks(len(r.rows), eachChunk, parts, backwards, fn)
}

// inChunks calls fn with lo and hi of every chunk of size items of n
// (items lo to hi-1), from parts goroutines at once (part is 0 to
// parts-1), each taking the next chunk as it finishes the last: when the
// host takes one processor away for a while (a virtual machine's vCPU is
// often stolen for milliseconds), the others go on instead of waiting
// for a fixed half to finish. Chunks are taken in order, from the last
// when backwards. It returns when every chunk is done.
func inChunks(n, size, parts int, backwards bool, fn func(part, lo, hi int)) {
	chunks := (n + size - 1) / size
	parts = max(1, min(parts, chunks))
	var next atomic.Int64
	work := func(part int) {
		for {
			c := int(next.Add(1)) - 1
			if c >= chunks {
				return
			}
			if backwards {
				c = chunks - 1 - c
			}
			fn(part, c*size, min((c+1)*size, n))
		}
	}
	var wg sync.WaitGroup
	for part := 1; part < parts; part++ {
		wg.Go(func() { work(part) })
	}
	work(0)
	wg.Wait()
}

// eachChunk is how many rows a goroutine of each takes at a time: about
// 0.1 ms of a search (BenchmarkListMachinePage's 1-in-10 search spends
// ~46 ns of processor time a row), small enough to even out a stolen
// processor, large enough that taking one costs nothing.
const eachChunk = 2048

// searchRowsPerPart is the fewest rows worth a goroutine of their own.
const searchRowsPerPart = 10000

// eachChunk must be a multiple of 64 (eachChunkLocked's comment).
var _ [1 - eachChunk%64]struct{}

// searchChunk offers mirror rows lo to hi-1 (lo a multiple of 64) that
// match tq to pk, in the order pk's query asks for, answering from known
// (nil: none) where it has the answer and recording the rest there. The
// mirror's read lock is held.
func (db *DB) searchChunk(pk *picker, tq *textQuery, known *matchBits, lo, hi int) {
	mr := &db.mirror
	// With every answer of the chunk known, only its matches are
	// visited: the others' rows are not even read.
	if known != nil && known.eachHit(lo, hi, pk.q.Desc, func(i int) { db.offerRow(pk, mr.ref(i)) }) {
		return
	}
	rows, pairs, lines, bufs := mr.rows, mr.pairs, mr.lines, mr.bytes.chunks
	first, last := lo/64, (hi-1)/64
	for g := range last - first + 1 {
		w := first + g
		if pk.q.Desc {
			w = last - g
		}
		// The word's answers are kept in registers while its rows are
		// visited (setting bits in memory row by row was a third of a
		// search for new words).
		var kw, hw uint64
		if known != nil {
			kw, hw = known.known[w], known.hit[w]
		}
		start, n := w*64, min(64, hi-w*64)
		for k := range n {
			j := k
			if pk.q.Desc {
				j = n - 1 - k
			}
			bit := uint64(1) << j
			m := rowRef{&rows[start+j], bufs}
			var hit bool
			if kw&bit != 0 {
				hit = hw&bit != 0
			} else {
				// Most rows of a search end in match, undecoded (decoding
				// every row was a third of a search's time), most of them
				// at their pairs.
				hit = tq.match(&pairs[start+j], &lines[start+j], m)
				kw |= bit
				hw = hw&^bit | boolBit(hit, j)
			}
			if hit {
				db.offerRow(pk, m)
			}
		}
		if known != nil {
			known.known[w], known.hit[w] = kw, hw
		}
	}
}

func boolBit(b bool, j int) uint64 {
	if b {
		return 1 << j
	}
	return 0
}

// offerRow offers a matching row to pk, decoded no further than its
// state and sort key, or reports it when it does not decode.
func (db *DB) offerRow(pk *picker, m rowRef) {
	if m.text < 0 {
		_, err := decodeRow(m.mac(), m.row())
		db.corrupt.report(rowKey(string(m.mac())), fmt.Errorf("%w: %v", ErrCorrupt, err))
		return
	}
	pk.offerMatched(m)
}

// searchRows offers every machine's search row to p, from the mirror. A
// search matches every row, so large mirrors are searched in parts at
// once, one picker each, merged into p (100,000 rows: 13 ms in one on a
// quiet machine, BenchmarkScale).
func (db *DB) searchRows(p *picker) error {
	if err := db.mirror.load(db.kv); err != nil {
		return err
	}
	mr := &db.mirror
	mr.mu.RLock()
	defer mr.mu.RUnlock()
	n := len(mr.rows)
	pickers := []*picker{p}
	for range min(runtime.GOMAXPROCS(0), n/searchRowsPerPart) - 1 {
		pickers = append(pickers, newPicker(p.q))
	}
	tq := newTextQuery(p.words)
	tq.bind(&mr.dict)
	known := mr.matches.take(tq.key, n)
	if known != nil {
		defer known.release()
	}
	// Machines added later are mostly newer: meeting them first when the
	// newest come first lets few rows displace the page kept so far.
	mr.eachChunkLocked(len(pickers), p.q.Desc, func(part, lo, hi int) {
		db.searchChunk(pickers[part], &tq, known, lo, hi)
	})
	for _, o := range pickers[1:] {
		p.merge(o)
	}
	return nil
}
