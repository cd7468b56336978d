package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
)

// The schema 3 migration writes in batches, which update's guard does not
// see: on a full disk it must refuse before it writes anything, with the
// guard's message, and run once there is space.
func TestMigrationRefusedOnFullDisk(t *testing.T) {
	badgerOnly(t)
	db, clk, dir := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), State: StateInventoried, Hostname: "dell-1", Inventory: json.RawMessage(dellInventory)})
	mustCreate(t, db, Machine{MAC: mac(2), State: StateInventoried, Hostname: "dell-2", Inventory: json.RawMessage(dellInventory)})
	writeSchema2(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Room for Open itself (pendingFlush plus its slack), not for writes.
	var free atomic.Int64
	free.Store(32 << 20)
	opt := Options{Now: clk.Now, SpaceReserve: 64 << 20, FreeSpace: func(string) (int64, error) { return free.Load(), nil }}
	db, err := Open(dir, opt)
	if err == nil {
		db.Close()
		t.Fatal("Open migrated a schema-2 database on a full disk")
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "migrate schema 2 to 3") || !strings.Contains(err.Error(), "writes resume once") {
		t.Errorf("Open on a full disk: %v; want ErrNoSpace naming the migration and when writes resume", err)
	}
	bdb, err := openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	var v, inventories int
	err = bdb.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("mi/")})
		for it.Rewind(); it.Valid(); it.Next() {
			inventories++
		}
		it.Close()
		return getJSON(txn, keySchema, &v)
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil || v != 2 || inventories != 0 {
		t.Errorf("after the refusal: schema %d, %d inventories moved, %v; want schema 2 untouched", v, inventories, err)
	}

	free.Store(1 << 40)
	db, err = Open(dir, opt)
	if err != nil {
		t.Fatalf("Open with space again: %v", err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Errorf("schema after the migration: %d, %v", v, err)
	}
	if m, err := db.GetMachine(mac(2)); err != nil || string(m.Inventory) != dellInventory {
		t.Errorf("machine after the migration: %s, %v", m.Inventory, err)
	}
}

// The rebuild of schema 3 writes a second copy of the database beside the
// first: with room for writes but not for that copy, Open refuses with a
// message saying so, and the database stays as it was.
func TestMigrationRefusedWithoutRoomForACopy(t *testing.T) {
	badgerOnly(t)
	db, clk, dir := openTest(t)
	for i := range 40 {
		mustCreate(t, db, Machine{MAC: mac(i + 1), State: StateInventoried, Hostname: fmt.Sprintf("dell-%d", i+1), Inventory: json.RawMessage(dellInventory)})
	}
	writeSchema2(t, db)
	// Bulk the database past what Open itself needs free (openSlack), with
	// bytes that do not compress, under a prefix the store does not read.
	filler := make([]byte, 6<<20)
	rand.NewChaCha8([32]byte{1}).Read(filler)
	if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set([]byte("zz/filler"), filler) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	need := dirUsage(dir, func(name string) bool { return name != ballastName })
	const reserve = 1 << 20
	var free atomic.Int64
	free.Store(reserve + need - 64<<10)
	opt := Options{Now: clk.Now, SpaceReserve: reserve, FreeSpace: func(string) (int64, error) { return free.Load(), nil }}
	db, err := Open(dir, opt)
	if err == nil {
		db.Close()
		t.Fatalf("Open rewrote a %d-byte database with %d bytes free above the reserve", need, need-64<<10)
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "migrate schema 2 to 3") || !strings.Contains(err.Error(), "needs") {
		t.Errorf("Open without room for the copy: %v; want ErrNoSpace naming the migration and what it needs", err)
	}
	if _, err := os.Stat(dir + ".rebuild"); err == nil {
		t.Error("a refused rebuild left its directory")
	}
	free.Store(1 << 40)
	db, err = Open(dir, opt)
	if err != nil {
		t.Fatalf("Open with space again: %v", err)
	}
	defer db.Close()
	if m, err := db.GetMachine(mac(7)); err != nil || string(m.Inventory) != dellInventory {
		t.Errorf("machine after the migration: %s, %v", m.Inventory, err)
	}
}
