package kv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Badger is the embedded engine: one Badger database on the appliance's
// disk. Durability is the database's SyncWrites option, which the store
// sets.
type Badger struct {
	db *badger.DB
	// closed is set when a Rebuild closed the database and could not open
	// its replacement: Close has nothing left to close.
	closed bool
}

// NewBadger wraps an open Badger database; closing the engine closes it.
func NewBadger(db *badger.DB) *Badger { return &Badger{db: db} }

// DB returns the database underneath, for what only Badger has (value-log
// garbage collection, its options).
func (b *Badger) DB() *badger.DB { return b.db }

// View implements Engine.
func (b *Badger) View(fn func(Txn) error) error {
	return badgerErr(b.db.View(func(t *badger.Txn) error { return fn(badgerTxn{t: t, view: true}) }))
}

// Update implements Engine.
func (b *Badger) Update(fn func(Txn) error) error {
	return badgerErr(b.db.Update(func(t *badger.Txn) error { return fn(badgerTxn{t: t}) }))
}

// NewBatch implements Engine.
func (b *Badger) NewBatch() Batch { return badgerBatch{b.db.NewWriteBatch()} }

// DropPrefix implements Engine.
func (b *Badger) DropPrefix(prefix []byte) error { return badgerErr(b.db.DropPrefix(prefix)) }

// Close implements Engine.
func (b *Badger) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	return badgerErr(b.db.Close())
}

// errKeyNotFound is badgerErr's answer to Badger's ErrKeyNotFound, made
// once: a miss is the common answer (every new lease's address claim),
// and formatting it cost an allocation and fmt's work each time.
var errKeyNotFound = fmt.Errorf("%w: %w", ErrNotFound, badger.ErrKeyNotFound)

// badgerErr maps Badger's errors onto the engine's, keeping Badger's text.
func badgerErr(err error) error {
	switch {
	case err == nil:
		return nil
	case err == badger.ErrKeyNotFound:
		return errKeyNotFound
	case errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, badger.ErrConflict):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, badger.ErrReadOnlyTxn):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case errors.Is(err, badger.ErrDBClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

type badgerTxn struct {
	t    *badger.Txn
	view bool
}

// ParallelReads implements ParallelReader: Badger reads a read-only
// transaction's snapshot from any goroutine (its Get and iterators keep
// nothing of the transaction's but their own).
func (t badgerTxn) ParallelReads() bool { return t.view }

func (t badgerTxn) Get(key []byte, fn func([]byte) error) error {
	item, err := t.t.Get(key)
	if err != nil {
		return badgerErr(err)
	}
	if fn == nil {
		return nil
	}
	return item.Value(fn)
}

func (t badgerTxn) Set(key, val []byte) error { return badgerErr(t.t.Set(key, val)) }
func (t badgerTxn) Delete(key []byte) error   { return badgerErr(t.t.Delete(key)) }

func (t badgerTxn) NewIterator(opt IterOptions) Iterator {
	// No value prefetching, as the store read Badger before this engine
	// (KeysOnly or not): Foundry's values are kept in the tables (none
	// reaches the value threshold), so prefetching only copies them, in a
	// goroutine each, 100 ahead of every Seek. A machine list seeks twice
	// per machine: with prefetching, one page took 13 ms instead of 3.
	it := t.t.NewIterator(badger.IteratorOptions{
		Prefix:  opt.Prefix,
		Reverse: opt.Reverse,
	})
	return &badgerIter{it: it, prefix: opt.Prefix, reverse: opt.Reverse}
}

type badgerIter struct {
	it      *badger.Iterator
	prefix  []byte
	reverse bool
}

// Rewind implements Iterator. Badger's own Rewind in reverse starts past
// the prefix's keys (at the database's last key); seeking to the prefix
// followed by 0xff bytes starts at its last key instead.
func (i *badgerIter) Rewind() {
	if i.reverse && len(i.prefix) > 0 {
		i.it.Seek(prefixEnd(i.prefix))
		return
	}
	i.it.Rewind()
}

// Seek implements Iterator. Badger stops at a key outside the prefix
// (and reports it not valid); the contract moves to the prefix's first
// key (last, in reverse) instead.
func (i *badgerIter) Seek(key []byte) {
	if len(i.prefix) > 0 && !bytes.HasPrefix(key, i.prefix) {
		switch {
		case !i.reverse && bytes.Compare(key, i.prefix) < 0:
			key = i.prefix
		case i.reverse && bytes.Compare(key, i.prefix) > 0:
			key = prefixEnd(i.prefix)
		}
	}
	i.it.Seek(key)
}
func (i *badgerIter) Valid() bool { return i.it.Valid() }
func (i *badgerIter) ValidForPrefix(p []byte) bool {
	return i.it.ValidForPrefix(p)
}
func (i *badgerIter) Next()                             { i.it.Next() }
func (i *badgerIter) Key() []byte                       { return i.it.Item().Key() }
func (i *badgerIter) Value(fn func([]byte) error) error { return i.it.Item().Value(fn) }
func (i *badgerIter) Close()                            { i.it.Close() }

// prefixEnd returns a key after every key under prefix that Foundry
// writes: the prefix followed by 0xff bytes (keys are text).
func prefixEnd(prefix []byte) []byte {
	out := append([]byte{}, prefix...)
	for range 8 {
		out = append(out, 0xff)
	}
	return out
}

type badgerBatch struct{ wb *badger.WriteBatch }

func (b badgerBatch) Set(key, val []byte) error { return badgerErr(b.wb.Set(key, val)) }
func (b badgerBatch) Delete(key []byte) error   { return badgerErr(b.wb.Delete(key)) }
func (b badgerBatch) Flush() error              { return badgerErr(b.wb.Flush()) }
func (b badgerBatch) Cancel()                   { b.wb.Cancel() }

// RemoveEmptyLogs removes the zero-byte memtable and value log files
// (*.mem, *.vlog) of the Badger database in dir, and returns their
// paths. Badger creates such a file, then truncates it to its full size;
// a crash between the two (a SIGKILL or power cut while Open makes its
// memtable, say) leaves a file of zero bytes, which Badger v4 then
// refuses to open, every time (dgraph-io/badger#2207: Open fails with
// z.NewFile, "Create a new file"). A file of zero bytes holds no entry,
// so nothing is lost.
func RemoveEmptyLogs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("look for empty log files: %w", err)
	}
	var removed []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".mem") && !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() != 0 {
			continue // gone meanwhile, or not empty
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return removed, fmt.Errorf("remove an empty log file: %w", err)
		}
		removed = append(removed, path)
	}
	return removed, nil
}
