package store

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// TestLineDict: a line is numbered the second time it is placed, the
// same number for every row after; a line too long is never numbered;
// the dictionary stops at maxSharedLines however many lines repeat;
// released by every row, a line is forgotten and its number used again.
func TestLineDict(t *testing.T) {
	var d lineDict
	if id := d.intern([]byte("supermicro")); id != 0 {
		t.Fatalf("a line placed once numbered %d", id)
	}
	id := d.intern([]byte("supermicro"))
	if id == 0 || d.intern([]byte("supermicro")) != id || d.refs[id] != 2 {
		t.Fatalf("placed again: number %d, %d rows counted (want 2)", id, d.refs[id])
	}
	long := []byte(strings.Repeat("x", maxSharedLine+1))
	if d.intern(long) != 0 || d.intern(long) != 0 {
		t.Fatal("a line longer than maxSharedLine was numbered")
	}
	d.release(&rowLines{ids: [rowSharedLines]uint16{id}})
	if _, ok := d.ids["supermicro"]; !ok {
		t.Fatal("a line forgotten while a row has it")
	}
	d.release(&rowLines{ids: [rowSharedLines]uint16{id}})
	if _, ok := d.ids["supermicro"]; ok || d.lines[id] != nil {
		t.Fatal("a line kept with no row left")
	}
	// Hostile rows: every pair of machines a vendor of its own.
	var held []uint16
	for i := range maxSharedLines + 500 {
		line := []byte(fmt.Sprintf("vendor-%d", i))
		d.intern(line)
		if n := d.intern(line); n != 0 {
			held = append(held, n)
		}
	}
	if len(d.ids) != maxSharedLines || len(held) != maxSharedLines || len(d.lines) != maxSharedLines+1 {
		t.Fatalf("%d lines numbered (%d numbers given, %d slots), want the cap %d", len(d.ids), len(held), len(d.lines), maxSharedLines)
	}
	// The number freed above went to the first of them.
	if held[0] != id {
		t.Errorf("first number given after a release %d, want the freed %d", held[0], id)
	}
	for _, n := range held {
		d.release(&rowLines{ids: [rowSharedLines]uint16{n}})
	}
	if len(d.ids) != 0 || len(d.free) != maxSharedLines {
		t.Fatalf("after every row let go: %d lines, %d numbers free", len(d.ids), len(d.free))
	}
}

// TestLineHitsMatchText: over texts of numbered and own lines, a word is
// found in a row's numbered lines or its own lines exactly when it is in
// its text; a word with a '\n' (which no query has) is looked for in the
// whole text.
func TestLineHitsMatchText(t *testing.T) {
	var d lineDict
	vendors := []string{"supermicro\nsys-1029p-wtr", "dell inc.\npoweredge r650"}
	type placed struct {
		text string
		ps   pairSet
		ls   rowLines
	}
	var rows []placed
	for i := range 8 { // each vendor, model and rack in several rows; MACs and names in one
		text := fmt.Sprintf("52:54:00:00:00:%02x\nnode-%d\n%s\nrack%d\n", i, i, vendors[i/2%2], i%2+1)
		ls, ps := d.split([]byte(text))
		rows = append(rows, placed{text, ps, ls})
	}
	if len(d.ids) != 6 { // two vendors, two models, two racks
		t.Fatalf("%d lines numbered, want 6: %v", len(d.ids), d.ids)
	}
	for _, w := range []string{"super", "micro", "supermicro", "rack1", "ack", "node-3", "inc.", "r650", ":02", "00", "zzz", "o\nr", "1\nsuper", "o-1", "k2\n"} {
		q := newTextQuery([][][]byte{{[]byte(w)}})
		q.bind(&d)
		for i, r := range rows {
			got := matchPlaced(&q, []byte(r.text), &r.ps, &r.ls)
			if want := bytes.Contains([]byte(r.text), []byte(w)); got != want {
				t.Errorf("%q in row %d (%q, numbered %v): %v, want %v", w, i, r.text, r.ls.ids, got, want)
			}
		}
	}
}

// matchPlaced is q's answer for a row whose whole bytes are text, split
// into ps and ls.
func matchPlaced(q *textQuery, text []byte, ps *pairSet, ls *rowLines) bool {
	m := &mirrorRow{end: int32(len(text)), rowLen: int32(len(text))}
	return q.match(ps, ls, rowRef{m, [][]byte{text}})
}

// checkLineDict fails unless the mirror's dictionary counts each of its
// lines once for each time a row has it, and each row's numbered lines
// are lines of its text.
func checkLineDict(t *testing.T, r *rowMirror) {
	t.Helper()
	r.mu.RLock()
	defer r.mu.RUnlock()
	refs := map[uint16]int32{}
	for i := range r.rows {
		m := r.ref(i)
		for _, id := range r.lines[i].ids {
			if id == 0 {
				break
			}
			refs[id]++
			line := append(bytes.Clone(r.dict.lines[id]), '\n')
			if text := m.row()[m.text:m.end]; !bytes.HasPrefix(text, line) && !bytes.Contains(text, append([]byte("\n"), line...)) {
				t.Fatalf("row %s numbered line %q, not in its text %q", m.mac(), line, text)
			}
		}
	}
	for id, line := range r.dict.lines {
		if line == nil {
			continue
		}
		if r.dict.refs[id] != refs[uint16(id)] || r.dict.ids[string(line)] != uint16(id) {
			t.Fatalf("line %d (%q): counted %d times, rows have it %d times", id, line, r.dict.refs[id], refs[uint16(id)])
		}
	}
	if len(refs) != len(r.dict.ids) {
		t.Fatalf("rows have %d numbered lines, the dictionary %d", len(refs), len(r.dict.ids))
	}
}

// FuzzLineMatch: for any texts (a machine's fields come from its agent)
// and any query, a row's answer through numbered lines and its own
// lines' pairs is matchWords' over its whole text, whether the row was
// placed before or after its lines were numbered.
func FuzzLineMatch(f *testing.F) {
	f.Add("52:54:00:00:00:01\nnode-1\nsupermicro\nrack1\n", "supermicro\nrack2\n10.0.0.1\n", "super rack")
	f.Add("a\nb\n", "ab\n", "a\nb")
	f.Add("dell inc.\n\n\npoweredge r650", "x\x00y\ndell inc.\n", "inc. 650 52-54-00")
	f.Fuzz(func(t *testing.T, a, b, query string) {
		var d lineDict
		type placed struct {
			text []byte
			ps   pairSet
			ls   rowLines
		}
		var rows []placed
		for range 3 { // numbered from the second time on
			for _, text := range []string{a, b} {
				ls, ps := d.split([]byte(text))
				rows = append(rows, placed{[]byte(text), ps, ls})
			}
		}
		words := queryWords(query)
		q := newTextQuery(words)
		q.bind(&d)
		for i, r := range rows {
			if got, want := matchPlaced(&q, r.text, &r.ps, &r.ls), matchWords(r.text, words); got != want {
				t.Fatalf("query %q in row %d %q (numbered %v): %v, want %v", query, i, r.text, r.ls.ids, got, want)
			}
		}
	})
}
