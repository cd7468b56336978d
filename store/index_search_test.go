package store

import (
	"cmp"
	"fmt"
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
	var rows []mirrorRow
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
		rows = append(rows, newMirrorRow([]byte(m.MAC), row))
	}
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	db.mirror.mu.Lock()
	db.mirror.rows, db.mirror.at, db.mirror.count, db.mirror.loaded = rows, map[string]int{}, map[tuple]int{}, true
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

func samePageKey(a, b *PageKey) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

type searchResult struct {
	macs   []string
	next   *PageKey
	total  int
	counts map[State]int
}

// fullDecodeSearch is a search the plain way: every row decoded in full,
// every match sorted.
func fullDecodeSearch(rows []mirrorRow, q MachineQuery) searchResult {
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
