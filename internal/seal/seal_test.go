package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateKeepsOneKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "bmc.key")
	b1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Fatalf("key file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	sealed, err := b1.Seal([]byte("hunter2"), "52:54:00:12:34:56")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed value contains the plain text")
	}
	// A restart reads the same key and opens what the first start sealed.
	b2, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := b2.Open(sealed, "52:54:00:12:34:56")
	if err != nil || string(plain) != "hunter2" {
		t.Fatalf("open after restart: %q, %v", plain, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	b, err := LoadOrCreate(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(filepath.Join(dir, "b.key"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := b.Seal([]byte("pw"), "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, c := range []struct {
		name    string
		box     *Box
		sealed  []byte
		context string
	}{
		{"another machine's record", b, sealed, "52:54:00:00:00:02"},
		{"another key", other, sealed, "52:54:00:00:00:01"},
		{"damaged", b, flipped, "52:54:00:00:00:01"},
		{"truncated", b, sealed[:10], "52:54:00:00:00:01"},
		{"empty", b, nil, "52:54:00:00:00:01"},
		{"unknown version", b, append([]byte{9}, sealed[1:]...), "52:54:00:00:00:01"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.box.Open(c.sealed, c.context); !errors.Is(err, ErrOpen) {
				t.Fatalf("open: %v, want ErrOpen", err)
			}
		})
	}
}

func TestLoadOrCreateRefusesBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, make([]byte, KeySize), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{short, open} {
		if _, err := LoadOrCreate(p); err == nil {
			t.Errorf("LoadOrCreate(%s) accepted a bad key file", filepath.Base(p))
		}
	}
}

func FuzzOpen(f *testing.F) {
	b, err := New(make([]byte, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := b.Seal([]byte("pw"), "ctx")
	f.Add(good, "ctx")
	f.Add([]byte{1}, "")
	f.Fuzz(func(t *testing.T, sealed []byte, ctx string) {
		plain, err := b.Open(sealed, ctx)
		if err == nil && !bytes.Equal(sealed, good) && string(plain) == "pw" && ctx != "ctx" {
			t.Fatal("opened under another context")
		}
	})
}
