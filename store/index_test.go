package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"github.com/foundry-appliance/foundry/store/kv"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reference answers a query the slow way, from every record, as the API
// did before the indexes: it is what ListMachinePage must agree with.
func reference(t *testing.T, db *DB, q MachineQuery) (macs []string, total int, counts map[State]int) {
	t.Helper()
	all, err := db.ListMachines()
	if err != nil {
		t.Fatal(err)
	}
	counts = map[State]int{}
	for _, st := range States() {
		counts[st] = 0
	}
	words := queryWords(q.Text)
	type hit struct{ key, mac string }
	var hits []hit
	for _, m := range all {
		if q.Cluster != "" && m.Cluster != q.Cluster || q.Segment != "" && m.Segment != q.Segment {
			continue
		}
		ss, err := db.MachineSessions(m.MAC)
		if err != nil {
			t.Fatal(err)
		}
		var remotes []string
		for _, s := range ss {
			remotes = append(remotes, s.Remote)
		}
		if !matchWords([]byte(searchText(&m, remotes)), words) {
			continue
		}
		counts[m.State]++
		if len(q.States) > 0 && !slices.Contains(q.States, m.State) {
			continue
		}
		hits = append(hits, hit{SortKey(&m, cmp.Or(q.Sort, SortMAC)), m.MAC})
	}
	slices.SortFunc(hits, func(a, b hit) int {
		c := cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.mac, b.mac))
		if q.Desc {
			return -c
		}
		return c
	})
	for _, h := range hits {
		macs = append(macs, h.mac)
	}
	return macs, len(hits), counts
}

