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
// dhcp.Pair).

func heartbeatKey(name string) []byte { return []byte("hb/" + name) }

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
		return txn.Set(key, strconv.AppendUint(nil, n+1, 10))
	})
	if err != nil {
		return fmt.Errorf("heartbeat %s: %w", name, err)
	}
	return nil
}

// HeartbeatValue returns the heartbeat counter of name; ErrNotFound when
// name has never written one.
func (db *DB) HeartbeatValue(name string) (uint64, error) {
	if err := checkName("appliance", name); err != nil {
		return 0, fmt.Errorf("read heartbeat %s: %w", ref(name), err)
	}
	var n uint64
	err := db.kv.View(func(txn kv.Txn) (err error) {
		n, err = readHeartbeat(txn, heartbeatKey(name))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read heartbeat %s: %w", name, err)
	}
	return n, nil
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
