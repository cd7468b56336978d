package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/store/kv"
	"slices"
	"testing"
	"time"
)

func TestExpireMachines(t *testing.T) {
	db, clk, _ := openTest(t)
	now := clk.Now()
	machines := []struct {
		m      Machine
		expire bool
	}{
		{Machine{MAC: mac(1), Temporary: true, ExpiresAt: now.Add(-time.Hour)}, true},
		{Machine{MAC: mac(2), Temporary: true, ExpiresAt: now}, true}, // due at exactly now
		{Machine{MAC: mac(3), Temporary: true, ExpiresAt: now.Add(time.Second)}, false},
		{Machine{MAC: mac(4), Temporary: false, ExpiresAt: now.Add(-time.Hour)}, false}, // approved: permanent
		{Machine{MAC: mac(5)}, false},
	}
	var want []string
	for _, tt := range machines {
		mustCreate(t, db, tt.m)
		if tt.expire {
			want = append(want, tt.m.MAC)
		}
	}
	events, cancel := db.Subscribe(10)
	defer cancel()

	gone, err := db.ExpireMachines()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range gone {
		got = append(got, m.MAC)
	}
	if !slices.Equal(got, want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	for _, tt := range machines {
		_, err := db.GetMachine(tt.m.MAC)
		if exists := err == nil; exists == tt.expire {
			t.Errorf("%s: exists=%v after expiry (%v)", tt.m.MAC, exists, err)
		}
		entries, _ := db.ListAudit(AuditFilter{MAC: tt.m.MAC, Actor: "system", Action: "expire"})
		if (len(entries) == 1) != tt.expire {
			t.Errorf("%s: %d expiry audit entries", tt.m.MAC, len(entries))
		}
	}
	for _, mc := range want {
		ev := <-events
		if ev.Type != EventDeleted || ev.Machine.MAC != mc {
			t.Errorf("event %s %s, want deleted %s", ev.Type, ev.Machine.MAC, mc)
		}
	}
	if again, err := db.ExpireMachines(); err != nil || len(again) != 0 {
		t.Errorf("second ExpireMachines = %v, %v; want nothing", again, err)
	}

	// Time passes: the third machine becomes due.
	clk.Add(time.Second)
	gone, err = db.ExpireMachines()
	if err != nil || len(gone) != 1 || gone[0].MAC != mac(3) {
		t.Errorf("after a second: %+v, %v", gone, err)
	}
}

func TestRunExpiry(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Temporary: true, ExpiresAt: clk.Now().Add(time.Minute)})
	nonce, err := db.IssueNonce(mac(2), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.RunExpiry(ctx, 10*time.Millisecond) }()

	clk.Add(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := db.GetMachine(mac(1))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RunExpiry did not expire the machine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunExpiry returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunExpiry did not stop when its context ended")
	}
	// The expired nonce was swept from storage, not only refused.
	if n, err := db.sweepNonces(); err != nil || n != 0 {
		t.Errorf("sweep after RunExpiry found %d expired nonces (%v)", n, err)
	}
	if _, err := db.CheckNonce(nonce); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckNonce of expired nonce: %v", err)
	}
}

// TestExpiryReadsOnlyDueMachines: the minute's expiry round at 5,000
// permanent machines (and a few temporary ones not yet due) reads expiry
// entries, not records — it read every record before schema 4, a scan
// that at 100,000 machines took seconds each minute and held the
// database's pages resident.
func TestExpiryReadsOnlyDueMachines(t *testing.T) {
	db, clk, _ := openTest(t)
	fill(t, db, 5000, 2<<10)
	temp := func(i int) string { return fmt.Sprintf("52:55:00:00:00:%02x", i) } // beside fill's MACs
	for i := range 20 {
		mustCreate(t, db, Machine{MAC: temp(i + 1), Temporary: true, ExpiresAt: clk.Now().Add(time.Duration(i+1) * time.Minute)})
	}
	var gone []Machine
	var err error
	if got := allocated(func() { gone, err = db.ExpireMachines() }); got > 64<<10 {
		t.Errorf("an expiry round with nothing due allocated %d bytes: is it reading every record?", got)
	}
	if err != nil || len(gone) != 0 {
		t.Fatalf("nothing is due: expired %d, %v", len(gone), err)
	}
	clk.Add(5 * time.Minute)
	if gone, err = db.ExpireMachines(); err != nil || len(gone) != 5 {
		t.Fatalf("after 5 minutes: expired %d, %v; want 5", len(gone), err)
	}
	for i, m := range gone {
		if m.MAC != temp(i+1) {
			t.Errorf("expired %s in place %d, want %s", m.MAC, i, temp(i+1))
		}
	}
}

