package store

import (
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"net/netip"
	"sync"
	"testing"
)

// Twenty concurrent writers give twenty machines one host name and one
// static address: exactly one of each wins, the others get a TakenError
// naming the winner, and nothing else is written.
func TestUniqueUnderConcurrency(t *testing.T) {
	db, _, _ := openTest(t)
	const n = 20
	for i := 0; i < n; i++ {
		mustCreate(t, db, Machine{MAC: mac(i), Hostname: "node-" + mac(i)[12:14] + mac(i)[15:17]})
	}
	addr := netip.MustParsePrefix("10.77.0.50/24")
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.UpdateMachine(mac(i), admin, func(m *Machine) error {
				m.Hostname = "Web01"
				m.Approval = &Approval{Network: Network{Mode: "static", Address: addr}}
				return nil
			})
		}()
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		var te *TakenError
		switch {
		case err == nil && winner == "":
			winner = mac(i)
		case err == nil:
			t.Fatalf("both %s and %s took host name web01", winner, mac(i))
		case !errors.As(err, &te) || !errors.Is(err, ErrTaken):
			t.Fatalf("%s: %v, want ErrTaken", mac(i), err)
		}
	}
	if winner == "" {
		t.Fatal("nobody got the host name")
	}
	for i, err := range errs {
		var te *TakenError
		if errors.As(err, &te) && te.By != winner {
			t.Errorf("%s: taken by %s, but %s won", mac(i), te.By, winner)
		}
	}
	all, err := db.ListMachines()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.MAC != winner && (m.Hostname == "Web01" || m.Approval != nil) {
			t.Errorf("loser %s was written: %+v", m.MAC, m)
		}
	}
}

// A released value can be taken again: renames, deletion and expiry free it;
// case does not make a new name.
func TestUniqueRelease(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Hostname: "a"})
	mustCreate(t, db, Machine{MAC: mac(2), Hostname: "b"})
	rename := func(m, h string) error {
		_, err := db.UpdateMachine(m, admin, func(x *Machine) error { x.Hostname = h; return nil })
		return err
	}
	if err := rename(mac(2), "A"); !errors.Is(err, ErrTaken) {
		t.Fatalf("rename to another's name in other case: %v", err)
	}
	if _, err := db.CreateMachine(Machine{MAC: mac(3), Hostname: "a"}, admin); !errors.Is(err, ErrTaken) {
		t.Fatalf("create with a taken name: %v", err)
	}
	if _, err := db.GetMachine(mac(3)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused create left a record: %v", err)
	}
	if err := rename(mac(1), "a2"); err != nil {
		t.Fatal(err)
	}
	if err := rename(mac(2), "a"); err != nil {
		t.Fatalf("name freed by a rename: %v", err)
	}
	if err := db.DeleteMachine(mac(2), admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateMachine(Machine{MAC: mac(3), Hostname: "a"}, admin); err != nil {
		t.Fatalf("name freed by a delete: %v", err)
	}
	if err := rename(mac(3), "a"); err != nil {
		t.Fatalf("keeping one's own name: %v", err)
	}
}

// Opening a schema-1 database builds the index: a duplicate host name is
// refused afterwards, and the version becomes current.
func TestUniqueMigration(t *testing.T) {
	db, clk, dir := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Hostname: "old-name"})
	// Make it look like schema 1: no index keys, version 1.
	err := db.kv.Update(func(txn kv.Txn) error {
		if err := txn.Delete(hostKey("old-name")); err != nil {
			return err
		}
		return setJSON(txn, keySchema, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, dir, clk, nil)
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Fatalf("schema %d, %v after migration", v, err)
	}
	if _, err := db.CreateMachine(Machine{MAC: mac(2), Hostname: "OLD-NAME"}, admin); !errors.Is(err, ErrTaken) {
		t.Fatalf("duplicate of a migrated name: %v", err)
	}
}
