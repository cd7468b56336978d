package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
)

func TestTableMappings(t *testing.T) {
	maps := []byte(`00400000-00c4f000 r-xp 00000000 fd:00 1234 /usr/bin/foundry
7f0000000000-7f0000800000 rw-s 00000000 fd:00 555 /data/db/000012.sst
7f0000800000-7f0000900000 rw-s 00000000 fd:00 556 /data/db/000013.sst
7f0000900000-7f0000a00000 rw-s 00000000 fd:00 557 /data/db/000001.vlog
7f0000a00000-7f0000b00000 rw-s 00000000 fd:00 558 /data/db/00002.mem
7f0000b00000-7f0000c00000 rw-s 00000000 fd:00 559 /other/db/000014.sst
7f0000c00000-7f0000d00000 rw-s 00000000 fd:00 560 /data/db/sub/000015.sst
7f0000d00000-7f0000e00000 rw-p 00000000 00:00 0
7f0000e00000-7f0000f00000 rw-s 00000000 fd:00 561 /data/db/000016.sst (deleted)
garbage
zz-7f0000f00000 rw-s 00000000 fd:00 562 /data/db/000017.sst
`)
	got := tableMappings(maps, "/data/db")
	want := []mapping{{0x7f0000000000, 0x7f0000800000, 555}, {0x7f0000800000, 0x7f0000900000, 556}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tableMappings = %v, want %v", got, want)
	}
}

// TestTablesMappedWithoutReadAround: the tables of a database on disk are
// mapped with MADV_RANDOM (VmFlags "rr" in smaps) once it is open, and a
// table that a flush writes later is advised by the next pass.
func TestTablesMappedWithoutReadAround(t *testing.T) {
	badgerOnly(t)
	if runtime.GOOS != "linux" {
		t.Skip("mappings are advised on Linux only")
	}
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		mustCreate(t, db, Machine{MAC: mac(i), State: StateDiscovered})
	}
	// Close flushes the memtable into a table, which the next Open maps.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, advised, paths := smapsTables(t, db.tables.dir)
	if tables == 0 {
		t.Fatalf("no table of %s is mapped", dir)
	}
	if n, err := db.tables.advised(); advised != tables || n != tables {
		t.Fatalf("%d of %d table mappings advised MADV_RANDOM (advisor: %d, last error %v)", advised, tables, n, err)
	}

	// A table written while open: Badger flushes its memtable into a new
	// table before it drops a prefix that has keys.
	for i := 50; i < 100; i++ {
		mustCreate(t, db, Machine{MAC: mac(i), State: StateDiscovered})
	}
	if err := db.kv.Update(func(txn kv.Txn) error { return txn.Set([]byte("zz-test/x"), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.kv.(*kv.Badger).DB().DropPrefix([]byte("zz-test/")); err != nil {
		t.Fatal(err)
	}
	db.tables.pass()
	tables, advised, after := smapsTables(t, db.tables.dir)
	var added []string
	for p := range after {
		if !paths[p] {
			added = append(added, p)
		}
	}
	if len(added) == 0 || advised != tables {
		t.Fatalf("after a flush: new tables %v; %d of %d table mappings advised", added, advised, tables)
	}
}

// smapsTables counts this process's mappings of tables in dir and those
// with VM_RAND_READ ("rr").
func smapsTables(t *testing.T, dir string) (tables, advised int, paths map[string]bool) {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
		return 0, 0, nil
	}
	in := false
	paths = map[string]bool{}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) >= 6 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			path := strings.Join(f[5:], " ")
			in = strings.HasSuffix(path, ".sst") && filepath.Dir(path) == dir
			if in {
				tables++
				paths[path] = true
			}
			continue
		}
		if in && len(f) > 0 && f[0] == "VmFlags:" {
			for _, fl := range f[1:] {
				if fl == "rr" {
					advised++
				}
			}
		}
	}
	return tables, advised, paths
}

// FuzzTableMappings: whatever /proc/self/maps holds, the parser returns
// only well-formed ranges of *.sst files directly in the directory, never
// more than the lines it was given, and does not panic.
func FuzzTableMappings(f *testing.F) {
	f.Add([]byte("7f0000000000-7f0000800000 rw-s 00000000 fd:00 555 /data/db/000012.sst\n"), "/data/db")
	f.Add([]byte("00400000-00c4f000 r-xp 00000000 fd:00 1234 /usr/bin/foundry\nzz-1 rw-s 0 fd:00 9 /data/db/1.sst\n"), "/data/db")
	f.Fuzz(func(t *testing.T, maps []byte, dir string) {
		got := tableMappings(maps, dir)
		if len(got) > bytes.Count(maps, []byte("\n"))+1 {
			t.Fatalf("%d mappings from %d lines", len(got), bytes.Count(maps, []byte("\n"))+1)
		}
		for _, m := range got {
			if m.end <= m.start {
				t.Fatalf("empty or reversed range %+v", m)
			}
		}
	})
}
