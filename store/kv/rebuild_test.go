package kv_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store/kv"
)

func openRebuildTest(t *testing.T, dir string) *kv.Badger {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil).
		WithMemTableSize(16 << 20).WithNumCompactors(2))
	if err != nil {
		t.Fatal(err)
	}
	e := kv.NewBadger(db)
	t.Cleanup(func() { e.Close() })
	return e
}

// contents reads every key and value of e.
func contents(t *testing.T, e kv.Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := e.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := kv.ValueCopy(it)
			if err != nil {
				return err
			}
			out[string(it.Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRebuild replaces a database through ordered streams and unordered
// entries large enough to be sorted in runs on disk, and finds exactly
// the new content, every table on the bottom level (nothing left for
// compactions), the files Badger does not own carried over, and no
// directory of the rebuild left beside the database.
func TestRebuild(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "db")
	e := openRebuildTest(t, dir)
	err := e.Update(func(txn kv.Txn) error {
		for i := range 100 {
			if err := txn.Set(fmt.Appendf(nil, "m/%04d", i), fmt.Appendf(nil, "old record %d", i)); err != nil {
				return err
			}
		}
		return txn.Set([]byte("gone/1"), []byte("dropped by the rebuild"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ballast"), []byte("the store's"), 0o600); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{}
	rng := rand.New(rand.NewPCG(1, 2))
	big := bytes.Repeat([]byte("x"), 64<<10)
	err = e.Rebuild(func(w *kv.BulkWriter) error {
		old := contents(t, e) // the old database stays readable meanwhile
		if len(old) != 101 {
			return fmt.Errorf("the old database holds %d keys during the rebuild", len(old))
		}
		for i := range 100 {
			k := fmt.Sprintf("m/%04d", i)
			v := strings.Replace(old[k], "old", "new", 1)
			if err := w.Put(1, []byte(k), []byte(v)); err != nil {
				return err
			}
			want[k] = v
			k = fmt.Sprintf("mi/%04d", i)
			if err := w.Put(2, []byte(k), big[:1000+i]); err != nil {
				return err
			}
			want[k] = string(big[:1000+i])
		}
		// Unordered: before, between and after the ordered streams, in
		// random order, 25 MiB in all (more than one run).
		var keys []string
		for i := range 400 {
			keys = append(keys, fmt.Sprintf("a/%04d", i), fmt.Sprintf("meta/%04d", i), fmt.Sprintf("x/%04d", i))
		}
		rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for i, k := range keys {
			v := big[:i%len(big)]
			if strings.HasPrefix(k, "x/") {
				v = big
			}
			if err := w.Add([]byte(k), v); err != nil {
				return err
			}
			want[k] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	got := contents(t, e)
	if len(got) != len(want) {
		t.Errorf("%d keys after the rebuild, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: %d bytes, want %d", k, len(got[k]), len(v))
		}
	}
	if _, ok := got["gone/1"]; ok {
		t.Error("a key the rebuild did not write is still there")
	}
	levels := e.DB().Levels()
	for _, l := range levels[:len(levels)-1] {
		if l.NumTables > 0 {
			t.Errorf("level %d holds %d tables after the rebuild; want all on the bottom level", l.Level, l.NumTables)
		}
	}
	if last := levels[len(levels)-1]; last.NumTables < 4 || last.Score > 1 {
		t.Errorf("bottom level: %d tables, compaction score %.2f; want the streams' tables and nothing to compact", last.NumTables, last.Score)
	}
	// Each table holds one chunk of a stream (2 MiB of input, a builder's
	// worth): the bound on what the rebuild holds in memory. Without the
	// chunks the x/ entries (25 MiB of compressible values) would make
	// tables of 8 MiB compressed, and builders several times that.
	var largest uint32
	for _, ti := range e.DB().Tables() {
		largest = max(largest, ti.UncompressedSize)
	}
	if largest == 0 || largest > 3<<20 {
		t.Errorf("largest table after the rebuild: %d bytes of data; want one chunk's (2 MiB) at most", largest)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ballast")); err != nil || string(b) != "the store's" {
		t.Errorf("the store's file after the rebuild: %q %v", b, err)
	}
	for _, s := range []string{".rebuild", ".old", ".sort"} {
		if _, err := os.Stat(dir + s); err == nil {
			t.Errorf("%s left after the rebuild", dir+s)
		}
	}
	// Writes go on in the rebuilt database, and survive a reopen.
	if err := e.Update(func(txn kv.Txn) error { return txn.Set([]byte("after"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = openRebuildTest(t, dir)
	if got := contents(t, e); got["after"] != "1" || got["m/0042"] != "new record 42" {
		t.Errorf("after reopening: %q %q", got["after"], got["m/0042"])
	}
}

// TestRebuildRefusesBadInput: keys out of order, an unordered key inside
// an ordered stream's range, a key given twice, or a fill that fails
// each fail the rebuild with an error naming the key, and leave the old
// database as it was, open, and nothing beside it.
func TestRebuildRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		fill      func(w *kv.BulkWriter) error
	}{
		{"out of order", `key "m/1" after "m/2"`, func(w *kv.BulkWriter) error {
			if err := w.Put(1, []byte("m/2"), nil); err != nil {
				return err
			}
			return w.Put(1, []byte("m/1"), nil)
		}},
		{"inside an ordered stream", `key "m/2" falls inside an ordered stream`, func(w *kv.BulkWriter) error {
			w.Put(1, []byte("m/1"), nil)
			w.Put(1, []byte("m/3"), nil)
			return w.Add([]byte("m/2"), nil)
		}},
		{"twice", `key "a/1" given twice`, func(w *kv.BulkWriter) error {
			w.Add([]byte("a/1"), nil)
			return w.Add([]byte("a/1"), []byte("again"))
		}},
		{"streams overlap", `ordered streams overlap`, func(w *kv.BulkWriter) error {
			w.Put(1, []byte("m/1"), nil)
			w.Put(1, []byte("m/3"), nil)
			return w.Put(2, []byte("m/2"), nil)
		}},
		{"fill fails", "the fill's own error", func(w *kv.BulkWriter) error {
			w.Put(1, []byte("m/1"), nil)
			return fmt.Errorf("the fill's own error")
		}},
		{"stream 0", "stream 0: ids start at 1", func(w *kv.BulkWriter) error { return w.Put(0, []byte("m/1"), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			e := openRebuildTest(t, dir)
			if err := e.Update(func(txn kv.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
				t.Fatal(err)
			}
			err := e.Rebuild(tc.fill)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("rebuild: %v; want an error containing %q", err, tc.err)
			}
			if got := contents(t, e); len(got) != 1 || got["k"] != "v" {
				t.Errorf("the old database after a failed rebuild: %v", got)
			}
			for _, s := range []string{".rebuild", ".old", ".sort"} {
				if _, err := os.Stat(dir + s); err == nil {
					t.Errorf("%s left after a failed rebuild", dir+s)
				}
			}
		})
	}
}

// TestRecoverRebuild: each state a crash can leave a rebuild in, and
// what the next open finds. A directory's content is a file naming it.
func TestRecoverRebuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		have  []string // of db, db.rebuild, db.old, db.sort; "db=" is an empty db
		want  string   // which content ends as db ("" none)
		error string
	}{
		{"no rebuild", []string{"db"}, "db", ""},
		{"nothing at all", nil, "", ""},
		{"build cut off", []string{"db", "db.rebuild", "db.sort"}, "db", ""},
		{"between the renames", []string{"db.rebuild", "db.old"}, "db.rebuild", ""},
		{"between the renames, db made since", []string{"db=", "db.rebuild", "db.old"}, "db.rebuild", ""},
		{"after the renames", []string{"db", "db.old"}, "db", ""},
		{"something else in the way", []string{"db", "db.rebuild", "db.old"}, "", "is in the way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			for _, h := range tc.have {
				name, empty := strings.CutSuffix(h, "=")
				if err := os.Mkdir(filepath.Join(parent, name), 0o700); err != nil {
					t.Fatal(err)
				}
				if !empty {
					if err := os.WriteFile(filepath.Join(parent, name, "was"), []byte(name), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			dir := filepath.Join(parent, "db")
			err := kv.RecoverRebuild(dir)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("recover: %v; want %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			was, _ := os.ReadFile(filepath.Join(dir, "was"))
			if string(was) != tc.want {
				t.Errorf("db holds %q, want %q", was, tc.want)
			}
			left, _ := filepath.Glob(dir + ".*")
			if len(left) > 0 {
				t.Errorf("left beside the database: %v", left)
			}
		})
	}
}