// TestExpiryEntriesFollowTheRecord: approval (permanent), a new expiry
// time and deletion move or remove the machine's expiry entry in the same
// transaction, so no change leaves a machine expiring at a stale time.
func TestExpiryEntriesFollowTheRecord(t *testing.T) {
	db, clk, _ := openTest(t)
	now := clk.Now()
	mustCreate(t, db, Machine{MAC: mac(1), Temporary: true, ExpiresAt: now.Add(time.Minute)})
	mustCreate(t, db, Machine{MAC: mac(2), Temporary: true, ExpiresAt: now.Add(time.Minute)})
	mustCreate(t, db, Machine{MAC: mac(3), Temporary: true, ExpiresAt: now.Add(time.Minute)})
	if _, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Temporary, m.ExpiresAt = false, time.Time{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateMachine(mac(2), admin, func(m *Machine) error { m.ExpiresAt = now.Add(time.Hour); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMachine(mac(3), admin); err != nil {
		t.Fatal(err)
	}
	keys := expiryKeys(t, db)
	want := []string{string(expiryKey(&Machine{MAC: mac(2), ExpiresAt: now.Add(time.Hour)}))}
	if !slices.Equal(keys, want) {
		t.Errorf("expiry entries %q, want %q", keys, want)
	}
	clk.Add(2 * time.Minute)
	if gone, err := db.ExpireMachines(); err != nil || len(gone) != 0 {
		t.Errorf("nothing is due after the changes: expired %+v, %v", gone, err)
	}
}

// TestSchema3GetsExpiryEntries: a database written before the expiry
// entries (schema 3) gets them when it is opened, and its temporary
// machines still expire.
func TestSchema3GetsExpiryEntries(t *testing.T) {
	db, clk, dir := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Temporary: true, ExpiresAt: clk.Now().Add(time.Minute)})
	mustCreate(t, db, Machine{MAC: mac(2)})
	err := db.update(func(txn kv.Txn) error {
		if err := txn.Delete(expiryKey(&Machine{MAC: mac(1), ExpiresAt: clk.Now().Add(time.Minute)})); err != nil {
			return err
		}
		return setJSON(txn, keySchema, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys := expiryKeys(t, db); len(keys) != 0 {
		t.Fatalf("the schema 3 database still has expiry entries %q", keys)
	}
	db = reopen(t, db, dir, clk, nil)
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Errorf("schema %d, %v after the upgrade", v, err)
	}
	if keys := expiryKeys(t, db); len(keys) != 1 {
		t.Errorf("expiry entries after the upgrade: %q, want one", keys)
	}
	clk.Add(time.Minute)
	if gone, err := db.ExpireMachines(); err != nil || len(gone) != 1 || gone[0].MAC != mac(1) {
		t.Errorf("expired %+v, %v; want %s", gone, err, mac(1))
	}
}

func expiryKeys(t *testing.T, db *DB) []string {
	t.Helper()
	var keys []string
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(expiryPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(kv.KeyCopy(it)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestPowerManagedMachines: the power poller's list follows each machine's
// BMC credential through writes and deletes, and a schema 3 database gets
// its entries when it is opened.
func TestPowerManagedMachines(t *testing.T) {
	db, clk, dir := openTest(t)
	bmc := func() *BMC {
		return &BMC{Protocol: "ipmi", Address: "10.0.0.9", Username: "foundry", Secret: []byte("sealed"), Source: BMCByHand, UpdatedAt: clk.Now()}
	}
	mustCreate(t, db, Machine{MAC: mac(1), BMC: bmc()})
	mustCreate(t, db, Machine{MAC: mac(2), BMC: bmc()})
	mustCreate(t, db, Machine{MAC: mac(3), BMC: bmc()})
	mustCreate(t, db, Machine{MAC: mac(4)})
	if _, err := db.UpdateMachine(mac(2), admin, func(m *Machine) error { m.BMC.Secret = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMachine(mac(3), admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateMachine(mac(4), admin, func(m *Machine) error { m.BMC = bmc(); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{mac(1), mac(4)}
	if got, err := db.PowerManagedMachines(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("PowerManagedMachines = %v, %v; want %v", got, err, want)
	}

	// The same database as schema 3 wrote it: no BMC entries.
	err := db.update(func(txn kv.Txn) error {
		for _, m := range want {
			if err := txn.Delete([]byte(bmcPrefix + m)); err != nil {
				return err
			}
		}
		return setJSON(txn, keySchema, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := db.PowerManagedMachines(); len(got) != 0 {
		t.Fatalf("entries left: %v", got)
	}
	db = reopen(t, db, dir, clk, nil)
	if got, err := db.PowerManagedMachines(); err != nil || !slices.Equal(got, want) {
		t.Errorf("after the upgrade: %v, %v; want %v", got, err, want)
	}
}
