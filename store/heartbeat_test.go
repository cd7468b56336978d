package store

import (
	"errors"
	"fmt"
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
		if got, err := db.HeartbeatValue("a"); err != nil || got != (HeartbeatState{Count: want}) {
			t.Fatalf("after %d beats: %+v, %v", want, got, err)
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
	if got, err := db.HeartbeatValue("a"); err != nil || got.Count != 1 {
		t.Errorf("after a damaged value: %+v, %v; want 1", got, err)
	}
}

// TestHeartbeatStop: a goodbye is read as Stopped until the next beat,
// which takes it back in its own commit; it leaves the counter's value a
// number, as an appliance that reads only the counter expects.
func TestHeartbeatStop(t *testing.T) {
	db, _, _ := openTest(t)
	if err := db.HeartbeatStop("a"); err != nil {
		t.Fatal(err)
	}
	// A goodbye of an appliance that never beat: nothing to read yet.
	if _, err := db.HeartbeatValue("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("goodbye without a beat: %v, want ErrNotFound", err)
	}
	for _, step := range []struct {
		do   func(string) error
		want HeartbeatState
	}{
		{db.Heartbeat, HeartbeatState{Count: 1}},
		{db.Heartbeat, HeartbeatState{Count: 2}},
		{db.HeartbeatStop, HeartbeatState{Count: 2, Stopped: true}},
		{db.HeartbeatStop, HeartbeatState{Count: 2, Stopped: true}},
		{db.Heartbeat, HeartbeatState{Count: 3}},
	} {
		if err := step.do("a"); err != nil {
			t.Fatal(err)
		}
		if got, err := db.HeartbeatValue("a"); err != nil || got != step.want {
			t.Fatalf("got %+v, %v; want %+v", got, err, step.want)
		}
	}
	if err := db.HeartbeatStop("a"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.HeartbeatValue("b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another name after a's goodbye: %+v, %v; want ErrNotFound", got, err)
	}
	err := db.kv.View(func(txn kv.Txn) error {
		n, err := readHeartbeat(txn, heartbeatKey("a"))
		if err == nil && n != 3 {
			err = fmt.Errorf("counter %d", n)
		}
		return err
	})
	if err != nil {
		t.Errorf("the counter after a goodbye, as an earlier release reads it: %v; want 3", err)
	}
	for _, bad := range []string{"", "a/b", "-x"} {
		if err := db.HeartbeatStop(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("HeartbeatStop(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
