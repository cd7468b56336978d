package store

import (
	"bytes"
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSearchMatchesAFullDecode: over random search rows — some that do
// not decode, some of a state byte no state has, some with bytes after
// their text — a search of the mirror (which decodes a matching row no
// further than its state and sort key, in parts at once) finds the same
// page, next position, total, per-state counts and corrupt rows as
// decoding every row in full and sorting every match.
func TestSearchMatchesAFullDecode(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // several parts
	db, _, _ := openTest(t)
	rng := rand.New(rand.NewPCG(14, 2))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 2*searchRowsPerPart + 3000
	var rows []rawRow
	corrupt := 0
	for i := range n {
		m := Machine{
			MAC:      fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16&255, i>>8&255, i&255),
			State:    States()[rng.IntN(len(States()))],
			Hostname: pick("", "alpha", "beta-7", "node-12", "Node-120"),
			IP:       pick("", "10.0.0.7", "10.0.1.12"),
			Cluster:  pick("", "rack1", "rack2"),
			Segment:  pick("", "lab", "prod"),
			// few distinct times: many sort keys tie and the MAC decides
			FirstSeen: base.Add(time.Duration(rng.IntN(50)) * time.Hour),
			LastSeen:  base.Add(time.Duration(rng.IntN(50)) * time.Minute),
		}
		m.Summary.Vendor = pick("", "Supermicro", "Dell Inc.", "HPE")
		m.Summary.Serial = fmt.Sprintf("SN%05d", rng.IntN(300))
		row := rowOf(&m, []string{pick("10.9.0.1:4000", "192.168.0.12:68")}[:rng.IntN(2)])
		switch rng.IntN(40) {
		case 0: // truncated: does not decode
			row, corrupt = row[:rng.IntN(len(row))], corrupt+1
		case 1: // a state byte no state has
			row[0] = 200
		case 2: // bytes after the text
			row = append(row, "xyz"...)
		}
		rows = append(rows, rawRow{[]byte(m.MAC), row})
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	db.mirror.mu.Lock()
	db.mirror.forget()
	for _, r := range rows {
		db.mirror.put(r.mac, r.row)
	}
	db.mirror.loaded = true
	db.mirror.mu.Unlock()

	words := []string{"alpha", "node-12", "10.0", "supermicro", "SN001", "rack1", "52-54-00-00", "lab", "7", "zzz"}
	for i := range 150 {
		q := MachineQuery{Sort: SortOrders()[rng.IntN(len(SortOrders()))], Desc: rng.IntN(2) == 0, Limit: 1 + rng.IntN(60)}
		for range 1 + rng.IntN(2) {
			q.Text = strings.TrimSpace(q.Text + " " + words[rng.IntN(len(words))])
		}
		if rng.IntN(3) == 0 {
			q.States = []State{States()[rng.IntN(len(States()))], States()[rng.IntN(len(States()))]}
		}
		if rng.IntN(4) == 0 {
			q.Cluster = pick("rack1", "rack2")
		}
		if rng.IntN(4) == 0 {
			q.Segment = pick("lab", "prod")
		}
		want := fullDecodeSearch(rows, q)
		if rng.IntN(2) == 0 && want.next != nil { // the second page
			q.After = want.next
			want = fullDecodeSearch(rows, q)
		}
		p := newPicker(q)
		if err := db.searchRows(p); err != nil {
			t.Fatal(err)
		}
		macs, next := p.page()
		if !slices.Equal(macs, want.macs) || !samePageKey(next, want.next) ||
			p.total != want.total || !mapsEqual(p.stateCounts(), want.counts) {
			t.Fatalf("query %d %+v:\npage %v next %v total %d counts %v;\nwant %v next %v total %d counts %v",
				i, q, macs, next, p.total, p.stateCounts(), want.macs, want.next, want.total, want.counts)
		}
	}
	if got, _ := db.CorruptRecords(); got != corrupt {
		t.Errorf("%d corrupt rows reported, want %d", got, corrupt)
	}
}

// rawRow is a search row as stored: the MAC of its key and its bytes.
type rawRow struct{ mac, row []byte }

func samePageKey(a, b *PageKey) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

type searchResult struct {
	macs   []string
	next   *PageKey
	total  int
	counts map[State]int
}

// fullDecodeSearch is a search the plain way: every row decoded in full,
// every match sorted.
func fullDecodeSearch(rows []rawRow, q MachineQuery) searchResult {
	res := searchResult{counts: map[State]int{}}
	for _, st := range States() {
		res.counts[st] = 0
	}
	words, k := queryWords(q.Text), sortIndex(q.Sort)
	var hits []PageKey
	for _, m := range rows {
		r, err := decodeRow(m.mac, m.row)
		if err != nil || q.Cluster != "" && string(r.cluster) != q.Cluster || q.Segment != "" && string(r.segment) != q.Segment ||
			!matchWords(r.text, words) {
			continue
		}
		res.counts[r.state]++
		if len(q.States) > 0 && !slices.Contains(q.States, r.state) {
			continue
		}
		res.total++
		hits = append(hits, PageKey{string(r.keys[k]), string(r.mac)})
	}
	order := func(a, b PageKey) int {
		c := cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.MAC, b.MAC))
		if q.Desc {
			return -c
		}
		return c
	}
	slices.SortFunc(hits, order)
	if q.After != nil {
		hits = slices.DeleteFunc(hits, func(h PageKey) bool { return order(h, *q.After) <= 0 })
	}
	for i, h := range hits {
		if i == q.Limit {
			last := hits[i-1]
			res.next = &last
			break
		}
		res.macs = append(res.macs, h.MAC)
	}
	return res
}

