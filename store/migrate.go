package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// migrateLists converts a database of schema 2, whose machine records
// hold their inventories, to schema 3 (index.go): each inventory moves to
// its own key, each record gains its summary, and the list indexes, search
// rows and conflict keys are built. It writes in batches, not one
// transaction (a large database does not fit one).
//
// Records are not rewritten in place: Badger would keep each old version,
// inventory and all, until a compaction reached it, and every scan of the
// machines would step over them (2.3 s and 400 MB of mapped tables for a
// key scan of 100,000 machines after an in-place migration; 0.14 s after).
// The new records are staged under mn/, the old ones dropped whole
// (DropPrefix rewrites only the tables that hold them), and the staged
// ones moved into place. meta/migrate3 marks the staging done, so that a
// migration cut off after it resumes there, and one cut off before starts
// again from the untouched records.
func (db *DB) migrateLists() error {
	// Write batches bypass update's guard (space.go): refuse here, with
	// the guard's message, rather than fill the disk halfway through.
	if err := db.space.check(); err != nil {
		return fmt.Errorf("refusing to migrate: %w", err)
	}
	var staged bool
	err := db.kv.View(func(txn kv.Txn) (err error) {
		staged, err = has(txn, keyMigrate3)
		return err
	})
	if err != nil {
		return err
	}
	if rb, ok := db.kv.(rebuilder); ok && !staged {
		n, err := db.rebuildLists(rb)
		if err == nil {
			db.log.Info("store migrated to schema 3: machine lists read indexes and summaries (database rewritten)", "machines", n)
			return nil
		}
		if !errors.Is(err, kv.ErrUnsupported) {
			return err
		}
	}
	n := 0
	if !staged {
		if n, err = db.stageLists(); err != nil {
			return err
		}
	}
	if err := db.kv.DropPrefix([]byte("m/")); err != nil {
		return fmt.Errorf("drop the old machine records: %w", err)
	}
	if err := db.moveStaged(); err != nil {
		return fmt.Errorf("move the machine records into place: %w", err)
	}
	if err := db.kv.DropPrefix([]byte("mn/")); err != nil {
		return fmt.Errorf("drop the staged machine records: %w", err)
	}
	err = db.update(func(txn kv.Txn) error { return txn.Delete(keyMigrate3) })
	if err != nil {
		return err
	}
	db.log.Info("store migrated to schema 3: machine lists read indexes and summaries", "machines", n)
	return nil
}

var keyMigrate3 = []byte("meta/migrate3")

// rebuilder is an engine that can replace its whole content in bulk
// (kv.Badger.Rebuild).
type rebuilder interface {
	Rebuild(fill func(*kv.BulkWriter) error) error
}

// Streams of the schema 3 rebuild: records and inventories come in MAC
// order, as the old records are read; everything else is sorted by the
// writer.
const (
	streamRecords     = 1
	streamInventories = 2
)

// rebuiltPrefixes are the keys the schema 3 rebuild writes again from the
// records (or drops, for staged records of an earlier in-place attempt).
var rebuiltPrefixes = [][]byte{[]byte("mi/"), []byte("mn/"), []byte("x/"), []byte("xq/"), []byte("xk/"), []byte("xe/"), []byte("xb/")}

// rebuildLists migrates to schema 3 by writing a new database in one pass
// over the old one (kv.Badger.Rebuild), so that Badger has no levels to
// rebalance afterwards: converting 100,000 machines in place left
// compactions that went past 300 MiB at the next start
// (docs/robustness.md). The old database is untouched until the new one
// is complete; it needs room for both on the data disk.
func (db *DB) rebuildLists(rb rebuilder) (int, error) {
	if err := db.space.roomForCopy(); err != nil {
		return 0, fmt.Errorf("refusing to migrate: %w", err)
	}
	n := 0
	err := rb.Rebuild(func(w *kv.BulkWriter) error {
		n = 0
		idx := bulkIndex{w}
		return db.kv.View(func(txn kv.Txn) error {
			it := txn.NewIterator(kv.IterOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Key()
				var err error
				switch {
				case bytes.HasPrefix(k, []byte("m/")):
					err = it.Value(func(b []byte) error {
						mac := string(k[2:])
						rec, inv, err := toSchema3(txn, mac, b, idx)
						if undecodable(err) {
							// Kept as it is, undecodable: reported, never lost.
							db.corrupt.report(k, fmt.Errorf("%w: %v", ErrCorrupt, err))
							return w.Put(streamRecords, k, b)
						}
						if err != nil {
							return fmt.Errorf("machine %s: %w", mac, err)
						}
						if inv != nil {
							if err := w.Put(streamInventories, inventoryKey(mac), inv); err != nil {
								return err
							}
						}
						n++
						return w.Put(streamRecords, k, rec)
					})
				case bytes.Equal(k, keySchema) || slices.ContainsFunc(rebuiltPrefixes, func(p []byte) bool { return bytes.HasPrefix(k, p) }):
				default:
					err = it.Value(func(b []byte) error { return w.Add(k, b) })
				}
				if err != nil {
					return err
				}
			}
			return w.Add(keySchema, []byte("3"))
		})
	})
	if err != nil {
		return 0, fmt.Errorf("rewrite the database: %w", err)
	}
	return n, nil
}

