package kv_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// seekClamps: Seek to a key outside the prefix, with other keys
	// between it and the prefix, goes to the prefix's first (last, in
	// reverse) key. Badger's Seek goes to the key outside and is not
	// Valid.
	seekClamps bool
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
	}})
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

func testIterate(t *testing.T, e kv.Engine, ec engineCase) {
	set(t, e, "m/a", "1", "m/b", "2", "m/c", "3", "m/d", "4", "meta/x", "5", "n/1", "6", "l", "7")
	// Pending in the Update: m/a changed, m/bb and m/e added, m/c and
	// an absent m/zz deleted.
	pending := func(txn kv.Txn) {
		txn.Set([]byte("m/a"), []byte("1'"))
		txn.Set([]byte("m/bb"), []byte("2b"))
		txn.Set([]byte("m/e"), []byte("5e"))
		txn.Delete([]byte("m/c"))
		txn.Delete([]byte("m/zz"))
	}
	s := func(k string) []byte { return []byte(k) }
	for _, tc := range []struct {
		name   string
		opt    kv.IterOptions
		seek   []byte
		stored []string // in a View
		mine   []string // in the Update, with its writes
		clamp  bool     // needs seekClamps
	}{
		{"forward", kv.IterOptions{Prefix: s("m/")}, nil,
			[]string{"m/a=1", "m/b=2", "m/c=3", "m/d=4"},
			[]string{"m/a=1'", "m/b=2", "m/bb=2b", "m/d=4", "m/e=5e"}, false},
		{"reverse", kv.IterOptions{Prefix: s("m/"), Reverse: true}, nil,
			[]string{"m/d=4", "m/c=3", "m/b=2", "m/a=1"},
			[]string{"m/e=5e", "m/d=4", "m/bb=2b", "m/b=2", "m/a=1'"}, false},
		{"keys only", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, nil,
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}, false},
		{"keys only reverse", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, nil,
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}, false},
		{"all keys", kv.IterOptions{KeysOnly: true}, nil,
			[]string{"l", "m/a", "m/b", "m/c", "m/d", "meta/x", "n/1"},
			[]string{"l", "m/a", "m/b", "m/bb", "m/d", "m/e", "meta/x", "n/1"}, false},
		{"all keys reverse", kv.IterOptions{KeysOnly: true, Reverse: true}, nil,
			[]string{"n/1", "meta/x", "m/d", "m/c", "m/b", "m/a", "l"},
			[]string{"n/1", "meta/x", "m/e", "m/d", "m/bb", "m/b", "m/a", "l"}, false},
		{"seek at a key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m/b"),
			[]string{"m/b", "m/c", "m/d"},
			[]string{"m/b", "m/bb", "m/d", "m/e"}, false},
		{"seek at a deleted key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m/c"),
			[]string{"m/c", "m/d"},
			[]string{"m/d", "m/e"}, false},
		{"seek before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("a"),
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}, true},
		{"seek just before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m"),
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}, false},
		{"seek after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("z"),
			nil, nil, false},
		{"reverse seek at a key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/c"),
			[]string{"m/c", "m/b", "m/a"},
			[]string{"m/bb", "m/b", "m/a"}, false},
		{"reverse seek between keys", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/bz"),
			[]string{"m/b", "m/a"},
			[]string{"m/bb", "m/b", "m/a"}, false},
		{"reverse seek past the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/\xff"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}, false},
		{"reverse seek after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("n"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}, true},
		{"reverse seek just after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m0"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}, false},
		{"reverse seek before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("a"),
			nil, nil, false},
		{"prefix without keys", kv.IterOptions{Prefix: s("o/")}, nil, nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.clamp && !ec.seekClamps {
				t.Skip("this engine's Seek to a key outside the prefix stops there")
			}
			var got []string
			if err := e.View(func(txn kv.Txn) (err error) {
				got, err = walk(txn, tc.opt, tc.seek)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.stored) {
				t.Errorf("View: %q, want %q", got, tc.stored)
			}
			if err := e.Update(func(txn kv.Txn) (err error) {
				pending(txn)
				got, err = walk(txn, tc.opt, tc.seek)
				if err != nil {
					return err
				}
				return errAbort
			}); err != errAbort {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.mine) {
				t.Errorf("Update: %q, want %q", got, tc.mine)
			}
		})
	}
	t.Run("ValidForPrefix", func(t *testing.T) {
		var got []string
		if err := e.View(func(txn kv.Txn) error {
			it := txn.NewIterator(kv.IterOptions{KeysOnly: true})
			defer it.Close()
			for it.Seek(s("m/")); it.ValidForPrefix(s("m/")); it.Next() {
				got = append(got, string(it.Key()))
			}
			// Seek again in the same iterator, the other way round.
			it.Seek(s("meta/"))
			if !it.Valid() || string(it.Key()) != "meta/x" {
				return fmt.Errorf("second seek: valid %v", it.Valid())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"m/a", "m/b", "m/c", "m/d"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// testIterateModel compares walks over more keys than one page of a
// remote engine, with the transaction's own writes spread among them,
// against a sorted list: random seeks both ways, random walk lengths.
func testIterateModel(t *testing.T, e kv.Engine, _ engineCase) {
	rnd := rand.New(rand.NewPCG(1, 2))
	stored := map[string]string{}
	b := e.NewBatch()
	for i := range 1000 {
		if rnd.IntN(10) < 7 {
			k, v := fmt.Sprintf("r/%03d", i), fmt.Sprint(i)
			stored[k] = v
			b.Set([]byte(k), []byte(v))
		}
	}
	b.Set([]byte("q"), []byte("before"))
	b.Set([]byte("s"), []byte("after"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	err := e.Update(func(txn kv.Txn) error {
		model := maps.Clone(stored)
		for range 60 {
			k := fmt.Sprintf("r/%03d", rnd.IntN(1000))
			if rnd.IntN(2) == 0 {
				delete(model, k)
				txn.Delete([]byte(k))
			} else {
				model[k] = "new"
				txn.Set([]byte(k), []byte("new"))
			}
		}
		keys := slices.Sorted(maps.Keys(model))
		for i := range 40 {
			reverse := i%2 == 1
			seek := fmt.Sprintf("r/%03d", rnd.IntN(1000))
			if rnd.IntN(4) == 0 {
				seek += "5" // between keys
			}
			var want []string
			for _, k := range keys {
				if !reverse && k >= seek {
					want = append(want, k+"="+model[k])
				}
			}
			if reverse {
				for _, k := range slices.Backward(keys) {
					if k <= seek {
						want = append(want, k+"="+model[k])
					}
				}
			}
			want = want[:min(len(want), rnd.IntN(700))]
			it := txn.NewIterator(kv.IterOptions{Prefix: []byte("r/"), Reverse: reverse})
			var got []string
			for it.Seek([]byte(seek)); it.Valid() && len(got) < len(want); it.Next() {
				v, err := kv.ValueCopy(it)
				if err != nil {
					it.Close()
					return err
				}
				got = append(got, string(it.Key())+"="+string(v))
			}
			it.Close()
			if !slices.Equal(got, want) {
				return fmt.Errorf("seek %q reverse %v: %d keys, want %d; first difference at %d",
					seek, reverse, len(got), len(want), firstDiff(got, want))
			}
		}
		return errAbort
	})
	if err != errAbort {
		t.Fatal(err)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
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

// testConflicts: a commit fails with ErrConflict, writing nothing, when a
// concurrent commit (here: one made inside fn) changed what it read, and
// not when it changed something else.
func testConflicts(t *testing.T, e kv.Engine, ec engineCase) {
	for _, tc := range []struct {
		name     string
		seed     []string
		read     func(kv.Txn) error // the first transaction's reads
		other    func(kv.Txn) error // the concurrent commit
		conflict bool
		phantom  bool // needs rangeConflicts
	}{
		{name: "lost update", seed: []string{"k", "1"},
			read:     func(txn kv.Txn) error { return txn.Get([]byte("k"), nil) },
			other:    func(txn kv.Txn) error { return txn.Set([]byte("k"), []byte("2")) },
			conflict: true},
		{name: "delete of a read key", seed: []string{"k", "1"},
			read:     func(txn kv.Txn) error { return txn.Get([]byte("k"), nil) },
			other:    func(txn kv.Txn) error { return txn.Delete([]byte("k")) },
			conflict: true},
		{name: "create of a key read absent",
			read: func(txn kv.Txn) error {
				if err := txn.Get([]byte("k"), nil); !errors.Is(err, kv.ErrNotFound) {
					return fmt.Errorf("want ErrNotFound, got %v", err)
				}
				return nil
			},
			other:    func(txn kv.Txn) error { return txn.Set([]byte("k"), []byte("new")) },
			conflict: true},
		{name: "write of another key", seed: []string{"k", "1"},
			read:  func(txn kv.Txn) error { return txn.Get([]byte("k"), nil) },
			other: func(txn kv.Txn) error { return txn.Set([]byte("other"), []byte("2")) }},
		{name: "blind writes",
			read:  func(kv.Txn) error { return nil },
			other: func(txn kv.Txn) error { return txn.Set([]byte("out"), []byte("theirs")) }},
		{name: "change in an iterated range", seed: []string{"p/1", "1", "p/3", "3"},
			read:     iterate("p/"),
			other:    func(txn kv.Txn) error { return txn.Set([]byte("p/3"), []byte("33")) },
			conflict: true},
		{name: "delete in an iterated range", seed: []string{"p/1", "1", "p/3", "3"},
			read:     iterate("p/"),
			other:    func(txn kv.Txn) error { return txn.Delete([]byte("p/1")) },
			conflict: true},
		{name: "write skew: insert in an iterated range", seed: []string{"p/1", "1", "p/3", "3"},
			read:     iterate("p/"),
			other:    func(txn kv.Txn) error { return txn.Set([]byte("p/2"), []byte("2")) },
			conflict: true, phantom: true},
		{name: "insert in an empty iterated range",
			read:     iterate("p/"),
			other:    func(txn kv.Txn) error { return txn.Set([]byte("p/2"), []byte("2")) },
			conflict: true, phantom: true},
		{name: "insert in a range iterated in reverse", seed: []string{"p/1", "1", "p/3", "3"},
			read: func(txn kv.Txn) error {
				it := txn.NewIterator(kv.IterOptions{Prefix: []byte("p/"), Reverse: true})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
				}
				return nil
			},
			other:    func(txn kv.Txn) error { return txn.Set([]byte("p/2"), []byte("2")) },
			conflict: true, phantom: true},
		{name: "insert next to an iterated range", seed: []string{"p/1", "1", "p/3", "3"},
			read:  iterate("p/"),
			other: func(txn kv.Txn) error { return txn.Set([]byte("q/2"), []byte("2")) }},
		{name: "insert past where the walk stopped", seed: []string{"p/1", "1", "p/3", "3"},
			read: func(txn kv.Txn) error {
				it := txn.NewIterator(kv.IterOptions{Prefix: []byte("p/")})
				defer it.Close()
				it.Rewind()
				if !it.Valid() || string(it.Key()) != "p/1" {
					return errors.New("p/1 not first")
				}
				return nil
			},
			other: func(txn kv.Txn) error { return txn.Set([]byte("p/4"), []byte("4")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.phantom && !ec.rangeConflicts {
				t.Skip("this engine detects conflicts on keys read, not on ranges iterated")
			}
			if len(tc.seed) > 0 {
				set(t, e, tc.seed...)
			}
			t.Cleanup(func() { e.DropPrefix(nil) })
			runs := 0
			err := e.Update(func(txn kv.Txn) error {
				runs++
				if err := tc.read(txn); err != nil {
					return err
				}
				if err := e.Update(tc.other); err != nil {
					return fmt.Errorf("concurrent commit: %w", err)
				}
				return txn.Set([]byte("out"), []byte("mine"))
			})
			switch {
			case tc.conflict && !errors.Is(err, kv.ErrConflict):
				t.Fatalf("Update = %v, want ErrConflict", err)
			case tc.conflict:
				if got, _ := get(t, e, "out"); got == "mine" {
					t.Fatal("the conflicting transaction's write was committed")
				}
			case err != nil:
				t.Fatalf("Update = %v, want no conflict", err)
			default:
				mustGet(t, e, "out", "mine")
			}
			if runs != 1 {
				t.Fatalf("fn ran %d times: the engine must not retry by itself", runs)
			}
		})
	}
}

// testCounter: increments from concurrent transactions, each run again
// on ErrConflict, lose none.
func testCounter(t *testing.T, e kv.Engine, _ engineCase) {
	const workers, each = 4, 20
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				for {
					err := e.Update(func(txn kv.Txn) error {
						n := 0
						if v, err := kv.GetCopy(txn, []byte("n")); err == nil {
							n, _ = strconv.Atoi(string(v))
						} else if !errors.Is(err, kv.ErrNotFound) {
							return err
						}
						return txn.Set([]byte("n"), []byte(strconv.Itoa(n+1)))
					})
					if errors.Is(err, kv.ErrConflict) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
					}
					break
				}
			}
		})
	}
	wg.Wait()
	mustGet(t, e, "n", strconv.Itoa(workers*each))
	t.Logf("%d increments, %d conflicts run again", workers*each, conflicts.Load())
}

func iterate(prefix string) func(kv.Txn) error {
	return func(txn kv.Txn) error {
		_, err := walk(txn, kv.IterOptions{Prefix: []byte(prefix)}, nil)
		return err
	}
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