// TestMirrorChunksCoverEveryRowOnce: however many goroutines share the
// rows, each chunk of rows is handed out once, to one part, whole and
// aligned to eachChunk rows in either direction (so no two parts touch
// the same 64 rows' matchBits words), each part taking its chunks in the
// order asked for; one part takes them all in that order.
func TestMirrorChunksCoverEveryRowOnce(t *testing.T) {
	for _, n := range []int{0, 1, eachChunk - 1, eachChunk, eachChunk + 1, 5*eachChunk + 17} {
		r := &rowMirror{rows: make([]mirrorRow, n)}
		var want []int // chunk starts in order
		for lo := 0; lo < n; lo += eachChunk {
			want = append(want, lo)
		}
		for _, parts := range []int{1, 2, 3, 8} {
			for _, backwards := range []bool{false, true} {
				starts := make([][]int, parts)
				r.mu.RLock()
				r.eachChunkLocked(parts, backwards, func(part, lo, hi int) {
					if lo%eachChunk != 0 || hi != min(lo+eachChunk, n) {
						t.Errorf("n=%d: chunk %d to %d", n, lo, hi)
					}
					starts[part] = append(starts[part], lo)
				})
				r.mu.RUnlock()
				var all []int
				for part, los := range starts {
					for k := 1; k < len(los); k++ {
						if los[k] > los[k-1] == backwards {
							t.Fatalf("n=%d parts=%d backwards=%v: part %d took chunk %d after %d", n, parts, backwards, part, los[k], los[k-1])
						}
					}
					all = append(all, los...)
				}
				if parts == 1 {
					order := slices.Clone(want)
					if backwards {
						slices.Reverse(order)
					}
					if !slices.Equal(all, order) {
						t.Fatalf("n=%d backwards=%v: one part took chunks %v, want %v", n, backwards, all, order)
					}
				}
				slices.Sort(all)
				if !slices.Equal(all, want) {
					t.Fatalf("n=%d parts=%d backwards=%v: chunks %v, want each of %v once", n, parts, backwards, all, want)
				}
			}
		}
	}
}

