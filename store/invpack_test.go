package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"testing"
)

// Inventories are stored compressed; values stored as plain JSON (by
// databases written before) read as they are; a damaged compressed value
// is ErrCorrupt, not a crash or a huge allocation.
func TestInventoriesCompressed(t *testing.T) {
	db, clk, _ := openTest(t)
	inv := json.RawMessage(dellInventory)
	mustCreate(t, db, Machine{MAC: mac(1), Inventory: inv})
	s := register(t, db, mac(1), testSession(1, clk), dellInventory)
	raw := func(k []byte) []byte {
		var v []byte
		if err := db.kv.View(func(txn kv.Txn) (err error) { v, err = getRaw(txn, k); return err }); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, k := range [][]byte{inventoryKey(mac(1)), sessionInvKey(s.ID)} {
		if v := raw(k); !bytes.HasPrefix(v, zstdMagic) || len(v) >= len(inv) {
			t.Errorf("%s holds %d bytes, not compressed (%d of JSON)", k, len(v), len(inv))
		}
	}
	if m, err := db.GetMachine(mac(1)); err != nil || string(m.Inventory) != dellInventory || m.Summary.Vendor != "Dell Inc." {
		t.Fatalf("get: %s %+v %v", m.Inventory, m.Summary, err)
	}
	if got, err := db.SessionInventory(s.ID); err != nil || string(got) != dellInventory {
		t.Fatalf("session inventory: %s %v", got, err)
	}

	set := func(k []byte, v []byte) {
		t.Helper()
		if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set(k, v) }); err != nil {
			t.Fatal(err)
		}
	}
	set(inventoryKey(mac(1)), []byte(dellInventory))
	set(sessionInvKey(s.ID), []byte(`{"old":true}`))
	if m, err := db.GetMachine(mac(1)); err != nil || string(m.Inventory) != dellInventory {
		t.Errorf("plain JSON kept before: %s %v", m.Inventory, err)
	}
	if got, err := db.SessionInventory(s.ID); err != nil || string(got) != `{"old":true}` {
		t.Errorf("plain session inventory: %s %v", got, err)
	}
	// A frame header that claims a huge content size, then garbage.
	set(inventoryKey(mac(1)), append(append([]byte{}, zstdMagic...), 0xa4, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3))
	if _, err := db.GetMachine(mac(1)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged inventory: %v, want ErrCorrupt", err)
	}
	if p, err := db.ListMachinePage(MachineQuery{}); err != nil || len(p.Machines) != 1 {
		t.Errorf("a list does not read inventories, damaged or not: %v", err)
	}
}
