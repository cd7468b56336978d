package kv_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
)

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
	}{
		{"forward", kv.IterOptions{Prefix: s("m/")}, nil,
			[]string{"m/a=1", "m/b=2", "m/c=3", "m/d=4"},
			[]string{"m/a=1'", "m/b=2", "m/bb=2b", "m/d=4", "m/e=5e"}},
		{"reverse", kv.IterOptions{Prefix: s("m/"), Reverse: true}, nil,
			[]string{"m/d=4", "m/c=3", "m/b=2", "m/a=1"},
			[]string{"m/e=5e", "m/d=4", "m/bb=2b", "m/b=2", "m/a=1'"}},
		{"keys only", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, nil,
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}},
		{"keys only reverse", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, nil,
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}},
		{"all keys", kv.IterOptions{KeysOnly: true}, nil,
			[]string{"l", "m/a", "m/b", "m/c", "m/d", "meta/x", "n/1"},
			[]string{"l", "m/a", "m/b", "m/bb", "m/d", "m/e", "meta/x", "n/1"}},
		{"all keys reverse", kv.IterOptions{KeysOnly: true, Reverse: true}, nil,
			[]string{"n/1", "meta/x", "m/d", "m/c", "m/b", "m/a", "l"},
			[]string{"n/1", "meta/x", "m/e", "m/d", "m/bb", "m/b", "m/a", "l"}},
		{"seek at a key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m/b"),
			[]string{"m/b", "m/c", "m/d"},
			[]string{"m/b", "m/bb", "m/d", "m/e"}},
		{"seek at a deleted key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m/c"),
			[]string{"m/c", "m/d"},
			[]string{"m/d", "m/e"}},
		{"seek before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("a"),
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}},
		{"seek just before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("m"),
			[]string{"m/a", "m/b", "m/c", "m/d"},
			[]string{"m/a", "m/b", "m/bb", "m/d", "m/e"}},
		{"seek after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true}, s("z"),
			nil, nil},
		{"reverse seek at a key", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/c"),
			[]string{"m/c", "m/b", "m/a"},
			[]string{"m/bb", "m/b", "m/a"}},
		{"reverse seek between keys", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/bz"),
			[]string{"m/b", "m/a"},
			[]string{"m/bb", "m/b", "m/a"}},
		{"reverse seek past the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m/\xff"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}},
		{"reverse seek after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("n"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}},
		{"reverse seek just after the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("m0"),
			[]string{"m/d", "m/c", "m/b", "m/a"},
			[]string{"m/e", "m/d", "m/bb", "m/b", "m/a"}},
		{"reverse seek before the prefix", kv.IterOptions{Prefix: s("m/"), KeysOnly: true, Reverse: true}, s("a"),
			nil, nil},
		{"prefix without keys", kv.IterOptions{Prefix: s("o/")}, nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
