package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// testImage is 3 MiB: a random first MiB (incompressible, like a kernel)
// and zeros (like free space in a file system).
func testImage() []byte {
	img := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1<<20; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			img[i+j] = byte(v >> (8 * j))
		}
	}
	return img
}

func compress(t *testing.T, kind string, raw []byte) []byte {
	var b bytes.Buffer
	switch kind {
	case "gz":
		w := gzip.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "zst":
		w, _ := zstd.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		w.Close()
	default:
		return raw
	}
	return b.Bytes()
}

func TestWriteImage(t *testing.T) {
	raw := testImage()
	files := map[string][]byte{}
	for _, kind := range []string{"raw", "gz", "zst", "xz"} {
		files["/disk."+kind] = compress(t, kind, raw)
		files["/nosuffix-"+kind] = files["/disk."+kind] // detected by magic
	}
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	sumOf := func(p string) string { s := sha256.Sum256(files[p]); return hex.EncodeToString(s[:]) }

	tests := []struct {
		name, path, sum string
		wantErr         string
		wantWipe        bool
	}{
		{"raw", "/disk.raw", sumOf("/disk.raw"), "", false},
		{"gzip", "/disk.gz", sumOf("/disk.gz"), "", false},
		{"zstd", "/disk.zst", sumOf("/disk.zst"), "", false},
		{"xz", "/disk.xz", sumOf("/disk.xz"), "", false},
		{"gzip by magic", "/nosuffix-gz", sumOf("/disk.gz"), "", false},
		{"zstd by magic", "/nosuffix-zst", sumOf("/disk.zst"), "", false},
		{"xz by magic", "/nosuffix-xz", sumOf("/disk.xz"), "", false},
		{"checksum of the raw image for a gz download", "/disk.gz", sumOf("/disk.raw"), "checksum mismatch", true},
		{"wrong checksum", "/disk.raw", strings.Repeat("ab", 32), "checksum mismatch", true},
		{"upper-case checksum", "/disk.xz", strings.ToUpper(sumOf("/disk.xz")), "", false},
		{"not found", "/missing.raw", sumOf("/disk.raw"), "404", false},
		{"bad checksum text", "/disk.raw", "xyz", "not 64 hex digits", false},
		{"gz suffix on raw data", "/disk.raw#.gz", sumOf("/disk.raw"), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "disk")
			// The disk starts full of 0xee so a wipe or a short write shows.
			os.WriteFile(target, bytes.Repeat([]byte{0xee}, 4<<20), 0o644)
			d, err := os.OpenFile(target, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var pcts []int
			n, err := WriteImage(context.Background(), srv.Client(), srv.URL+tt.path, tt.sum, d, func(p int) { pcts = append(pcts, p) })
			got, _ := os.ReadFile(target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.wantWipe && (!errors.Is(err, ErrChecksum) || !bytes.Equal(got[:1<<20], make([]byte, 1<<20))) {
					t.Error("a mismatching image was not wiped")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(raw)) || !bytes.Equal(got[:len(raw)], raw) {
				t.Fatalf("wrote %d bytes; disk content matches: %v", n, bytes.Equal(got[:len(raw)], raw))
			}
			if !bytes.Equal(got[len(raw):], bytes.Repeat([]byte{0xee}, len(got)-len(raw))) {
				t.Error("bytes after the image were touched")
			}
			if len(pcts) == 0 || pcts[len(pcts)-1] != 100 {
				t.Errorf("progress %v", pcts)
			}
		})
	}
}

// A name that fits two disks (one's serial is the other's kernel name)
// picks neither.
func TestResolveDiskAmbiguous(t *testing.T) {
	inv := inventory.Inventory{Disks: []inventory.Disk{
		{Name: "sda", Path: "/dev/sda"},
		{Name: "sdb", Path: "/dev/sdb", Serial: "sda"},
	}}
	if got, err := ResolveDisk("sda", inv); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("got %q, %v; want it refused as ambiguous", got, err)
	}
}

func TestResolveDisk(t *testing.T) {
	inv := inventory.Inventory{Disks: []inventory.Disk{
		{Name: "sda", Path: "/dev/sda", ByPath: "pci-0000:00:1f.2-ata-1.0", WWN: "naa.5000c500a1b2c3d4", Serial: "S1"},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", ByPath: "pci-0000:01:00.0-nvme-1"},
		{Name: "sr0", Path: "/dev/sr0", ReadOnly: true},
	}}
	tests := []struct{ in, want, err string }{
		{"/dev/sda", "/dev/sda", ""},
		{"sda", "/dev/sda", ""},
		{"pci-0000:01:00.0-nvme-1", "/dev/nvme0n1", ""},
		{"/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0", "/dev/sda", ""},
		{"naa.5000c500a1b2c3d4", "/dev/sda", ""},
		{"S1", "/dev/sda", ""},
		{"/dev/sdb", "", "not one of this machine's disks"},
		{"/dev/sr0", "", "read-only"},
		{"", "", "names no target disk"},
		{"/dev/disk/by-path/", "", "not one of"},
		{"/dev/disk/by-path/pci-0000:00:1f.2-ata-2.0", "", "not one of"},
		{"/dev/disk/by-path/sda", "", "not one of"},
		{"/dev/disk/by-path/S1", "", "not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ResolveDisk(tt.in, inv)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
