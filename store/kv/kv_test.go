package kv_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store/kv"
)

// errAbort makes an Update discard its writes.
var errAbort = errors.New("abort")

// engineCase describes an engine to the conformance suite.
type engineCase struct {
	// open returns an empty engine whose cleanup the test owns.
	open func(t *testing.T) kv.Engine
	// rangeConflicts: a commit that inserts a key inside a range another
	// transaction iterated makes that transaction conflict (phantoms).
	// Badger tracks the keys read, not the ranges.
	rangeConflicts bool
	// parallelReads: a View's Txn may be read from several goroutines
	// (kv.ParallelReader).
	parallelReads bool
}

func TestBadger(t *testing.T) {
	testEngine(t, engineCase{open: func(t *testing.T) kv.Engine {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithSyncWrites(true).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		e := kv.NewBadger(db)
		t.Cleanup(func() { e.Close() })
		return e
	}, parallelReads: true})
}

// testEngine is the contract of kv.Engine, run against every engine.
func testEngine(t *testing.T, ec engineCase) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, e kv.Engine, ec engineCase)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"Iterate", testIterate},
		{"IterateModel", testIterateModel},
		{"ReadOnly", testReadOnly},
		{"Snapshot", testSnapshot},
		{"Conflicts", testConflicts},
		{"Counter", testCounter},
		{"Batch", testBatch},
		{"DropPrefix", testDropPrefix},
		{"Closed", testClosed},
		{"ParallelReads", testParallelReads},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, ec.open(t), ec) })
	}
}