// bulkIndex writes index entries, which come in no useful order, to a
// rebuild's sorted entries.
type bulkIndex struct{ w *kv.BulkWriter }

func (b bulkIndex) Set(k, v []byte) error { return b.w.Add(k, v) }
func (b bulkIndex) Delete(k []byte) error {
	return fmt.Errorf("delete %q: a rebuild writes a new database and deletes nothing", k)
}

// stageLists writes every machine's inventory to its own key, its new
// record under mn/ and its index entries, search row and conflict key,
// then marks the staging done.
func (db *DB) stageLists() (int, error) {
	for _, p := range []string{"x/", "xq/", "xk/", "xe/", "xb/", "mn/"} {
		if err := db.dropPrefix(p); err != nil {
			return 0, err
		}
	}
	wb := db.kv.NewBatch()
	n := 0
	err := db.eachMachineValue(func(txn kv.Txn, mac string, b []byte) error {
		rec, inv, err := toSchema3(txn, mac, b, wb)
		if err != nil {
			// Kept as it is, undecodable: reported, never lost.
			if werr := wb.Set(stagedKey(mac), append([]byte(nil), b...)); werr != nil {
				return werr
			}
			return err
		}
		if inv != nil {
			if err := wb.Set(inventoryKey(mac), inv); err != nil {
				return err
			}
		}
		n++
		return wb.Set(stagedKey(mac), rec)
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err != nil {
		return 0, fmt.Errorf("stage machines: %w", err)
	}
	return n, db.update(func(txn kv.Txn) error { return txn.Set(keyMigrate3, nil) })
}

func stagedKey(mac string) []byte { return []byte("mn/" + mac) }

// toSchema3 converts the schema-2 record b of mac: it returns the record
// without its inventory and with its summary, and the inventory packed
// for its own key (nil when there is none), and writes the record's index
// entries, search row and conflict key to idx. An error that is a JSON
// decoding error means b is undecodable.
func toSchema3(txn kv.Txn, mac string, b []byte, idx writer) (rec, inv []byte, err error) {
	var m Machine
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, err
	}
	if len(m.Inventory) > 0 {
		inv = packInventory(m.Inventory)
	}
	if len(m.Inventory) > 0 || m.Summary.Sum == 0 {
		m.Summary = SummarizeInventory(m.Inventory)
	}
	m.Inventory = nil
	if rec, err = json.Marshal(m); err != nil {
		return nil, nil, err
	}
	remotes, err := sessionRemotes(txn, mac)
	if err != nil {
		return nil, nil, err
	}
	if len(sessionIDs(txn, mac)) >= 2 {
		if err := idx.Set(conflictKey(mac), nil); err != nil {
			return nil, nil, err
		}
	}
	return rec, inv, writeIndexes(idx, nil, &m, remotes)
}

// moveStaged copies the staged records to m/.
func (db *DB) moveStaged() error {
	wb := db.kv.NewBatch()
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("mn/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := kv.ValueCopy(it)
			if err != nil {
				return err
			}
			if err := wb.Set(machineKey(string(it.Key()[3:])), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		wb.Cancel()
		return err
	}
	return wb.Flush()
}

// eachMachineValue calls fn with every machine record's key and value. A
// record that fn cannot decode is reported and left as it is: it cannot be
// listed, but it must not keep the appliance from starting.
func (db *DB) eachMachineValue(fn func(txn kv.Txn, mac string, value []byte) error) error {
	return db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("m/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			mac := string(it.Key()[2:])
			err := it.Value(func(b []byte) error { return fn(txn, mac, b) })
			if undecodable(err) {
				db.corrupt.report(kv.KeyCopy(it), fmt.Errorf("%w: %v", ErrCorrupt, err))
				continue
			}
			if err != nil {
				return fmt.Errorf("machine %s: %w", mac, err)
			}
		}
		return nil
	})
}

