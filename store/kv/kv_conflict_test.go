package kv_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
)

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
