// Package kv is the ordered, transactional key-value engine under the
// store. The store keeps every record (machines, leases, audit, sessions,
// …) through this interface, so that one appliance runs on an embedded
// Badger database and a group of appliances on a shared etcd cluster,
// with the same store code and the same tests above either.
//
// The contract is Badger's: serializable transactions that see their own
// writes, optimistic concurrency (a commit fails with ErrConflict when a
// concurrent commit changed what the transaction read, and the caller runs
// it again), prefix iteration in both directions, and every committed
// Update durable before it returns.
package kv

import "errors"

// Errors every engine returns (wrapped or not; test with errors.Is).
var (
	// ErrNotFound: the key is absent.
	ErrNotFound = errors.New("key not found")
	// ErrConflict: a concurrent commit changed what the transaction read;
	// nothing was written. The caller runs the transaction again.
	ErrConflict = errors.New("transaction conflict")
	// ErrReadOnly: a write was attempted in a View.
	ErrReadOnly = errors.New("write in a read-only transaction")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("engine closed")
	// ErrUnavailable: the engine cannot reach its data (an etcd cluster
	// without quorum, say). Nothing was written, or it is not known
	// whether the write committed; see the wrapped error.
	ErrUnavailable = errors.New("store backend unavailable")
	// ErrNoSpace: the engine refused a write for lack of space (etcd's
	// quota). Nothing was written.
	ErrNoSpace = errors.New("store backend out of space")
)

// Engine is an ordered key-value store with serializable transactions.
// It is safe for concurrent use.
type Engine interface {
	// View runs fn in a read-only snapshot. A write in fn fails with
	// ErrReadOnly.
	View(fn func(Txn) error) error
	// Update runs fn in a read-write transaction and commits it if fn
	// returns nil; the commit is durable when Update returns. It returns
	// ErrConflict (fn's effects discarded) when a concurrent commit
	// changed a key fn read or a range fn iterated; the caller re-runs fn,
	// which must therefore have no effects outside the transaction.
	Update(fn func(Txn) error) error
	// NewBatch returns a writer for bulk writes outside any transaction
	// (migrations, rebuilt indexes): not atomic as a whole, durable after
	// Flush.
	NewBatch() Batch
	// DropPrefix deletes every key under prefix, outside any transaction.
	DropPrefix(prefix []byte) error
	// Close releases the engine; later calls fail with ErrClosed.
	Close() error
}

// Txn is one transaction. Byte slices passed to Set must not be changed
// until the transaction ends; slices returned are valid as documented.
type Txn interface {
	// Get calls fn with the value at key; the slice is valid only during
	// fn. A nil fn only checks that the key exists. Returns ErrNotFound
	// when the key is absent (fn is then not called), or fn's error.
	Get(key []byte, fn func(val []byte) error) error
	// Set stores val at key; later reads in the transaction see it.
	Set(key, val []byte) error
	// Delete removes key; later reads in the transaction do not see it.
	Delete(key []byte) error
	// NewIterator returns an iterator over the keys under opt.Prefix, as
	// of the transaction's snapshot plus its own writes. Close it before
	// the transaction ends.
	NewIterator(opt IterOptions) Iterator
}

// ParallelReader is a View's Txn that may be read from several
// goroutines at once: Get, and iterators each used by one goroutine. An
// engine whose reads are not safe so does not implement it (etcd: a
// View's revision is fixed by its first read), and its callers read in
// one goroutine.
type ParallelReader interface {
	Txn
	// ParallelReads reports whether this Txn may be read so (false in an
	// Update, whose reads are recorded for its commit).
	ParallelReads() bool
}

// IterOptions choose what an iterator walks.
type IterOptions struct {
	// Prefix limits the iterator to keys that start with it (nil: all).
	Prefix []byte
	// Reverse walks keys in descending order.
	Reverse bool
	// KeysOnly tells the engine that Value will not be called, so it need
	// not fetch values (an engine may still do so).
	KeysOnly bool
}

// Iterator walks keys in order. Positioning: Rewind goes to the first key
// under the prefix (the last one when Reverse); Seek(k) goes to the first
// key >= k (the last key <= k when Reverse), never outside the prefix.
type Iterator interface {
	Rewind()
	Seek(key []byte)
	// Valid reports whether the iterator is at a key.
	Valid() bool
	// ValidForPrefix reports whether it is at a key that starts with p.
	ValidForPrefix(p []byte) bool
	Next()
	// Key returns the current key; valid until Next, Seek or Rewind.
	Key() []byte
	// Value calls fn with the current value, valid only during fn.
	Value(fn func(val []byte) error) error
	// Close releases the iterator.
	Close()
}

// Batch collects writes outside any transaction.
type Batch interface {
	Set(key, val []byte) error
	Delete(key []byte) error
	// Flush writes what is left and waits until every write is durable.
	Flush() error
	// Cancel drops what was not flushed.
	Cancel()
}

// KeyCopy returns a copy of an iterator's current key.
func KeyCopy(it Iterator) []byte { return append([]byte(nil), it.Key()...) }

// ValueCopy returns a copy of an iterator's current value.
func ValueCopy(it Iterator) ([]byte, error) {
	var out []byte
	err := it.Value(func(v []byte) error {
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

// GetCopy returns a copy of the value at key in txn.
func GetCopy(txn Txn, key []byte) ([]byte, error) {
	var out []byte
	err := txn.Get(key, func(v []byte) error {
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}
