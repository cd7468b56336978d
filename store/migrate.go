package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// migrateLists converts a database of schema 2, whose machine records
// hold their inventories, to schema 3 (index.go): each inventory moves to
// its own key, each record gains its summary, and the list indexes, search
// rows and conflict keys are built. It writes in batches, not one
// transaction (a large database does not fit one), and can be run again
// from the start when it was cut off: inventories are copied to their own
// keys, synced, before any record loses its own, and everything else is
// derived again.
func (db *DB) migrateLists() error {
	// Write batches bypass update's guard (space.go): refuse here, with
	// the guard's message, rather than fill the disk halfway through.
	if err := db.space.check(); err != nil {
		return fmt.Errorf("refusing to migrate: %w", err)
	}
	for _, p := range []string{"x/", "xq/", "xk/"} {
		if err := db.dropPrefix(p); err != nil {
			return err
		}
	}
	type legacy struct {
		Inventory json.RawMessage `json:"inventory"`
	}
	wb := db.bdb.NewWriteBatch()
	err := db.eachMachineValue(func(txn *badger.Txn, mac string, b []byte) error {
		var l legacy
		if err := json.Unmarshal(b, &l); err != nil || len(l.Inventory) == 0 {
			return err
		}
		return wb.Set(inventoryKey(mac), l.Inventory)
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err != nil {
		return fmt.Errorf("move inventories: %w", err)
	}
	wb = db.bdb.NewWriteBatch()
	n := 0
	err = db.eachMachineValue(func(txn *badger.Txn, mac string, b []byte) error {
		var m Machine
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		switch {
		case len(m.Inventory) > 0:
			m.Summary = SummarizeInventory(m.Inventory)
		case m.Summary.Sum == 0:
			// Moved by a run that was cut off before it rewrote the record.
			inv, err := getRaw(txn, inventoryKey(mac))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			m.Summary = SummarizeInventory(inv)
		}
		m.Inventory = nil
		rec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := wb.Set(machineKey(mac), rec); err != nil {
			return err
		}
		remotes, err := sessionRemotes(txn, mac)
		if err != nil {
			return err
		}
		if len(sessionIDs(txn, mac)) >= 2 {
			if err := wb.Set(conflictKey(mac), nil); err != nil {
				return err
			}
		}
		n++
		return writeIndexes(wb, nil, &m, remotes)
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err != nil {
		return fmt.Errorf("index machines: %w", err)
	}
	db.log.Info("store migrated to schema 3: machine lists read indexes and summaries", "machines", n)
	return nil
}

// eachMachineValue calls fn with every machine record's key and value. A
// record that fn cannot decode is reported and left as it is: it cannot be
// listed, but it must not keep the appliance from starting.
func (db *DB) eachMachineValue(fn func(txn *badger.Txn, mac string, value []byte) error) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte("m/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			mac := string(item.Key()[2:])
			err := item.Value(func(b []byte) error { return fn(txn, mac, b) })
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.As(err, &syn) || errors.As(err, &typ) {
				db.corrupt.report(item.KeyCopy(nil), fmt.Errorf("%w: %v", ErrCorrupt, err))
				continue
			}
			if err != nil {
				return fmt.Errorf("machine %s: %w", mac, err)
			}
		}
		return nil
	})
}

// dropPrefix deletes every key under prefix, in batches.
func (db *DB) dropPrefix(prefix string) error {
	wb := db.bdb.NewWriteBatch()
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		wb.Cancel()
		return fmt.Errorf("drop %s: %w", prefix, err)
	}
	return wb.Flush()
}
