package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/foundry-appliance/foundry/store/kv"
)

// maxRecord bounds one stored value. It keeps every record far below
// Badger's batch and value-log limits, so a huge input is refused with a
// clear error instead of failing deep inside a commit.
const maxRecord = 1 << 20

// getJSON decodes the value at key into v; ErrNotFound when absent.
func getJSON(txn kv.Txn, key []byte, v any) error {
	err := txn.Get(key, func(b []byte) error { return decodeValue(key, b, v) })
	if errors.Is(err, kv.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

// getRaw returns a copy of the value at key; ErrNotFound when absent.
func getRaw(txn kv.Txn, key []byte) ([]byte, error) {
	v, err := kv.GetCopy(txn, key)
	if errors.Is(err, kv.ErrNotFound) {
		return nil, ErrNotFound
	}
	return v, err
}

// setJSON encodes v and stores it at key.
func setJSON(txn kv.Txn, key []byte, v any) error {
	b, err := encodeJSON(v)
	if err != nil {
		return err
	}
	return txn.Set(key, b)
}

// encodeJSON encodes a record, refusing one above maxRecord.
func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrInvalid, err)
	}
	if len(b) > maxRecord {
		return nil, fmt.Errorf("%w: record is %d bytes, the limit is %d", ErrInvalid, len(b), maxRecord)
	}
	return b, nil
}

// has reports whether key exists.
func has(txn kv.Txn, key []byte) (bool, error) {
	err := txn.Get(key, nil)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// touch rewrites the value at key unchanged. A transaction that establishes
// a reference to a record touches it, so that a concurrent transaction that
// read the record (to delete it, say) conflicts and re-checks its rule.
// Returns ErrNotFound when the record does not exist.
func touch(txn kv.Txn, key []byte) error {
	v, err := getRaw(txn, key)
	if err != nil {
		return err
	}
	return txn.Set(key, v)
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop scan")

// scan decodes every value under prefix, in key order, and calls each.
// each may return errStop to end the scan. A value that cannot be read or
// decoded is skipped, never the end of the scan: it is passed to report
// when one is given (a DB's corrupt.report logs and counts it).
func scan[T any](txn kv.Txn, prefix string, each func(T) error, report ...func(key []byte, err error)) error {
	opt := kv.IterOptions{}
	opt.Prefix = []byte(prefix)
	it := txn.NewIterator(opt)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var v T
		err := it.Value(func(b []byte) error { return decodeValue(it.Key(), b, &v) })
		if err != nil {
			for _, r := range report {
				r(kv.KeyCopy(it), err)
			}
			continue
		}
		if err := each(v); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// list returns every record under prefix in key order (never nil, so that
// an empty list encodes as []). Records that do not decode are reported
// and left out.
func list[T any](db *DB, prefix string) ([]T, error) {
	out := []T{}
	err := db.kv.View(func(txn kv.Txn) error {
		return scan(txn, prefix, func(v T) error {
			out = append(out, v)
			return nil
		}, db.corrupt.report)
	})
	return out, err
}
