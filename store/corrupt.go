package store

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// Undecodable records.
//
// A value that no longer decodes (a bit flipped on the disk, a record
// written by a build with another layout) must not stop the appliance nor
// any list it is part of: scans and lists skip it, and the store reports
// it — logged once per key at error level, with the key and the decode
// error, and counted (CorruptRecords, the foundry_store_corrupt_records
// metric). Reading that one record by its key returns an error wrapping
// ErrCorrupt.

// ErrCorrupt is returned when a stored value cannot be decoded; the message
// names its key.
var ErrCorrupt = errors.New("stored record cannot be decoded")

// maxCorruptKeys bounds the keys the store remembers (and logs) as
// undecodable: a disk that garbled thousands of records must not grow the
// set or the log without bound. The count goes on.
const maxCorruptKeys = 1000

// decodeValue decodes b, the value stored at key, into v.
func decodeValue(key, b []byte, v any) error {
	if err := decodeJSON(b, v); err != nil {
		return fmt.Errorf("decode %s: %w: %v", key, ErrCorrupt, err)
	}
	return nil
}

// corruptRecords remembers the undecodable records met since Open.
type corruptRecords struct {
	log *slog.Logger

	mu    sync.Mutex
	keys  map[string]struct{}
	extra int // reports beyond maxCorruptKeys (not deduplicated)
}

// report records that the value at key did not decode (or could not be
// read) with err, and logs it the first time.
func (c *corruptRecords) report(key []byte, err error) {
	c.mu.Lock()
	if _, ok := c.keys[string(key)]; ok {
		c.mu.Unlock()
		return
	}
	if len(c.keys) >= maxCorruptKeys {
		c.extra++
		c.mu.Unlock()
		return
	}
	if c.keys == nil {
		c.keys = map[string]struct{}{}
	}
	c.keys[string(key)] = struct{}{}
	c.mu.Unlock()
	if c.log != nil {
		c.log.Error("skipping a stored record that cannot be decoded", "key", string(key), "err", err)
	}
}

// CorruptRecords returns how many stored records have failed to decode
// since Open (each key counted once, up to 1000 keys; beyond that every
// meeting counts) and up to ten of their keys, sorted. Lists and scans
// skip these records.
func (db *DB) CorruptRecords() (int, []string) {
	c := &db.corrupt
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.keys))
	for k := range c.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return len(c.keys) + c.extra, keys[:min(len(keys), 10)]
}