// pages reads every page of q.
func pages(t *testing.T, db *DB, q MachineQuery) (macs []string, first MachinePage) {
	t.Helper()
	for i := 0; ; i++ {
		p, err := db.ListMachinePage(q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if i == 0 {
			first = p
		}
		if len(p.Machines) > q.Limit {
			t.Fatalf("%+v: page of %d", q, len(p.Machines))
		}
		for _, m := range p.Machines {
			if len(m.Inventory) > 0 {
				t.Fatalf("a list returned %s's inventory", m.MAC)
			}
			macs = append(macs, m.MAC)
		}
		if p.Next == nil {
			return macs, first
		}
		if len(p.Machines) == 0 || i > 200 {
			t.Fatalf("%+v: a next page after %d machines on page %d", q, len(p.Machines), i)
		}
		q.After = p.Next
	}
}

// checkQueries pages through every combination of filter, order and page
// size and compares each with reference.
func checkQueries(t *testing.T, db *DB) {
	t.Helper()
	n := 0
	for _, states := range [][]State{nil, {StateInventoried}, {StateReady, StateDiscovered}} {
		for _, cluster := range []string{"", "c1"} {
			for _, segment := range []string{"", "lab"} {
				for _, text := range []string{"", "dell", "N01", "00-00-1F", "10.77.0.9", "lab c2"} {
					for _, order := range SortOrders() {
						for _, desc := range []bool{false, true} {
							for _, limit := range []int{1, 7, 100} {
								if limit == 1 && (desc || text != "") {
									continue // long; the others cover them
								}
								q := MachineQuery{States: states, Cluster: cluster, Segment: segment, Text: text, Sort: order, Desc: desc, Limit: limit}
								want, total, counts := reference(t, db, q)
								got, first := pages(t, db, q)
								if strings.Join(got, " ") != strings.Join(want, " ") {
									t.Fatalf("%+v:\n got %v\nwant %v", q, got, want)
								}
								if first.Total != total || !mapsEqual(first.Counts, counts) {
									t.Fatalf("%+v: total %d counts %v, want %d %v", q, first.Total, first.Counts, total, counts)
								}
								n++
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d queries agree with a scan of every record", n)
	checkLineDict(t, &db.mirror)
}

func mapsEqual(a, b map[State]int) bool {
	for _, st := range States() {
		if a[st] != b[st] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestListMachinePageMatchesAScan drives machines through creates,
// updates, sightings, registrations and deletes, and after each round
// checks that every query answered from the indexes is what a scan of
// every record answers.
func TestListMachinePageMatchesAScan(t *testing.T) {
	db, clk, _ := openTest(t)
	for _, c := range []string{"c1", "c2"} {
		if _, err := db.CreateCluster(Cluster{Name: c}, admin); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(14, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	base := clk.Now()
	const n = 40
	for i := range n {
		m := Machine{
			MAC: mac(i), State: States()[rng.IntN(len(States()))], Cluster: pick("", "c1", "c2"),
			Segment: pick("", "lab", "rack"), IP: fmt.Sprintf("10.77.0.%d", rng.IntN(100)),
			// Equal times and equal host names test the MAC's tie break.
			FirstSeen: base.Add(time.Duration(rng.IntN(5)) * time.Minute),
			LastSeen:  base.Add(time.Duration(rng.IntN(5)) * time.Hour),
		}
		if i%3 != 0 {
			m.Hostname = fmt.Sprintf("N%02d", i)
		}
		if i%4 == 0 {
			m.Inventory = json.RawMessage(fmt.Sprintf(`{"system":{"vendor":"Dell Inc.","product":"PowerEdge R650","serial":"S%d"},"cpu":{"model":"Xeon"}}`, i))
		}
		mustCreate(t, db, m)
	}
	checkQueries(t, db)

	for round := range 3 {
		for i := range n {
			switch rng.IntN(6) {
			case 0:
				_, err := db.UpdateMachine(mac(i), admin, func(m *Machine) error {
					m.Cluster, m.Hostname = pick("", "c1", "c2"), pick("", fmt.Sprintf("r%d-%02d", round, i))
					return nil
				})
				if err != nil && !strings.Contains(err.Error(), "not found") {
					t.Fatal(err)
				}
			case 1:
				if _, err := db.RecordSighting(mac(i), Sighting{Segment: pick("lab", "rack"), IP: fmt.Sprintf("10.77.0.%d", 90+i%10),
					At: base.Add(time.Duration(round+5) * time.Hour)}); err != nil && !strings.Contains(err.Error(), "not found") {
					t.Fatal(err)
				}
			case 2:
				_, err := db.UpdateMachine(mac(i), admin, func(m *Machine) error {
					m.Inventory = json.RawMessage(fmt.Sprintf(`{"system":{"vendor":"%s","serial":"R%d"}}`, pick("Dell", "HPE", "QEMU"), round))
					return nil
				})
				if err != nil && !strings.Contains(err.Error(), "not found") {
					t.Fatal(err)
				}
			case 3:
				if rng.IntN(3) == 0 {
					if err := db.DeleteMachine(mac(i), admin); err != nil && !strings.Contains(err.Error(), "not found") {
						t.Fatal(err)
					}
				}
			case 4:
				if _, err := db.GetMachine(mac(i)); err == nil {
					s := testSession(round*1000+i, clk)
					s.Remote = fmt.Sprintf("10.77.0.%d", 9+round)
					register(t, db, mac(i), s, `{"system":{"vendor":"Dell"}}`)
				}
			}
		}
		checkQueries(t, db)
	}
}

func TestQueryWords(t *testing.T) {
	m := Machine{MAC: "52:54:00:ab:cd:ef", Hostname: "Node-7", IP: "10.77.0.5", Cluster: "rack1", Segment: "lab",
		Summary: InventorySummary{Vendor: "Dell Inc.", Model: "PowerEdge R650", Serial: "ABC123", CPUModel: "Xeon Gold"}}
	text := []byte(searchText(&m, []string{"10.77.0.66"}))
	for _, tc := range []struct {
		q    string
		want bool
	}{
		{"dell", true}, {"DELL poweredge", true}, {"dell hpe", false}, {"node-7", true},
		{"52-54-00-AB-CD-EF", true}, {"525400abcdef", true}, {"5254.00ab.cdef", true}, {"ab-cd", true},
		{"10.77.0.66", true}, {"xeon gold", true}, {"rack1 lab", true}, {"rack2", false}, {"", true},
	} {
		if got := matchWords(text, queryWords(tc.q)); got != tc.want {
			t.Errorf("%q in %q: %v, want %v", tc.q, text, got, tc.want)
		}
	}
}

func TestListMachinePageRefusesBadQueries(t *testing.T) {
	db, _, _ := openTest(t)
	for _, q := range []MachineQuery{{Sort: "size"}, {Limit: -1}, {States: []State{99}}, {Conflict: true}} {
		if _, err := db.ListMachinePage(q); err == nil || !strings.Contains(err.Error(), ErrInvalid.Error()) {
			t.Errorf("%+v: %v, want ErrInvalid", q, err)
		}
	}
}

// A machine with two sessions whose agents both called recently is a MAC
// conflict; the list counts and filters it, and stops when one falls
// silent or ends.
func TestListMachinePageConflicts(t *testing.T) {
	db, clk, _ := openTest(t)
	for i := range 3 {
		mustCreate(t, db, Machine{MAC: mac(i), State: StateInventoried})
	}
	register(t, db, mac(1), testSession(1, clk), "{}")
	register(t, db, mac(2), testSession(2, clk), "{}")
	clk.Add(time.Minute)
	b := register(t, db, mac(2), testSession(3, clk), "{}")
	q := MachineQuery{Conflict: true, Active: 2 * time.Minute}
	p, err := db.ListMachinePage(q)
	if err != nil || p.Conflicts != 1 || p.Total != 1 || len(p.Machines) != 1 || p.Machines[0].MAC != mac(2) || len(p.Sessions[mac(2)]) != 2 {
		t.Fatalf("conflicts: %+v %v", p, err)
	}
	if p.Counts[StateInventoried] != 1 {
		t.Errorf("counts under the conflict filter: %v", p.Counts)
	}
	clk.Add(90 * time.Second) // the first session's agent has been silent for 2.5 min
	if p, err := db.ListMachinePage(q); err != nil || p.Conflicts != 0 || len(p.Machines) != 0 {
		t.Fatalf("silent session still a conflict: %+v %v", p, err)
	}
	if _, err := db.AdvanceSession(testSession(2, clk).ID, 1, 0); err != nil {
		t.Fatal(err)
	}
	if p, err := db.ListMachinePage(q); err != nil || p.Conflicts != 1 {
		t.Fatalf("both active again: %+v %v", p, err)
	}
	_, err = db.UpdateMachineSessions(mac(2), admin, func(_ *Machine, ss *Sessions) error { return ss.End(b.ID) })
	if err != nil {
		t.Fatal(err)
	}
	if p, err := db.ListMachinePage(q); err != nil || p.Conflicts != 0 {
		t.Fatalf("ended session still a conflict: %+v %v", p, err)
	}
	if ok, _ := hasKey(db, conflictKey(mac(2))); ok {
		t.Error("the conflict key outlived the second session")
	}
}

func hasKey(db *DB, k []byte) (bool, error) {
	var ok bool
	err := db.kv.View(func(txn kv.Txn) (err error) { ok, err = has(txn, k); return err })
	return ok, err
}

// countKeys returns how many keys are under prefix.
func countKeys(t *testing.T, db *DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Counts follow writes made at once by many writers, as in a boot storm,
// also while the first list loads them.
func TestCountsFollowConcurrentWrites(t *testing.T) {
	db, _, _ := openTest(t)
	for i := range 200 {
		mustCreate(t, db, Machine{MAC: mac(1000 + i), Segment: "lab"})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the first list loads the counts while the writers write
		defer wg.Done()
		for range 20 {
			if _, err := db.ListMachinePage(MachineQuery{Limit: 1}); err != nil {
				t.Error(err)
			}
		}
	}()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				m := mac(w*100 + i)
				if _, err := db.CreateMachine(Machine{MAC: m, Segment: "lab"}, admin); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					_, err := db.UpdateMachine(m, admin, func(x *Machine) error { x.State = StateInventoried; return nil })
					if err != nil {
						t.Error(err)
					}
				}
				if i%5 == 0 {
					if err := db.DeleteMachine(m, admin); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, q := range []MachineQuery{{}, {Segment: "lab", States: []State{StateInventoried}}} {
		_, total, counts := reference(t, db, q)
		p, err := db.ListMachinePage(q)
		if err != nil || p.Total != total || !mapsEqual(p.Counts, counts) {
			t.Errorf("%+v: total %d counts %v, want %d %v (%v)", q, p.Total, p.Counts, total, counts, err)
		}
	}
}

// A list skips what it cannot decode — an index entry, a search row, a
// machine record, a session — reports each once, and goes on.
func TestListSkipsUndecodableRecords(t *testing.T) {
	var log bytes.Buffer
	clk := newClock()
	db, err := openAt(t.TempDir(), Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 6 {
		mustCreate(t, db, Machine{MAC: mac(i), State: StateInventoried, Segment: "lab", Hostname: fmt.Sprintf("h%d", i)})
	}
	register(t, db, mac(5), testSession(1, clk), "{}")
	register(t, db, mac(5), testSession(2, clk), "{}")
	bad := map[string]string{
		string(machineKey(mac(1))):                 `{"mac":`,
		string(rowKey(mac(2))):                     "\x01\x7f",
		"x/a/m/" + mac(3) + "\x00" + mac(3):        "",
		string(sessionKey(testSession(1, clk).ID)): "[",
	}
	err = db.kv.Update(func(txn kv.Txn) error {
		for k, v := range bad {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := pages(t, db, MachineQuery{Limit: 2, Active: time.Hour})
	if want := []string{mac(0), mac(2), mac(4), mac(5)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("by MAC: %v, want %v (the record and the index entry that do not decode left out)", got, want)
	}
	got, first := pages(t, db, MachineQuery{Limit: 2, Text: "lab", Conflict: true, Active: time.Hour})
	if len(got) != 0 || first.Conflicts != 0 {
		t.Errorf("one of two sessions undecodable is no conflict: %v %d", got, first.Conflicts)
	}
	got, first = pages(t, db, MachineQuery{Limit: 2, Text: "lab"})
	if want := []string{mac(0), mac(3), mac(4), mac(5)}; strings.Join(got, " ") != strings.Join(want, " ") || first.Total != 5 {
		t.Errorf("by text: %v (total %d), want %v (the row and the record that do not decode left out)", got, first.Total, want)
	}
	// The machine whose search row does not decode is not counted.
	if p, err := db.ListMachinePage(MachineQuery{}); err != nil || p.Counts[StateInventoried] != 5 || len(p.Sessions[mac(5)]) != 1 {
		t.Errorf("counts %v sessions %v: %v", p.Counts, p.Sessions[mac(5)], err)
	}
	n, keys := db.CorruptRecords()
	if n != len(bad) {
		t.Errorf("%d undecodable records reported (%q), want %d", n, keys, len(bad))
	}
	if c := strings.Count(log.String(), "level=ERROR"); c != len(bad) {
		t.Errorf("%d log lines for %d undecodable records, want one each:\n%s", c, len(bad), log.String())
	}
}

// A search sees a machine's registrations: the address a session
// registered from finds the machine until the session is swept.
func TestSearchFollowsSessions(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), State: StateInventoried})
	mustCreate(t, db, Machine{MAC: mac(2), State: StateInventoried})
	find := func(text string) []string {
		t.Helper()
		got, _ := pages(t, db, MachineQuery{Text: text, Limit: 10})
		return got
	}
	if got := find("10.77.0.123"); len(got) != 0 {
		t.Fatalf("found %v before any registration", got)
	}
	s := testSession(1, clk)
	s.Remote, s.ExpiresAt = "10.77.0.123", clk.Now().Add(time.Minute)
	register(t, db, mac(2), s, "{}")
	if got := find("10.77.0.123"); len(got) != 1 || got[0] != mac(2) {
		t.Fatalf("by the registration's address: %v", got)
	}
	clk.Add(2 * time.Minute)
	if n, err := db.sweepSessions(); n != 1 || err != nil {
		t.Fatalf("swept %d: %v", n, err)
	}
	if got := find("10.77.0.123"); len(got) != 0 {
		t.Errorf("an expired registration's address still finds %v", got)
	}
	if err := db.DeleteMachine(mac(2), admin); err != nil {
		t.Fatal(err)
	}
	if got := find("52:54"); len(got) != 1 || got[0] != mac(1) {
		t.Errorf("after a delete: %v", got)
	}
}

// A search matches a machine's text only, which it finds in the search
// row without decoding the rest: a word found elsewhere in the row (a sort
// key, such as the first-seen time) matches nothing.
func TestSearchMatchesTextOnly(t *testing.T) {
	db, _, _ := openTest(t)
	seen := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	mustCreate(t, db, Machine{MAC: mac(1), State: StateDiscovered, Hostname: "alpha", FirstSeen: seen})
	mustCreate(t, db, Machine{MAC: mac(2), State: StateDiscovered, Hostname: "beta-2031-05", FirstSeen: seen})
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"2031-05", []string{mac(2)}}, // in both rows' first-seen key; in one text
		{"alpha", []string{mac(1)}},
		{"alpha 2031-05", nil},
		{"07:08:09", nil}, // in the first-seen key only
	} {
		p, err := db.ListMachinePage(MachineQuery{Text: tc.text})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range p.Machines {
			got = append(got, m.MAC)
		}
		if !slices.Equal(got, tc.want) || p.Total != len(tc.want) {
			t.Errorf("search %q: %v (total %d), want %v", tc.text, got, p.Total, tc.want)
		}
	}
}

func TestMirrorRowText(t *testing.T) {
	m := Machine{MAC: mac(1), State: StateReady, Hostname: "Node-1", Cluster: "rack1", Segment: "lab", FirstSeen: time.Unix(0, 0)}
	row := rowOf(&m, []string{"10.0.0.9:4000"})
	want := searchText(&m, []string{"10.0.0.9:4000"})
	var linePairs pairSet // the pairs of each line, none across lines
	for _, line := range strings.Split(want, "\n") {
		linePairs.add([]byte(line))
	}
	for _, b := range [][]byte{row, append(row[:len(row):len(row)], 0, 0)} { // trailing bytes after the text
		var d lineDict // a row's lines are numbered the second time they are placed
		r, ps, ls := newMirrorRow(&d, []byte(m.MAC), b)
		if r.text < 0 || string(b[r.text:r.end]) != want {
			t.Errorf("text %q, want %q", b[max(0, r.text):max(0, r.end)], want)
		}
		if ps != linePairs || ls != (rowLines{}) {
			t.Errorf("pairs %x and lines %v of a row placed first, want its lines' pairs and none", ps, ls)
		}
		_, ps, ls = newMirrorRow(&d, []byte(m.MAC), b)
		if ps != (pairSet{}) || ls.ids[len(strings.Split(want, "\n"))-2] == 0 {
			t.Errorf("placed again: pairs %x and lines %v, want every line numbered", ps, ls)
		}
	}
	// An undecodable row has every pair: no word passes it by before it
	// is reported.
	if r, ps, ls := newMirrorRow(&lineDict{}, []byte(m.MAC), []byte("\x01\x7f")); r.text != -1 || ps != allPairs || ls != (rowLines{}) {
		t.Errorf("an undecodable row's text at %d, pairs %x, lines %v", r.text, ps, ls)
	}
}

// TestMirrorRowKeys checks the sort keys a mirror row keeps the place of
// against the row decoded, and that a row too long for those places has
// its keys decoded.
func TestMirrorRowKeys(t *testing.T) {
	m := Machine{MAC: mac(1), State: StateReady, Hostname: "node-1", Cluster: "rack1", Segment: "lab",
		FirstSeen: time.Unix(1e9, 0), LastSeen: time.Unix(2e9, 0)}
	short := rowOf(&m, []string{"10.0.0.9:4000"})
	long := rowOf(&m, []string{strings.Repeat("10.0.0.9:4000 ", 5000)})
	for name, b := range map[string][]byte{"short": short, "long": long} {
		var mr rowMirror
		mr.put([]byte(m.MAC), b)
		r := mr.ref(0)
		if cached := r.keys[0][1] > 0; cached != (len(b) <= math.MaxUint16) {
			t.Fatalf("%s row of %d bytes: keys kept %v", name, len(b), cached)
		}
		d, err := decodeRow([]byte(m.MAC), b)
		if err != nil {
			t.Fatal(err)
		}
		for k, o := range SortOrders() {
			if got := r.key(k); string(got) != string(d.keys[k]) || string(got) != SortKey(&m, o) {
				t.Errorf("%s row, key %s: %q, decoded %q, SortKey %q", name, o, got, d.keys[k], SortKey(&m, o))
			}
		}
	}
}

// TestReadPageInParts: a page read in parts (kv.ParallelReader, on
// Badger) holds each machine's own record and live sessions, in the
// page's order, leaving out a machine that is gone or does not decode,
// as one machine at a time would.
func TestReadPageInParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(4, runtime.GOMAXPROCS(0))))
	db, clk, _ := openTest(t)
	const n = 57 // six chunks (pageReadChunk), the last short
	var macs []string
	host := map[string]string{}
	for i := range n {
		host[mac(i)] = fmt.Sprintf("h%02d", i)
		mustCreate(t, db, Machine{MAC: mac(i), State: StateInventoried, Hostname: host[mac(i)]})
		macs = append(macs, mac(i))
	}
	// Sessions on every third machine; those opened before the clock
	// moves have expired by the read.
	for i := 0; i < n; i += 3 {
		register(t, db, mac(i), testSession(i, clk), "{}")
	}
	clk.Add(25 * time.Hour)
	for i := 0; i < n; i += 6 {
		register(t, db, mac(i), testSession(1000+i, clk), "{}")
		register(t, db, mac(i), testSession(2000+i, clk), "{}")
	}
	for _, i := range []int{5, 31} {
		if err := db.DeleteMachine(mac(i), admin); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set(machineKey(mac(44)), []byte(`{"mac":`)) }); err != nil {
		t.Fatal(err)
	}
	macs = append(macs, mac(900)) // never created
	// The page's order is not the MACs': reversed, and rotated by one.
	slices.Reverse(macs)
	macs = append(macs[1:], macs[0])

	var ms []Machine
	var sessions map[string][]Session
	parallel := false
	err := db.kv.View(func(txn kv.Txn) (err error) {
		if p, ok := txn.(kv.ParallelReader); ok {
			parallel = p.ParallelReads()
		}
		ms, sessions, err = db.readPage(txn, macs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if testCluster == nil && !parallel {
		t.Fatal("a Badger View does not offer parallel reads")
	}
	var want []string
	for _, m := range macs {
		if _, err := db.GetMachine(m); err == nil {
			want = append(want, m)
		}
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.MAC)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("page %v\nwant %v", got, want)
	}
	if len(sessions) != len(ms) {
		t.Errorf("sessions for %d machines, want %d", len(sessions), len(ms))
	}
	for _, m := range ms {
		if m.Hostname != host[m.MAC] {
			t.Errorf("%s has host name %q: another machine's record", m.MAC, m.Hostname)
		}
		live, err := db.MachineSessions(m.MAC)
		if err != nil {
			t.Fatal(err)
		}
		if ids, wantIDs := sessionIDList(sessions[m.MAC]), sessionIDList(live); !slices.Equal(ids, wantIDs) {
			t.Errorf("%s: sessions %v, want %v", m.MAC, ids, wantIDs)
		}
	}
	if n, _ := db.CorruptRecords(); n != 1 {
		t.Errorf("%d undecodable records reported, want 1", n)
	}
}

func sessionIDList(ss []Session) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.ID)
	}
	return ids
}
