package store

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Heartbeats let the appliances that share a store watch one another
// without trusting one another's clocks: each bumps a counter under its
// name, and a peer that reads the same value for longer than it allows,
// by its own monotonic clock, takes the writer for dead (the DHCP pair,
// dhcp.Pair). An appliance that stops cleanly says so (HeartbeatStop), so
// that its peer need not wait for the counter to stand still.

func heartbeatKey(name string) []byte { return []byte("hb/" + name) }

// stoppedKey marks a goodbye. It is a key of its own, not a change to the
// counter's value, so that an appliance of an earlier release, reading the
// counter only, still sees a number that stands still (and fails over
// after its timeout) rather than a value it cannot read (and never does).
func stoppedKey(name string) []byte { return []byte("hb-stopped/" + name) }

// HeartbeatState is what an appliance reads of another's heartbeat.
type HeartbeatState struct {
	// Count moves on with each Heartbeat.
	Count uint64
	// Stopped: the appliance said goodbye (HeartbeatStop) and has not
	// beaten since.
	Stopped bool
}

// Heartbeat adds one to the heartbeat counter of name (a resource name,
// names.CheckName), durably.
func (db *DB) Heartbeat(name string) error {
	if err := checkName("appliance", name); err != nil {
		return fmt.Errorf("heartbeat %s: %w", ref(name), err)
	}
	key := heartbeatKey(name)
	err := db.update(func(txn kv.Txn) error {
		n, err := readHeartbeat(txn, key)
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
			return err
		}
		if err := txn.Set(key, strconv.AppendUint(nil, n+1, 10)); err != nil {
			return err
		}
		// Beating again takes back a goodbye, in the same commit.
		return txn.Delete(stoppedKey(name))
	})
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", name, err)
	}
	return nil
}

// HeartbeatStop says, durably, that name has stopped: until its next
// Heartbeat, HeartbeatValue reports it Stopped.
func (db *DB) HeartbeatStop(name string) error {
	if err := checkName("appliance", name); err != nil {
		return fmt.Errorf("heartbeat goodbye %s: %w", ref(name), err)
	}
	if err := db.update(func(txn kv.Txn) error { return txn.Set(stoppedKey(name), []byte("stopped")) }); err != nil {
		return fmt.Errorf("heartbeat goodbye %s: %w", name, err)
	}
	return nil
}

// HeartbeatValue returns the heartbeat of name; ErrNotFound when name has
// never written one.
func (db *DB) HeartbeatValue(name string) (HeartbeatState, error) {
	if err := checkName("appliance", name); err != nil {
		return HeartbeatState{}, fmt.Errorf("read heartbeat %s: %w", ref(name), err)
	}
	var hs HeartbeatState
	err := db.kv.View(func(txn kv.Txn) (err error) {
		if hs.Count, err = readHeartbeat(txn, heartbeatKey(name)); err != nil {
			return err
		}
		_, err = getRaw(txn, stoppedKey(name))
		switch {
		case err == nil:
			hs.Stopped = true
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return nil
	})
	if err != nil {
		return HeartbeatState{}, fmt.Errorf("read heartbeat %s: %w", name, err)
	}
	return hs, nil
}

func readHeartbeat(txn kv.Txn, key []byte) (uint64, error) {
	b, err := getRaw(txn, key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		// Rewritten by the next Heartbeat; until then it reads as a value
		// that does not change.
		return 0, fmt.Errorf("decode %s: %w: %v", key, ErrCorrupt, err)
	}
	return n, nil
}
