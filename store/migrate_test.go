package store

import (
	"bytes"
	"encoding/json"
	"github.com/foundry-appliance/foundry/store/kv"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const dellInventory = `{"schema_version":1,"system":{"vendor":"Dell Inc.","product":"PowerEdge R650","serial":"SN-1"},` +
	`"cpu":{"model":"Xeon","cores":16,"threads":32},"memory":{"total_bytes":68719476736},` +
	`"disks":[{"name":"sda","size_bytes":1000},{"name":"sr0","size_bytes":500,"removable":true}],"nics":[{"name":"eno1"}]}`

// writeSchema2 rewrites db's machines as schema 2 kept them: each record
// with its inventory inside, no list keys, version 2.
func writeSchema2(t *testing.T, db *DB) {
	t.Helper()
	full := map[string][]byte{}
	all, err := db.ListMachines()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		got, err := db.GetMachine(m.MAC)
		if err != nil {
			t.Fatal(err)
		}
		got.Summary = InventorySummary{} // schema 2 had none
		full[m.MAC], _ = json.Marshal(got)
	}
	for _, p := range []string{"x/", "xq/", "xk/", "mi/"} {
		if err := db.dropPrefix(p); err != nil {
			t.Fatal(err)
		}
	}
	err = db.kv.Update(func(txn kv.Txn) error {
		for mac, b := range full {
			if err := txn.Set(machineKey(mac), b); err != nil {
				return err
			}
		}
		return setJSON(txn, keySchema, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reopen closes db and opens its directory again with the same clock, as
// a restart does; log, when not nil, receives the store's log.
func reopen(t *testing.T, db *DB, dir string, clk *clock, log *bytes.Buffer) *DB {
	t.Helper()
	db.Close()
	opt := Options{Now: clk.Now}
	if log != nil {
		opt.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	db, err := openAt(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMigrateSchema2 opens a database in the layout of schema 2 (records
// with their inventories, no indexes), written with the keys the old code
// wrote, and finds it converted: inventories on their own keys, summaries
// in the records, every list answered from the indexes. A record that does
// not decode is reported and left; the migration runs again safely when it
// was cut off.
func TestMigrateSchema2(t *testing.T) {
	db, clk, dir := openTest(t)
	if _, err := db.CreateCluster(Cluster{Name: "c1"}, admin); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, Machine{MAC: mac(1), State: StateInventoried, Hostname: "dell-1", Segment: "lab", Inventory: json.RawMessage(dellInventory)})
	mustCreate(t, db, Machine{MAC: mac(2), State: StateReady, Hostname: "node-2", Cluster: "c1", Segment: "lab"})
	mustCreate(t, db, Machine{MAC: mac(3), State: StateInventoried, Inventory: json.RawMessage(`{"system":{"vendor":"QEMU"}}`)})
	register(t, db, mac(3), testSession(1, clk), "{}")
	register(t, db, mac(3), testSession(2, clk), "{}")
	writeSchema2(t, db)
	err := db.kv.Update(func(txn kv.Txn) error { return txn.Set(machineKey(mac(9)), []byte(`{"mac":`)) })
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	_ = db.kv.View(func(txn kv.Txn) (err error) { raw, err = getRaw(txn, machineKey(mac(1))); return err })
	if !strings.Contains(string(raw), `"inventory":{"schema_version":1`) || strings.Contains(string(raw), `"summary"`) {
		t.Fatalf("not a schema-2 record: %s", raw)
	}

	var log bytes.Buffer
	db = reopen(t, db, dir, clk, &log)
	check := func(t *testing.T, db *DB) {
		t.Helper()
		if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
			t.Fatalf("schema %d %v", v, err)
		}
		m, err := db.GetMachine(mac(1))
		if err != nil || string(m.Inventory) != dellInventory {
			t.Fatalf("inventory after migration: %s %v", m.Inventory, err)
		}
		want := InventorySummary{Vendor: "Dell Inc.", Model: "PowerEdge R650", Serial: "SN-1", CPUModel: "Xeon", Cores: 16, Threads: 32,
			MemoryBytes: 64 << 30, Disks: 2, DiskBytes: 1000, NICs: 1, Sum: m.Summary.Sum}
		if m.Summary != want || m.Summary.Sum == 0 {
			t.Errorf("summary %+v, want %+v", m.Summary, want)
		}
		var raw []byte
		_ = db.kv.View(func(txn kv.Txn) (err error) { raw, err = getRaw(txn, machineKey(mac(1))); return err })
		if strings.Contains(string(raw), `"inventory"`) {
			t.Errorf("the record still holds the inventory: %s", raw)
		}
		p, err := db.ListMachinePage(MachineQuery{Sort: SortHostname, Active: time.Hour})
		if err != nil || p.Total != 3 || len(p.Machines) != 3 || p.Machines[0].MAC != mac(3) || p.Machines[1].MAC != mac(1) {
			t.Fatalf("list after migration: %+v %v", p, err)
		}
		if p.Counts[StateInventoried] != 2 || p.Counts[StateReady] != 1 || p.Conflicts != 1 {
			t.Errorf("counts %v, conflicts %d", p.Counts, p.Conflicts)
		}
		if p, err := db.ListMachinePage(MachineQuery{Text: "poweredge"}); err != nil || p.Total != 1 || p.Machines[0].MAC != mac(1) {
			t.Errorf("search after migration: %+v %v", p, err)
		}
		if p, err := db.ListMachinePage(MachineQuery{Cluster: "c1", States: []State{StateReady}}); err != nil || p.Total != 1 || p.Machines[0].MAC != mac(2) {
			t.Errorf("filter after migration: %+v %v", p, err)
		}
	}
	check(t, db)
	// Badger's database is written anew (kv.Badger.Rebuild); etcd's is
	// converted in place, as the cut-off runs below are.
	if rewritten := strings.Contains(log.String(), "database rewritten"); rewritten != (testCluster == nil) {
		t.Errorf("database rewritten: %v, want %v (Badger only):\n%s", rewritten, testCluster == nil, log.String())
	}
	if n, keys := db.CorruptRecords(); n != 1 || keys[0] != string(machineKey(mac(9))) {
		t.Errorf("undecodable record reported as %d %v", n, keys)
	}
	if !strings.Contains(log.String(), "m/"+mac(9)) {
		t.Errorf("the undecodable record is not logged:\n%s", log.String())
	}

	// Cut off after the staging, and again halfway through moving the
	// staged records into place: each run resumes and ends complete.
	outer := t // the reopened database outlives each subtest
	for _, cut := range []string{"staged", "moving"} {
		t.Run("cut off when "+cut, func(t *testing.T) {
			writeSchema2(t, db)
			if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set(machineKey(mac(9)), []byte(`{"mac":`)) }); err != nil {
				t.Fatal(err)
			}
			if _, err := db.stageLists(); err != nil {
				t.Fatal(err)
			}
			if cut == "moving" {
				if err := db.kv.DropPrefix([]byte("m/")); err != nil {
					t.Fatal(err)
				}
				err := db.kv.Update(func(txn kv.Txn) error {
					v, err := getRaw(txn, stagedKey(mac(2)))
					if err != nil {
						return err
					}
					return txn.Set(machineKey(mac(2)), v)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			db = reopen(outer, db, dir, clk, &log)
			check(t, db)
			if n := countKeys(t, db, "mn/"); n != 0 {
				t.Errorf("%d staged records left", n)
			}
			var raw []byte
			_ = db.kv.View(func(txn kv.Txn) (err error) { raw, err = getRaw(txn, machineKey(mac(9))); return err })
			if string(raw) != `{"mac":` {
				t.Errorf("the undecodable record became %q; it must be kept as it was", raw)
			}
		})
	}
}
