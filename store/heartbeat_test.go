package store

import (
	"errors"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
)

// TestHeartbeat: each call moves the counter on, as the other appliance of
// a pair reads it; an unwritten one is ErrNotFound, a damaged one starts
// again instead of stopping the heartbeat.
func TestHeartbeat(t *testing.T) {
	db, _, _ := openTest(t)
	if _, err := db.HeartbeatValue("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("never written: %v, want ErrNotFound", err)
	}
	for want := uint64(1); want <= 3; want++ {
		if err := db.Heartbeat("a"); err != nil {
			t.Fatal(err)
		}
		if got, err := db.HeartbeatValue("a"); err != nil || got != want {
			t.Fatalf("after %d beats: %d, %v", want, got, err)
		}
	}
	if _, err := db.HeartbeatValue("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another name: %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"", "a/b", "-x"} {
		if err := db.Heartbeat(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Heartbeat(%q) = %v, want ErrInvalid", bad, err)
		}
		if _, err := db.HeartbeatValue(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("HeartbeatValue(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set(heartbeatKey("a"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.HeartbeatValue("a"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged value: %v, want ErrCorrupt", err)
	}
	if err := db.Heartbeat("a"); err != nil {
		t.Fatalf("a damaged counter stops the heartbeat: %v", err)
	}
	if got, err := db.HeartbeatValue("a"); err != nil || got != 1 {
		t.Errorf("after a damaged value: %d, %v; want 1", got, err)
	}
}