// undecodable says err is JSON's: the record is not one this build reads.
func undecodable(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syn) || errors.As(err, &typ)
}

// buildSchema4 writes the expiry entry of every temporary machine and the
// BMC entry of every power-managed one (index.go): schema 3 databases
// have neither.
func (db *DB) buildSchema4() error {
	if err := db.space.check(); err != nil {
		return fmt.Errorf("refusing to migrate: %w", err)
	}
	wb := db.kv.NewBatch()
	n := 0
	err := db.eachMachineValue(func(_ kv.Txn, _ string, b []byte) error {
		var m Machine
		if err := json.Unmarshal(b, &m); err != nil {
			return err // reported and skipped by eachMachineValue
		}
		if m.PowerManaged() {
			if err := wb.Set([]byte(bmcPrefix+m.MAC), nil); err != nil {
				return err
			}
		}
		if !m.Temporary {
			return nil
		}
		n++
		return wb.Set(expiryKey(&m), nil)
	})
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if err != nil {
		return fmt.Errorf("build expiry and BMC entries: %w", err)
	}
	if n > 0 {
		db.log.Info("store migrated to schema 4: expiry reads only temporary machines", "temporary", n)
	}
	return nil
}

// buildSchema5 writes the address claim of every stored lease (leases.go):
// schema 4 databases have none. Two records on one address (a crash
// between a new lease and the deletion of the expired one it displaced)
// keep the later lease, as the DHCP server did when it loaded them; the
// other record is deleted. Claims are dropped and written again from the
// leases, so a build cut off is simply run again.
func (db *DB) buildSchema5() error {
	if err := db.space.check(); err != nil {
		return fmt.Errorf("refusing to migrate: %w", err)
	}
	type holder struct {
		key     []byte
		mac     string
		expires time.Time
	}
	claims := map[string]holder{} // claim key → the lease that keeps it
	var losers [][]byte
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("l/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			segment, mac, ok := strings.Cut(string(it.Key()[2:]), "/")
			var l Lease
			err := it.Value(func(b []byte) error { return decodeValue(it.Key(), b, &l) })
			if err != nil || !ok || !l.IP.IsValid() {
				if err == nil {
					err = fmt.Errorf("%w: lease without an address", ErrCorrupt)
				}
				db.corrupt.report(kv.KeyCopy(it), err)
				continue
			}
			h := holder{key: kv.KeyCopy(it), mac: mac, expires: l.Expires}
			ck := string(claimKey(segment, l.IP))
			if o, dup := claims[ck]; dup {
				if !h.expires.After(o.expires) {
					h, o = o, h
				}
				losers = append(losers, o.key)
			}
			claims[ck] = h
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read leases: %w", err)
	}
	if err := db.dropPrefix("la/"); err != nil {
		return err
	}
	wb := db.kv.NewBatch()
	for ck, h := range claims {
		if err := wb.Set([]byte(ck), []byte(h.mac)); err != nil {
			wb.Cancel()
			return fmt.Errorf("claim addresses: %w", err)
		}
	}
	for _, k := range losers {
		if err := wb.Delete(k); err != nil {
			wb.Cancel()
			return fmt.Errorf("claim addresses: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("claim addresses: %w", err)
	}
	if len(claims) > 0 {
		db.log.Info("store migrated to schema 5: every lease claims its address", "claims", len(claims), "displaced_leases_deleted", len(losers))
	}
	return nil
}

// dropPrefix deletes every key under prefix, in batches.
func (db *DB) dropPrefix(prefix string) error {
	wb := db.kv.NewBatch()
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := wb.Delete(kv.KeyCopy(it)); err != nil {
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