func set(t *testing.T, e kv.Engine, kvs ...string) {
	t.Helper()
	if err := e.Update(func(txn kv.Txn) error {
		for i := 0; i < len(kvs); i += 2 {
			if err := txn.Set([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("set %v: %v", kvs, err)
	}
}

// get is the value at key in a View ("" and ErrNotFound when absent).
func get(t *testing.T, e kv.Engine, key string) (string, error) {
	t.Helper()
	var v []byte
	err := e.View(func(txn kv.Txn) (err error) {
		v, err = kv.GetCopy(txn, []byte(key))
		return err
	})
	return string(v), err
}

func mustGet(t *testing.T, e kv.Engine, key, want string) {
	t.Helper()
	got, err := get(t, e, key)
	if err != nil || got != want {
		t.Fatalf("get %q = %q, %v; want %q", key, got, err, want)
	}
}

func mustAbsent(t *testing.T, e kv.Engine, key string) {
	t.Helper()
	if got, err := get(t, e, key); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get %q = %q, %v; want ErrNotFound", key, got, err)
	}
}

// walk lists the iterator's keys ("k=v" unless KeysOnly) from Rewind, or
// from Seek(seek) when seek is not nil.
func walk(txn kv.Txn, opt kv.IterOptions, seek []byte) ([]string, error) {
	it := txn.NewIterator(opt)
	defer it.Close()
	if seek == nil {
		it.Rewind()
	} else {
		it.Seek(seek)
	}
	var out []string
	for ; it.Valid(); it.Next() {
		k := string(it.Key())
		if !opt.KeysOnly {
			v, err := kv.ValueCopy(it)
			if err != nil {
				return nil, err
			}
			k += "=" + string(v)
		}
		out = append(out, k)
	}
	return out, nil
}

func testGetSetDelete(t *testing.T, e kv.Engine, _ engineCase) {
	mustAbsent(t, e, "a")
	if err := e.Update(func(txn kv.Txn) error {
		if err := txn.Set([]byte("a"), []byte("1")); err != nil {
			return err
		}
		if v, err := kv.GetCopy(txn, []byte("a")); err != nil || string(v) != "1" {
			return fmt.Errorf("read own write: %q, %v", v, err)
		}
		return txn.Get([]byte("a"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, e, "a", "1")
	if err := e.View(func(txn kv.Txn) error {
		if err := txn.Get([]byte("a"), nil); err != nil {
			return fmt.Errorf("existing key, nil fn: %w", err)
		}
		if err := txn.Get([]byte("b"), nil); !errors.Is(err, kv.ErrNotFound) {
			return fmt.Errorf("absent key, nil fn: %v", err)
		}
		mine := errors.New("mine")
		if err := txn.Get([]byte("a"), func([]byte) error { return mine }); err != mine {
			return fmt.Errorf("fn's error: got %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Update(func(txn kv.Txn) error {
		if err := txn.Delete([]byte("a")); err != nil {
			return err
		}
		if err := txn.Get([]byte("a"), nil); !errors.Is(err, kv.ErrNotFound) {
			return fmt.Errorf("own delete: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustAbsent(t, e, "a")
	if err := e.Update(func(txn kv.Txn) error {
		txn.Set([]byte("c"), []byte("3"))
		return errAbort
	}); err != errAbort {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	mustAbsent(t, e, "c")
}

func testReadOnly(t *testing.T, e kv.Engine, _ engineCase) {
	set(t, e, "a", "1")
	if err := e.View(func(txn kv.Txn) error {
		if err := txn.Set([]byte("a"), []byte("2")); !errors.Is(err, kv.ErrReadOnly) {
			return fmt.Errorf("Set in a View: %v", err)
		}
		if err := txn.Delete([]byte("a")); !errors.Is(err, kv.ErrReadOnly) {
			return fmt.Errorf("Delete in a View: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, e, "a", "1")
}

// testSnapshot: a View reads one snapshot, fixed at the latest by its
// first read; what commits after is not seen.
func testSnapshot(t *testing.T, e kv.Engine, _ engineCase) {
	set(t, e, "s/a", "1", "s/b", "2")
	if err := e.View(func(txn kv.Txn) error {
		if v, err := kv.GetCopy(txn, []byte("s/a")); err != nil || string(v) != "1" {
			return fmt.Errorf("first read: %q, %v", v, err)
		}
		if err := e.Update(func(w kv.Txn) error {
			w.Set([]byte("s/a"), []byte("changed"))
			w.Set([]byte("s/c"), []byte("new"))
			return w.Delete([]byte("s/b"))
		}); err != nil {
			return err
		}
		if v, err := kv.GetCopy(txn, []byte("s/a")); err != nil || string(v) != "1" {
			return fmt.Errorf("read after a commit: %q, %v", v, err)
		}
		keys, err := walk(txn, kv.IterOptions{Prefix: []byte("s/")}, nil)
		if err != nil {
			return err
		}
		if want := []string{"s/a=1", "s/b=2"}; !slices.Equal(keys, want) {
			return fmt.Errorf("iterate after a commit: %q, want %q", keys, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustGet(t, e, "s/a", "changed")
}

func testBatch(t *testing.T, e kv.Engine, _ engineCase) {
	const n = 5000
	b := e.NewBatch()
	for i := range n {
		if err := b.Set(fmt.Appendf(nil, "b/%05d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A key written twice and one written then deleted.
	b.Set([]byte("b/00007"), []byte("again"))
	b.Set([]byte("c/gone"), []byte("x"))
	b.Delete([]byte("c/gone"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	mustGet(t, e, "b/00007", "again")
	mustAbsent(t, e, "c/gone")
	for _, reverse := range []bool{false, true} {
		var keys []string
		if err := e.View(func(txn kv.Txn) (err error) {
			keys, err = walk(txn, kv.IterOptions{Prefix: []byte("b/"), Reverse: reverse, KeysOnly: true}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(keys) != n {
			t.Fatalf("reverse %v: %d keys, want %d", reverse, len(keys), n)
		}
		sorted := slices.IsSorted(keys)
		if reverse {
			sorted = slices.IsSortedFunc(keys, func(a, b string) int { return strings.Compare(b, a) })
		}
		if !sorted || len(slices.Compact(slices.Clone(keys))) != n {
			t.Fatalf("reverse %v: keys out of order or repeated", reverse)
		}
	}
	b = e.NewBatch()
	b.Set([]byte("b/cancelled"), []byte("x"))
	b.Cancel()
	mustAbsent(t, e, "b/cancelled")
}

func testDropPrefix(t *testing.T, e kv.Engine, _ engineCase) {
	set(t, e, "d/1", "1", "d/2", "2", "dx", "3", "e/1", "4", "c", "5")
	if err := e.DropPrefix([]byte("d/")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := e.View(func(txn kv.Txn) (err error) {
		keys, err = walk(txn, kv.IterOptions{KeysOnly: true}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c", "dx", "e/1"}; !slices.Equal(keys, want) {
		t.Fatalf("after DropPrefix(d/): %q, want %q", keys, want)
	}
}

func testClosed(t *testing.T, e kv.Engine, _ engineCase) {
	set(t, e, "a", "1")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.View(func(kv.Txn) error { return nil }); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("View after Close: %v", err)
	}
	if err := e.Update(func(kv.Txn) error { return nil }); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
}

// TestBadgerMissKeepsBothErrors: a missing key's error, made once for
// every miss, is the engine's ErrNotFound and still Badger's own, with
// Badger's text.
func TestBadgerMissKeepsBothErrors(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	e := kv.NewBadger(db)
	defer e.Close()
	for range 2 {
		err := e.View(func(txn kv.Txn) error { return txn.Get([]byte("absent"), nil) })
		if !errors.Is(err, kv.ErrNotFound) || !errors.Is(err, badger.ErrKeyNotFound) || !strings.Contains(err.Error(), badger.ErrKeyNotFound.Error()) {
			t.Errorf("miss: %v; want ErrNotFound wrapping Badger's ErrKeyNotFound", err)
		}
	}
}

// testParallelReads: an engine offers parallel reads in a View exactly
// when it says it does, never in an Update, and reads so from several
// goroutines at once find every value (run with -race to see Badger's
// reads share nothing unguarded).
func testParallelReads(t *testing.T, e kv.Engine, ec engineCase) {
	const n = 100 // within one etcd transaction
	err := e.Update(func(txn kv.Txn) error {
		if p, ok := txn.(kv.ParallelReader); ok && p.ParallelReads() {
			t.Error("an Update offers parallel reads")
		}
		for i := range n {
			if err := txn.Set(fmt.Appendf(nil, "p/%04d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.View(func(txn kv.Txn) error {
		p, ok := txn.(kv.ParallelReader)
		if offered := ok && p.ParallelReads(); offered != ec.parallelReads {
			t.Fatalf("a View offers parallel reads: %v, want %v", offered, ec.parallelReads)
		}
		if !ec.parallelReads {
			return nil
		}
		const parts = 4
		errs := make(chan error, parts)
		read := func(part int) error {
			it := txn.NewIterator(kv.IterOptions{Prefix: []byte("p/"), KeysOnly: true})
			defer it.Close()
			for i := part; i < n; i += parts {
				key := fmt.Appendf(nil, "p/%04d", i)
				var got string
				if err := txn.Get(key, func(v []byte) error { got = string(v); return nil }); err != nil {
					return err
				}
				if it.Seek(key); !it.Valid() || string(it.Key()) != string(key) || got != fmt.Sprintf("v%d", i) {
					return fmt.Errorf("%s: value %q, iterator at %q", key, got, it.Key())
				}
			}
			return nil
		}
		for part := range parts {
			go func() { errs <- read(part) }()
		}
		// Every part finishes (and closes its iterator) before the View
		// ends, whatever the others found.
		var all []error
		for range parts {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	})
	if err != nil {
		t.Fatal(err)
	}
}
