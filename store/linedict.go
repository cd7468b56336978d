package store

import (
	"bytes"
	"hash/maphash"
)

// lineDict numbers the lines of search text that many machines share —
// a vendor, a model, a CPU, a cluster, a profile, a segment — so that a
// search matches each such line once, not once per machine: a word that
// one machine in five has (a vendor) was 20,000 texts read, each a
// cache miss, at 100,000 machines, most of a search of words new to the
// store. A search's word is found in a text exactly when it is found in
// one of its lines (a word has no white space; the text's lines end in
// '\n'), so a row's answer is: one of its numbered lines holds the word,
// or the rest of its text does.
//
// A line is numbered the second time a row placed in the mirror has it
// (seen remembers the lines placed once, by hash, and forgets some as
// its slots are reused): the first row keeps it as text of its own,
// which is only slower to search. The dictionary holds at most
// maxSharedLines lines of at most maxSharedLine bytes, so rows of
// hostile text (every machine a vendor of its own) cost it nothing
// beyond that; past the cap, lines stay text of their rows. A line with
// no row left is forgotten and its number used again.
//
// The rowMirror owns it, under its lock: searches read it, changes of
// rows write it.
type lineDict struct {
	ids   map[string]uint16
	lines [][]byte // by number; nil for a number not in use (0 never is)
	refs  []int32  // rows that have the line, once for each time
	free  []uint16
	seed  maphash.Seed
	seen  []uint64 // hashes of lines placed once, by hash % len
}

const (
	// maxSharedLines is how many lines are numbered at most: a fleet's
	// vendors, models, CPUs, clusters, profiles and segments number a
	// few hundred. A row's lines are matched by bit (lineHits), 512
	// bytes at most per word.
	maxSharedLines = 4095
	// maxSharedLine is the longest line numbered.
	maxSharedLine = 256
	// seenSlots is how many once-placed lines are remembered (256 KB).
	seenSlots = 1 << 15
	// rowSharedLines is how many numbered lines a row keeps: a row's
	// cluster, profile, segment, vendor, model and CPU.
	rowSharedLines = 6
)

// rowLines is a mirror row's numbered lines (0: none), and in sig bit
// n%32 of each number n: most rows of a search are told apart from the
// lines holding its word by one AND. 16 bytes a row.
type rowLines struct {
	sig uint32
	ids [rowSharedLines]uint16
}

// intern returns line's number, counting one more row that has it; 0
// when it is not numbered (seen once, too long, or the dictionary full).
func (d *lineDict) intern(line []byte) uint16 {
	if len(line) > maxSharedLine {
		return 0
	}
	if id, ok := d.ids[string(line)]; ok {
		d.refs[id]++
		return id
	}
	if d.seen == nil {
		d.seed, d.seen, d.ids = maphash.MakeSeed(), make([]uint64, seenSlots), map[string]uint16{}
		d.lines, d.refs = make([][]byte, 1), make([]int32, 1) // number 0 is none
	}
	h := maphash.Bytes(d.seed, line)
	slot := &d.seen[h%seenSlots]
	if *slot != h {
		*slot = h
		return 0
	}
	var id uint16
	switch {
	case len(d.free) > 0:
		id, d.free = d.free[len(d.free)-1], d.free[:len(d.free)-1]
	case len(d.lines) <= maxSharedLines:
		id = uint16(len(d.lines))
		d.lines, d.refs = append(d.lines, nil), append(d.refs, 0)
	default:
		return 0
	}
	*slot = 0
	d.lines[id], d.refs[id] = bytes.Clone(line), 1
	d.ids[string(d.lines[id])] = id
	return id
}

// release counts one row fewer that has each of ls's lines.
func (d *lineDict) release(ls *rowLines) {
	for _, id := range ls.ids {
		if id == 0 {
			return
		}
		if d.refs[id]--; d.refs[id] == 0 {
			delete(d.ids, string(d.lines[id]))
			d.lines[id] = nil
			d.free = append(d.free, id)
		}
	}
}

// split numbers text's lines for a row (interning each) and returns the
// byte pairs of the lines left as the row's own (pairsOf of each).
func (d *lineDict) split(text []byte) (rowLines, pairSet) {
	var ls rowLines
	var ps pairSet
	n := 0
	for len(text) > 0 {
		line := text
		rest := []byte(nil)
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, rest = text[:i], text[i+1:]
		}
		text = rest
		if n < rowSharedLines {
			if id := d.intern(line); id != 0 {
				ls.ids[n], ls.sig = id, ls.sig|1<<(id%32)
				n++
				continue
			}
		}
		ps.add(line)
	}
	return ls, ps
}

// lineHits is the numbered lines that hold a word: bit n of set for
// line n, and sig bit n%32 of each.
type lineHits struct {
	sig uint32
	set []uint64
}

// hitsOf finds the numbered lines holding w (none for a word with a
// '\n', which no line has: match looks for it in whole texts).
func (d *lineDict) hitsOf(w []byte) lineHits {
	var h lineHits
	for id, line := range d.lines {
		if line != nil && bytes.Contains(line, w) {
			if h.set == nil {
				h.set = make([]uint64, (len(d.lines)+63)/64)
			}
			h.set[id/64] |= 1 << (id % 64)
			h.sig |= 1 << (id % 32)
		}
	}
	return h
}

// in reports whether one of ls's lines holds the word.
func (h *lineHits) in(ls *rowLines) bool {
	if ls.sig&h.sig == 0 {
		return false
	}
	for _, id := range ls.ids {
		if id == 0 {
			return false
		}
		if int(id/64) < len(h.set) && h.set[id/64]&(1<<(id%64)) != 0 {
			return true
		}
	}
	return false
}
