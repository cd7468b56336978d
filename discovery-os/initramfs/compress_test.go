package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// segments splits an image the way the kernel's unpacker walks it: a cpio
// archive where the data starts with the newc magic, zero padding skipped,
// a compressed stream (gzip or xz) otherwise. It returns each archive's
// records with contents.
func segments(t *testing.T, img []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	for len(img) > 0 {
		if img[0] == 0 {
			img = img[1:]
			continue
		}
		var raw []byte
		var used int
		switch {
		case bytes.HasPrefix(img, []byte("070701")):
			end := bytes.Index(img, []byte("TRAILER!!!"))
			if end < 0 {
				t.Fatal("stored archive without a trailer")
			}
			used = end + len("TRAILER!!!") + 2 // NUL and newc's 4-byte padding
			used = (used + 3) &^ 3
			raw = img[:used]
		case bytes.HasPrefix(img, []byte{0x1f, 0x8b}):
			zr, err := gzip.NewReader(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
			used = len(img) // the gzip stream is last
		case bytes.HasPrefix(img, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
			// Stream flags (bytes 6-7): check type 1 is CRC32, the only
			// one the kernel's decoder accepts besides none.
			if img[6] != 0 || img[7] != 1 {
				t.Fatalf("xz stream check type %d, want CRC32 (1)", img[7])
			}
			// The xz program, not Go's decoder: the archive uses the x86
			// branch filter, which the kernel decodes and Go's does not.
			cmd := exec.Command("xz", "--decompress", "--stdout")
			cmd.Stdin = bytes.NewReader(img)
			var err error
			if raw, err = cmd.Output(); err != nil {
				t.Fatalf("xz -d: %v", err)
			}
			used = len(img)
		case bytes.HasPrefix(img, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			zr, err := zstd.NewReader(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
			zr.Close()
			used = len(img)
		default:
			t.Fatalf("unknown data at a segment start: % x", img[:min(8, len(img))])
		}
		recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		seg := map[string]string{}
		for _, r := range recs {
			b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
			if err != nil {
				t.Fatal(err)
			}
			seg[r.Name] = string(b)
		}
		out = append(out, seg)
		img = img[used:]
	}
	return out
}

func unxz(t *testing.T, s string) string {
	t.Helper()
	if len(s) < 8 || s[6] != 0 || s[7] != 1 {
		t.Fatalf("not an xz stream with CRC32 checks: % x", s[:min(8, len(s))])
	}
	zr, err := xz.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compressedSpec(t *testing.T) Spec {
	s := spec(t)
	dir := t.TempDir()
	fw := filepath.Join(dir, "rtl8168e-3.fw")
	os.WriteFile(fw, bytes.Repeat([]byte("firmware "), 100), 0o644)
	s.Modules = append(s.Modules, "virtio_net")
	s.Compress, s.Compression, s.FirmwareCompress = XZ, XZ, XZ
	s.Firmware = []Firmware{{Name: "rtl_nic/rtl8168e-3.fw", Src: fw}}
	s.Links = []Link{{Path: "/sbin/modprobe", Target: "/init"}}
	s.Cache = filepath.Join(dir, "cache")
	return s
}

// TestBuildCompressed: modules and firmware compressed one by one in a
// stored archive first, the rest in an xz archive after it; the index
// names the compressed modules; a rebuild from the cache is the same
// image, byte for byte.
func TestBuildCompressed(t *testing.T) {
	if _, err := os.Stat("/usr/bin/xz"); err != nil {
		t.Skip("xz (xz-utils) not installed")
	}
	s := compressedSpec(t)
	var buf bytes.Buffer
	rep, err := BuildReport(&buf, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stored+rep.Compressed != int64(buf.Len()) || rep.Stored%512 != 0 {
		t.Errorf("report: stored %d + compressed %d, image %d bytes", rep.Stored, rep.Compressed, buf.Len())
	}
	fwSize := rep.Sizes["lib/firmware/rtl_nic/rtl8168e-3.fw.xz"]
	segs := segments(t, buf.Bytes())
	if len(segs) != 2 {
		t.Fatalf("%d archives, want a stored one and a compressed one", len(segs))
	}
	stored, rest := segs[0], segs[1]
	const base = "lib/modules/6.1.0-99-amd64/"
	for _, m := range []string{"kernel/drivers/net/ethernet/intel/e1000/e1000.ko", "kernel/drivers/net/virtio_net.ko", "kernel/net/core/failover.ko"} {
		z, ok := stored[base+m+".xz"]
		if !ok {
			t.Errorf("%s.xz not in the stored archive: %v", m, keys(stored))
			continue
		}
		orig, _ := os.ReadFile(filepath.Join(s.ModuleDir, m))
		if unxz(t, z) != string(orig) {
			t.Errorf("%s.xz does not decompress to the module", m)
		}
		if _, dup := rest[base+m+".xz"]; dup {
			t.Errorf("%s in both archives", m)
		}
	}
	if got := unxz(t, stored["lib/firmware/rtl_nic/rtl8168e-3.fw.xz"]); got != strings.Repeat("firmware ", 100) {
		t.Errorf("firmware decompresses to %q", got)
	}
	if fwSize != int64(len(stored["lib/firmware/rtl_nic/rtl8168e-3.fw.xz"])) || fwSize == 0 {
		t.Errorf("report says the firmware takes %d bytes", fwSize)
	}
	for _, n := range []string{"init", "usr/share/misc/pci.ids", base + "modules.dep", base + "modules.alias", base + "modules.softdep", "sbin/modprobe"} {
		if _, ok := rest[n]; !ok {
			t.Errorf("%s missing from the compressed archive", n)
		}
	}
	if rest["sbin/modprobe"] != "/init" {
		t.Errorf("/sbin/modprobe → %q", rest["sbin/modprobe"])
	}
	ix, err := kmod.ParseDep(strings.NewReader(rest[base+"modules.dep"]))
	if err != nil {
		t.Fatal(err)
	}
	if p := ix.Paths["virtio_net"]; p != "kernel/drivers/net/virtio_net.ko.xz" {
		t.Errorf("modules.dep names virtio_net %q", p)
	}
	if !slices.Equal(ix.Deps["virtio_net"], []string{"net_failover", "failover"}) {
		t.Errorf("virtio_net needs %v", ix.Deps["virtio_net"])
	}

	// e1000, ata_piix, libata, scsi_mod, scsi_common, virtio_net,
	// net_failover, failover and the firmware.
	if cached, _ := filepath.Glob(filepath.Join(s.Cache, "*.xz")); len(cached) != 9 {
		t.Fatalf("cache holds %d files, want 9", len(cached))
	}
	// A rebuild, from the cache: the same bytes.
	var again bytes.Buffer
	if err := Build(&again, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("a rebuild from the cache differs")
	}
}

func TestBuildCompressedErrors(t *testing.T) {
	if _, err := os.Stat("/usr/bin/xz"); err != nil {
		t.Skip("xz (xz-utils) not installed")
	}
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"absolute firmware name", func(s *Spec) { s.Firmware[0].Name = "/lib/firmware/x" }, "not a clean relative path"},
		{"escaping firmware name", func(s *Spec) { s.Firmware[0].Name = "../x" }, "not a clean relative path"},
		{"firmware twice", func(s *Spec) { s.Firmware = append(s.Firmware, s.Firmware[0]) }, "named twice"},
		{"missing firmware", func(s *Spec) { s.Firmware[0].Src = "/nonexistent" }, "read rtl_nic/rtl8168e-3.fw"},
		{"link over init", func(s *Spec) { s.Links = append(s.Links, Link{Path: "/init", Target: "/x"}) }, "the image already has /init"},
		{"relative link", func(s *Spec) { s.Links[0].Path = "sbin/x" }, "want an absolute path"},
		{"gzip per file", func(s *Spec) { s.Compress = Gzip }, "xz and zstd only"},
		{"zstd firmware", func(s *Spec) { s.FirmwareCompress = Zstd }, "the kernel reads back xz only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := compressedSpec(t)
			tt.modify(&s)
			err := Build(io.Discard, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestBuildStoredWithGzip: a tree that already ships compressed modules
// keeps them as they are, in the stored archive, before a gzip one.
func TestBuildStoredWithGzip(t *testing.T) {
	if _, err := os.Stat("/usr/bin/xz"); err != nil {
		t.Skip("xz (xz-utils) not installed")
	}
	dir := t.TempDir()
	mods := kmodtest.Tree(t, filepath.Join(dir, "lib/modules/6.12.0-1-amd64"), kmodtest.Debian)
	p := filepath.Join(mods, "kernel/drivers/net/ethernet/intel/e1000/e1000.ko")
	orig, _ := os.ReadFile(p)
	z, err := xzRun(orig)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p+".xz", z, 0o644)
	os.Remove(p)
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("agent"), 0o755)
	var buf bytes.Buffer
	if err := Build(&buf, Spec{Init: agent, ModuleDir: mods, Modules: []string{"e1000"}}); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, buf.Bytes())
	if len(segs) != 2 || segs[0]["lib/modules/6.12.0-1-amd64/kernel/drivers/net/ethernet/intel/e1000/e1000.ko.xz"] != string(z) {
		t.Fatalf("archives: %d; stored one holds %v", len(segs), keys(segs[0]))
	}
	if _, ok := segs[1]["lib/modules/6.12.0-1-amd64/modules.dep"]; !ok {
		t.Errorf("the gzip archive after the stored one lacks the index: %v", keys(segs[1]))
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBuildZstd: modules compressed with zstd and a dictionary trained on
// them, the dictionary beside the index, each module read back by the
// agent's loader code; a set too small to train on gets no dictionary.
func TestBuildZstd(t *testing.T) {
	for _, p := range []string{"/usr/bin/zstd", "/usr/bin/xz"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not installed", p)
		}
	}
	// Twenty modules of 160 KB of aliases each: enough to train on.
	var mods []kmodtest.Module
	var names []string
	for i := range 20 {
		var aliases []string
		for j := range 4000 {
			aliases = append(aliases, fmt.Sprintf("pci:v0000%04Xd0000%04Xsv*sd*bc02sc00i*", 0x8000+i, j))
		}
		mods = append(mods, kmodtest.Module{Path: fmt.Sprintf("kernel/drivers/net/ethernet/x/nic%d.ko", i), Aliases: aliases})
		names = append(names, fmt.Sprintf("nic%d", i))
	}
	for _, tt := range []struct {
		name     string
		mods     []kmodtest.Module
		names    []string
		wantDict bool
	}{
		{"trained", mods, names, true},
		{"too few to train on", mods[:3], names[:3], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			modDir := kmodtest.Tree(t, filepath.Join(dir, "lib/modules/6.1.0-99-amd64"), tt.mods)
			agent := filepath.Join(dir, "agent")
			os.WriteFile(agent, []byte("agent"), 0o755)
			var buf bytes.Buffer
			s := Spec{Init: agent, ModuleDir: modDir, Modules: tt.names, Compress: Zstd, Compression: Zstd, Cache: filepath.Join(dir, "cache")}
			if _, err := BuildReport(&buf, s); err != nil {
				t.Fatal(err)
			}
			segs := segments(t, buf.Bytes())
			if len(segs) != 2 {
				t.Fatalf("%d archives", len(segs))
			}
			const base = "lib/modules/6.1.0-99-amd64/"
			dict, hasDict := segs[1][base+kmod.DictFile]
			if hasDict != tt.wantDict {
				t.Fatalf("dictionary in the image: %v, want %v", hasDict, tt.wantDict)
			}
			var raw, packed int
			for _, m := range tt.mods {
				z, ok := segs[0][base+m.Path+".zst"]
				if !ok {
					t.Fatalf("%s.zst not stored: %v", m.Path, keys(segs[0]))
				}
				p := filepath.Join(dir, "back.ko.zst")
				os.WriteFile(p, []byte(z), 0o644)
				var d []byte
				if hasDict {
					d = []byte(dict)
				}
				got, err := kmod.ReadFileDict(p, d)
				if err != nil {
					t.Fatal(err)
				}
				orig, _ := os.ReadFile(filepath.Join(modDir, m.Path))
				if !bytes.Equal(got, orig) {
					t.Fatalf("%s does not decompress to the module", m.Path)
				}
				if hasDict {
					if _, err := kmod.ReadFileDict(p, nil); err == nil {
						t.Errorf("%s decompressed without its dictionary", m.Path)
					}
				}
				raw += len(orig)
				packed += len(z)
			}
			t.Logf("%d modules: %d bytes, %d compressed, dictionary %d", len(tt.mods), raw, packed, len(dict))
			ix, err := kmod.ParseDep(strings.NewReader(segs[1][base+"modules.dep"]))
			if err != nil || ix.Paths["nic1"] != "kernel/drivers/net/ethernet/x/nic1.ko.zst" {
				t.Errorf("modules.dep: %v, %v", ix.Paths, err)
			}
		})
	}
}

// TestBuildFirmwarePlain: firmware not compressed on its own goes into the
// compressed archive as it is, under the name the driver asks for.
func TestBuildFirmwarePlain(t *testing.T) {
	s := spec(t)
	fw := filepath.Join(t.TempDir(), "tg3.bin")
	os.WriteFile(fw, []byte("tigon"), 0o644)
	s.Firmware = []Firmware{{Name: "tigon/tg3.bin", Src: fw}}
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, buf.Bytes())
	if len(segs) != 1 || segs[0]["lib/firmware/tigon/tg3.bin"] != "tigon" {
		t.Fatalf("%d archives; firmware %q", len(segs), segs[0]["lib/firmware/tigon/tg3.bin"])
	}
}
