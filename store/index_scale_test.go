package store

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// fill stores n machines with inventories of about invSize bytes, the
// fast way: schema-2 records written in a batch, then indexed by the
// migration, as an upgraded appliance would be.
func fill(tb testing.TB, db *DB, n, invSize int) {
	tb.Helper()
	if _, err := db.CreateCluster(Cluster{Name: "rack1"}, admin); err != nil {
		tb.Fatal(err)
	}
	pad := strings.Repeat("x", max(0, invSize-300))
	wb := db.kv.NewBatch()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	vendors := []string{"Dell Inc.", "Supermicro", "HPE", "Lenovo", "QEMU", "Gigabyte", "Inspur"}
	for i := range n {
		m := Machine{
			MAC: fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", i>>24&255, i>>16&255, i>>8&255, i&255), State: States()[i%len(States())],
			Hostname: fmt.Sprintf("node-%06d", i), Segment: []string{"lab", "rack"}[i%2], IP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			FirstSeen: base.Add(time.Duration(i) * time.Second), LastSeen: base.Add(time.Duration(n-i) * time.Second), Revision: 1,
			Inventory: json.RawMessage(fmt.Sprintf(`{"system":{"vendor":"%s","product":"Model %d","serial":"SN%08d"},"cpu":{"model":"CPU","cores":8},"pad":"%s"}`,
				vendors[i%len(vendors)], i%13, i, pad)),
		}
		if i%10 == 0 {
			m.Cluster = "rack1"
		}
		b, err := json.Marshal(m)
		if err != nil {
			tb.Fatal(err)
		}
		if err := wb.Set(machineKey(m.MAC), b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := db.migrateLists(); err != nil {
		tb.Fatal(err)
	}
	if err := db.known.load(db.kv); err != nil {
		tb.Fatal(err)
	}
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestListReadsNoInventory is the short form of bench/scale_test.go: with
// 5,000 machines of 16 KiB inventories (80 MiB), a list of one machine —
// first page, filtered, searched — allocates a bounded amount, where one
// that read every record (as the API did before the indexes) allocated
// hundreds of MiB; so does reading one machine with its inventory.
func TestListReadsNoInventory(t *testing.T) {
	badgerOnly(t)
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const n = 5000
	fill(t, db, n, 16<<10)
	// The first search loads the search rows into memory, once.
	if _, err := db.ListMachinePage(MachineQuery{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		q     MachineQuery
		total int
		limit uint64
	}{
		{"first page", MachineQuery{Limit: 1}, n, 256 << 10},
		{"first page, newest first", MachineQuery{Limit: 1, Sort: SortFirstSeen, Desc: true}, n, 256 << 10},
		{"by state", MachineQuery{Limit: 1, States: []State{StateReady}}, 714, 256 << 10},
		{"by two states", MachineQuery{Limit: 1, States: []State{StateReady, StateFailed}}, 1428, 256 << 10},
		{"by cluster and state", MachineQuery{Limit: 1, Cluster: "rack1", States: []State{StateFailed}}, 71, 256 << 10},
		{"by segment, by host name", MachineQuery{Limit: 1, Segment: "rack", Sort: SortHostname}, n / 2, 256 << 10},
		// A search reads every search row (a few hundred bytes), in place.
		{"search", MachineQuery{Limit: 1, Text: "SN000012"}, 100, 512 << 10},
		{"search, last seen", MachineQuery{Limit: 1, Text: "sn0000", Sort: SortLastSeen, Desc: true}, n, 512 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p MachinePage
			var err error
			got := allocated(func() { p, err = db.ListMachinePage(tc.q) })
			if err != nil || len(p.Machines) != 1 || p.Total != tc.total {
				t.Fatalf("%d machines of %d, %v", len(p.Machines), p.Total, err)
			}
			t.Logf("%d bytes allocated", got)
			if got > tc.limit {
				t.Errorf("a one-machine list allocated %d bytes (limit %d): is it reading records or inventories?", got, tc.limit)
			}
		})
	}
	mac := "52:54:00:00:10:00"
	var m Machine
	got := allocated(func() { m, err = db.GetMachine(mac) })
	if err != nil || len(m.Inventory) < 15<<10 {
		t.Fatalf("get: %d bytes of inventory, %v", len(m.Inventory), err)
	}
	if got > 256<<10 {
		t.Errorf("reading one machine allocated %d bytes", got)
	}
}

// filledInMemory is a Badger store in memory with n machines (fill, 2 KiB
// inventories), closed when b ends.
func filledInMemory(b *testing.B, n int) *DB {
	b.Helper()
	badgerOnly(b)
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	fill(b, db, n, 2<<10)
	return db
}

// BenchmarkListMachinePage measures pages of a store of 100,000 machines
// in memory (the HTTP figures are bench/scale_test.go's).
func BenchmarkListMachinePage(b *testing.B) {
	db := filledInMemory(b, 100000)
	for _, tc := range []struct {
		name string
		q    MachineQuery
	}{
		{"first", MachineQuery{Sort: SortFirstSeen, Desc: true}},
		{"state", MachineQuery{States: []State{StateInventoried}}},
		{"cluster", MachineQuery{Cluster: "rack1"}},
		{"text", MachineQuery{Text: "model cpu", Sort: SortFirstSeen, Desc: true}},
		// One word that 1 machine in 10 has (bench/scale_test.go's vendor
		// search: one word, 1 in 5): "model cpu" above is in every text.
		{"text-1in10", MachineQuery{Text: "sn0004", Sort: SortFirstSeen, Desc: true}},
		{"text-rare", MachineQuery{Text: "sn00012345"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.ListMachinePage(tc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The searches above are of the same words each time, which the store
	// keeps the answers of (matchCache); these are of words it has not
	// kept: 20 words in turn (1 machine in 10 each), more than it keeps.
	b.Run("text-1in10-new-words", func(b *testing.B) {
		i := 0
		for b.Loop() {
			q := MachineQuery{Text: fmt.Sprintf([]string{"sn000%d", "n000%d"}[i/10%2], i%10), Sort: SortFirstSeen, Desc: true}
			if _, err := db.ListMachinePage(q); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// A vendor's name, 1 machine in 7, spelled 21 ways in turn (as
	// bench/scale_test.go's): a line many machines share (linedict.go).
	b.Run("text-vendor-new-words", func(b *testing.B) {
		var spellings []string
		for n := 5; n <= len("supermicro"); n++ {
			for i := 0; i+n <= len("supermicro"); i++ {
				spellings = append(spellings, "supermicro"[i:i+n])
			}
		}
		i := 0
		for b.Loop() {
			if _, err := db.ListMachinePage(MachineQuery{Text: spellings[i%len(spellings)], Sort: SortFirstSeen, Desc: true}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("text-rare-new-words", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := db.ListMachinePage(MachineQuery{Text: fmt.Sprintf("sn%08d", i*4999%100000)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkMirrorCompact copies 100,000 machines' search rows to new
// chunks, as a change of a machine does under the mirror's write lock
// once dead rows' bytes pass half the live ones' (rowMirror.compact).
func BenchmarkMirrorCompact(b *testing.B) {
	db := filledInMemory(b, 100000)
	if err := db.mirror.load(db.kv); err != nil {
		b.Fatal(err)
	}
	db.mirror.mu.Lock()
	defer db.mirror.mu.Unlock()
	for b.Loop() {
		db.mirror.bytes.dead = db.mirror.bytes.live // as if every row had been written again
		db.mirror.compact()
	}
	b.ReportMetric(float64(db.mirror.bytes.live)/(1<<20), "MiB-live")
}

// TestSearchInPartsMatchesAScan: a search over enough machines to be
// split between goroutines (searchRowsPerPart) finds the same first page,
// total and counts as a scan of every record, in every order.
func TestSearchInPartsMatchesAScan(t *testing.T) {
	badgerOnly(t)
	if testing.Short() {
		t.Skip("25,000 machines")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 2*searchRowsPerPart + 5000
	fill(t, db, n, 300)
	for _, text := range []string{"supermicro", "sn0001", "model 12 rack", "model cpu"} {
		for _, order := range []string{SortMAC, SortLastSeen} {
			for _, desc := range []bool{false, true} {
				q := MachineQuery{Text: text, Sort: order, Desc: desc, Limit: 100}
				want, total, counts := reference(t, db, q)
				p, err := db.ListMachinePage(q)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range p.Machines {
					got = append(got, m.MAC)
				}
				if !slices.Equal(got, want[:min(len(want), 100)]) || p.Total != total || !mapsEqual(p.Counts, counts) {
					t.Fatalf("%+v: page %v total %d counts %v;\nwant %v total %d counts %v", q, got, p.Total, p.Counts, want[:min(len(want), 100)], total, counts)
				}
				if (p.Next != nil) != (total > 100) {
					t.Errorf("%+v: next page %v with %d matches", q, p.Next, total)
				}
			}
		}
	}
}

// TestIteratorsCopyNoValuesAhead: the engine's iterators read a value
// only when asked. Badger's value prefetching copied the next 100 values,
// in a goroutine each, at every Seek; a machine list seeks twice per
// machine on its page, and at 100,000 machines a page took 13 ms instead
// of 3 (bench/scale_test.go: BenchmarkScale).
func TestIteratorsCopyNoValuesAhead(t *testing.T) {
	badgerOnly(t)
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wb := db.kv.NewBatch()
	val := []byte(strings.Repeat("v", 4<<10))
	for i := range 1000 {
		if err := wb.Set([]byte(fmt.Sprintf("zz/%04d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, keysOnly := range []bool{false, true} {
		var n int
		got := allocated(func() {
			_ = db.kv.View(func(txn kv.Txn) error {
				it := txn.NewIterator(kv.IterOptions{Prefix: []byte("zz/"), KeysOnly: keysOnly})
				defer it.Close()
				for it.Seek([]byte("zz/0500")); it.Valid() && n < 2; it.Next() {
					n++
				}
				return nil
			})
		})
		t.Logf("keys only %v: %d bytes allocated to read 2 keys", keysOnly, got)
		if n != 2 || got > 64<<10 {
			t.Errorf("keys only %v: reading %d keys of 4 KiB values allocated %d bytes: values copied ahead?", keysOnly, n, got)
		}
	}
}