// TestMirrorCompactsChangedRows: every change of a machine writes its
// search row anew, leaving the old bytes dead. Once dead rows' bytes
// are more than half the live ones' the mirror copies the live ones to
// new chunks; searches still find every machine as last written, and the
// bytes of a row taken before (a page's keys outlive the mirror's lock)
// stay as they were.
func TestMirrorCompactsChangedRows(t *testing.T) {
	db, _, _ := openTest(t)
	db.mirror.mu.Lock()
	db.mirror.minDead = 4 << 10
	db.mirror.mu.Unlock()
	const n = 40
	name := func(i, round int) string { return fmt.Sprintf("m%d-r%d", i, round) }
	for i := range n {
		mustCreate(t, db, Machine{MAC: mac(i), Hostname: name(i, 0)})
	}
	found := func(text string) int {
		t.Helper()
		p, err := db.ListMachinePage(MachineQuery{Text: text, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return p.Total
	}
	if got := found("-r0"); got != n { // loads the mirror
		t.Fatalf("%d machines found, want %d", got, n)
	}
	db.mirror.mu.RLock()
	kept := db.mirror.ref(0)
	keptMAC, keptRow := kept.mac(), kept.row()
	wantMAC, wantRow := bytes.Clone(keptMAC), bytes.Clone(keptRow)
	db.mirror.mu.RUnlock()

	compactions := 0
	for round := 1; round <= 30; round++ {
		db.mirror.mu.RLock()
		before := db.mirror.bytes.dead
		db.mirror.mu.RUnlock()
		for i := range n {
			if _, err := db.UpdateMachine(mac(i), admin, func(m *Machine) error { m.Hostname = name(i, round); return nil }); err != nil {
				t.Fatal(err)
			}
		}
		db.mirror.mu.RLock()
		b := db.mirror.bytes
		db.mirror.mu.RUnlock()
		if b.dead < before {
			compactions++
		}
		if b.dead > max(b.live/2, 4<<10) {
			t.Fatalf("round %d: %d bytes dead, %d live: not compacted", round, b.dead, b.live)
		}
	}
	if compactions == 0 {
		t.Fatal("the mirror never compacted")
	}
	if got := found("-r30"); got != n {
		t.Errorf("%d machines found as last written, want %d", got, n)
	}
	if got := found("-r29"); got != 0 {
		t.Errorf("%d machines found as written before", got)
	}
	if !bytes.Equal(keptMAC, wantMAC) || !bytes.Equal(keptRow, wantRow) {
		t.Errorf("a row's bytes taken before %d compactions changed: %q %q, were %q %q", compactions, keptMAC, keptRow, wantMAC, wantRow)
	}
}

// TestSearchRemembersMatches: a search's answers are kept by row and
// used by the next search of the same words (an answer planted in them
// is what that search finds), forgotten for a row that changes, kept
// for at most matchCacheSize searches' words, and a search of the same
// words at the same time as another answers without them.
func TestSearchRemembersMatches(t *testing.T) {
	db, _, _ := openTest(t)
	const n = 130 // three 64-row words
	for i := range n {
		mustCreate(t, db, Machine{MAC: mac(i), Hostname: fmt.Sprintf("h%d-%s", i, []string{"even", "odd"}[i%2])})
	}
	search := func(text string) MachinePage {
		t.Helper()
		p, err := db.ListMachinePage(MachineQuery{Text: text, Limit: n})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	bitsOf := func(text string) *matchBits {
		db.mirror.matches.mu.Lock()
		defer db.mirror.matches.mu.Unlock()
		return db.mirror.matches.entries[newTextQuery(queryWords(text)).key]
	}
	if p := search("odd"); p.Total != n/2 {
		t.Fatalf("%d found, want %d", p.Total, n/2)
	}
	b := bitsOf("odd")
	if b == nil || b.knownRows() != n {
		t.Fatalf("answers kept for %v rows, want %d", b, n)
	}
	// Plant a wrong answer: row i, an even machine, "matches".
	db.mirror.mu.Lock()
	i, _ := db.mirror.at.get(mac(4))
	plant(b, i)
	db.mirror.mu.Unlock()
	if p := search("odd"); p.Total != n/2+1 {
		t.Fatalf("the planted answer was not used: %d found", p.Total)
	}
	// A change of the machine forgets its answer; the others stay known.
	if _, err := db.UpdateMachine(mac(4), admin, func(m *Machine) error { m.Hostname = "h4-odd"; return nil }); err != nil {
		t.Fatal(err)
	}
	if b.knownRows() != n-1 {
		t.Fatalf("%d answers known after one machine changed, want %d", b.knownRows(), n-1)
	}
	if p := search("odd"); p.Total != n/2+1 || b.knownRows() != n {
		t.Fatalf("%d found (want %d), %d answers known", p.Total, n/2+1, b.knownRows())
	}
	// Removing a machine forgets the row moved into its place and the last.
	if err := db.DeleteMachine(mac(1), admin); err != nil {
		t.Fatal(err)
	}
	if b.knownRows() != n-2 {
		t.Fatalf("%d answers known after a delete, want %d", b.knownRows(), n-2)
	}
	mustCreate(t, db, Machine{MAC: mac(n), Hostname: "new-odd"})
	if p := search("odd"); p.Total != n/2+1 {
		t.Fatalf("%d found after a delete and a create, want %d", p.Total, n/2+1)
	}
	// At most matchCacheSize searches' answers; the oldest go first.
	for k := range matchCacheSize {
		search(fmt.Sprintf("h%d", k))
	}
	db.mirror.matches.mu.Lock()
	kept := len(db.mirror.matches.entries)
	db.mirror.matches.mu.Unlock()
	if kept != matchCacheSize || bitsOf("odd") != nil || bitsOf("h0") == nil {
		t.Fatalf("%d searches' answers kept (want %d), odd's %v", kept, matchCacheSize, bitsOf("odd") != nil)
	}
	// Held by a search: another one of the same words answers without
	// them (a wrong answer planted there is not found).
	b = bitsOf("h1")
	db.mirror.mu.Lock()
	i, _ = db.mirror.at.get(mac(2))
	plant(b, i)
	db.mirror.mu.Unlock()
	b.fill.Lock()
	_, total, _ := reference(t, db, MachineQuery{Text: "h1", Limit: n})
	if p := search("h1"); p.Total != total {
		t.Fatalf("with the answers held by another search: %d found, a scan finds %d", p.Total, total)
	}
	b.fill.Unlock()
}

// plant records row i as matching in b.
func plant(b *matchBits, i int) {
	b.known[i/64] |= 1 << (i % 64)
	b.hit[i/64] |= 1 << (i % 64)
}

// digestAgrees fails when keys a and b of sortIndex k both have a
// digest and the digests differ, but the keys compare otherwise.
func digestAgrees(t *testing.T, k int, a, b []byte) {
	t.Helper()
	da, okA := keyDigest(k, a)
	db, okB := keyDigest(k, b)
	if !okA || !okB || da == db {
		return
	}
	if want := bytes.Compare(a, b); cmp.Compare(da, db) != want {
		t.Fatalf("order %s: keys %q, %q compare %d, their digests %d, %d", SortOrders()[k], a, b, want, da, db)
	}
}

// TestKeyDigestKeepsOrder: for keys of every order's shape — times from
// year 1 to 9999, MACs, host names with any bytes, states — two keys
// whose digests differ compare as their digests do; a garbled MAC or time
// has none.
func TestKeyDigestKeepsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 21))
	keys := func(k int) [][]byte {
		var out [][]byte
		for range 400 {
			var key string
			switch SortOrders()[k] {
			case SortMAC:
				key = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", rng.IntN(3), rng.IntN(256), rng.IntN(256), rng.IntN(3), rng.IntN(256), rng.IntN(256))
			case SortFirstSeen, SortLastSeen:
				at := time.Date(1+rng.IntN(9999), 1, 1, 0, 0, 0, 0, time.UTC)
				// Sometimes only the sub-second part differs.
				at = at.Add(time.Duration(rng.Int64N(int64(400 * 24 * time.Hour))))
				if rng.IntN(3) == 0 {
					at = time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(100000)))
				}
				key = at.Format(timeKey)
			case SortHostname:
				b := make([]byte, rng.IntN(12))
				for i := range b {
					b[i] = []byte{0, 1, 'a', 'b', 'z', '-', 0xff}[rng.IntN(7)]
				}
				key = string(b)
			case SortState:
				key = stateKey(States()[rng.IntN(len(States()))])
			}
			out = append(out, []byte(key))
		}
		return out
	}
	for k, order := range SortOrders() {
		ks := keys(k)
		differ := 0
		for _, a := range ks {
			if _, ok := keyDigest(k, a); !ok {
				t.Fatalf("order %s: key %q of its shape has no digest", order, a)
			}
			for _, b := range ks {
				digestAgrees(t, k, a, b)
				da, _ := keyDigest(k, a)
				db, _ := keyDigest(k, b)
				if da != db {
					differ++
				}
			}
		}
		if differ == 0 {
			t.Errorf("order %s: no two keys' digests differ", order)
		}
	}
	for _, c := range []struct {
		order string
		key   string
	}{
		{SortMAC, "52:54:00:12:34:5G"}, {SortMAC, "52:54:00:12:34:56:"}, {SortMAC, "52-54-00-12-34-56"},
		{SortMAC, "52:54:00:12:34:5A"}, // upper case: 'A' sorts between '9' and 'a', no hex digit's place
		{SortFirstSeen, "2030-05-01T12:00:00.00000000"}, {SortFirstSeen, "2030-05-01 12:00:00.000000000"},
		{SortLastSeen, "2030-05-01T12:00:00.00000000x"},
	} {
		if _, ok := keyDigest(sortIndex(c.order), []byte(c.key)); ok {
			t.Errorf("order %s: garbled key %q has a digest", c.order, c.key)
		}
	}
}

// FuzzKeyDigest: for any two keys of any order, differing digests
// compare as the keys do.
func FuzzKeyDigest(f *testing.F) {
	f.Add(uint8(0), []byte("52:54:00:12:34:56"), []byte("52:54:00:12:34:5a"))
	f.Add(uint8(3), []byte("2030-05-01T12:00:00.000000000"), []byte("2030-05-01T12:00:00.000010000"))
	f.Add(uint8(4), []byte("0001-01-01T00:00:00.000000000"), []byte("9999-12-31T23:59:59.999999999"))
	f.Add(uint8(1), []byte("node-1"), []byte("node-1\x00"))
	f.Add(uint8(2), []byte("03"), []byte("11"))
	f.Fuzz(func(t *testing.T, k uint8, a, b []byte) {
		digestAgrees(t, int(k)%len(SortOrders()), a, b)
	})
}

// knownRows counts the rows whose answer b knows.
func (b *matchBits) knownRows() int {
	n := 0
	for _, w := range b.known {
		n += bits.OnesCount64(w)
	}
	return n
}
