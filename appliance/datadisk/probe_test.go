package datadisk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// image makes a sparse file of size bytes and runs cmd on it; "@" in cmd
// stands for the file's path. It skips the test when cmd[0] is missing.
func image(t *testing.T, size int64, cmd ...string) string {
	t.Helper()
	if _, err := exec.LookPath(cmd[0]); err != nil {
		t.Skipf("%s is not installed (its Debian package provides it): %v", cmd[0], err)
	}
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(cmd)-1)
	for i, a := range cmd[1:] {
		args[i] = strings.ReplaceAll(a, "@", path)
	}
	if out, err := exec.Command(cmd[0], args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
	}
	return path
}

// isoImage makes an ISO 9660 image with xorriso, volume id vol.
func isoImage(t *testing.T, vol string) string {
	t.Helper()
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skipf("xorriso is not installed: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "img.iso")
	out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", vol, "-o", path, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return path
}

// strictReader fails the test when Probe reads at or past the size it
// was given, and can fail every read with an I/O error.
type strictReader struct {
	t    *testing.T
	r    io.ReaderAt
	size int64
	err  error
}

func (s strictReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		s.t.Errorf("read of %d bytes at %d past size %d", len(p), off, s.size)
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.r.ReadAt(p, off)
}

func probeFile(t *testing.T, path string) (string, string, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Probe(strictReader{t: t, r: f, size: fi.Size()}, fi.Size())
}

// Crafted images for what needs no tool, and as fuzz seeds.

func mbrBytes(entries ...[16]byte) []byte {
	b := make([]byte, 1<<20)
	for i, e := range entries {
		copy(b[446+16*i:], e[:])
	}
	b[510], b[511] = 0x55, 0xAA
	return b
}

func mbrEntry(typ byte, start, sectors uint32) [16]byte {
	var e [16]byte
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	return e
}

func gptBytes(sector int) []byte {
	b := mbrBytes(mbrEntry(0xEE, 1, 0xFFFFFFFF))
	copy(b[sector:], "EFI PART")
	return b
}

// isoBytes is a minimal ISO 9660 head: descriptors at sector 16 onward.
func isoBytes(vol string, descs ...byte) []byte {
	b := make([]byte, isoFirstDesc+isoDescSize*(len(descs)+1))
	for i, typ := range append(descs, 255) {
		d := b[isoFirstDesc+i*isoDescSize:]
		d[0] = typ
		copy(d[1:6], "CD001")
		d[6] = 1
		if typ == 1 {
			copy(d[40:72], vol+strings.Repeat(" ", 32-len(vol)))
		}
	}
	return b
}

func extBytes(label string, compat, incompat, rocompat uint32) []byte {
	b := make([]byte, 64<<10)
	sb := b[extSuper:]
	le := binary.LittleEndian
	le.PutUint16(sb[extMagicOff:], extMagic)
	le.PutUint32(sb[extLogBlockOff:], 2)
	le.PutUint32(sb[extCompatOff:], compat)
	le.PutUint32(sb[extIncompatOff:], incompat)
	le.PutUint32(sb[extROCompatOff:], rocompat)
	copy(sb[extLabelOff:extLabelOff+16], label)
	return b
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func TestProbeRealImages(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		make        func(t *testing.T) string
		fstype, lab string
	}{
		{"ext4 labelled", func(t *testing.T) string {
			return image(t, 16*mib, "mke2fs", "-q", "-F", "-t", "ext4", "-L", Label, "@")
		}, "ext4", Label},
		{"ext4 without label", func(t *testing.T) string { return image(t, 16*mib, "mke2fs", "-q", "-F", "-t", "ext4", "@") }, "ext4", ""},
		{"ext4 with Format's options", func(t *testing.T) string {
			return image(t, 64*mib, append(append([]string{"mke2fs"}, MkfsArgs()...), "@")...)
		}, "ext4", Label},
		{"ext3 labelled", func(t *testing.T) string {
			return image(t, 16*mib, "mke2fs", "-q", "-F", "-t", "ext3", "-L", "old-data", "@")
		}, "ext3", "old-data"},
		{"ext2 labelled", func(t *testing.T) string {
			return image(t, 16*mib, "mke2fs", "-q", "-F", "-t", "ext2", "-L", Label, "@")
		}, "ext2", Label},
		{"ext2 without label", func(t *testing.T) string { return image(t, 8*mib, "mke2fs", "-q", "-F", "-t", "ext2", "@") }, "ext2", ""},
		{"ext4 external journal", func(t *testing.T) string {
			return image(t, 16*mib, "mke2fs", "-q", "-F", "-O", "journal_dev", "-L", Label, "@")
		}, "jbd", Label},
		{"fat12 labelled", func(t *testing.T) string { return image(t, 1440<<10, "mkfs.vfat", "-n", "FLOPPY", "@") }, "vfat", "FLOPPY"},
		{"fat16 labelled", func(t *testing.T) string { return image(t, 32*mib, "mkfs.vfat", "-F", "16", "-n", "EFI-BOOT", "@") }, "vfat", "EFI-BOOT"},
		{"fat32 labelled", func(t *testing.T) string { return image(t, 64*mib, "mkfs.vfat", "-F", "32", "-n", "STICK", "@") }, "vfat", "STICK"},
		{"fat32 without label", func(t *testing.T) string { return image(t, 64*mib, "mkfs.vfat", "-F", "32", "@") }, "vfat", ""},
		{"iso9660", func(t *testing.T) string { return isoImage(t, "FOUNDRY_1_0") }, "iso9660", "FOUNDRY_1_0"},
		{"gpt (sfdisk)", func(t *testing.T) string {
			return image(t, 16*mib, "sh", "-c", `printf 'label: gpt\n,8M,L\n' | sfdisk -q "$1"`, "sh", "@")
		}, "gpt", ""},
		{"mbr (sfdisk)", func(t *testing.T) string {
			return image(t, 16*mib, "sh", "-c", `printf 'label: dos\n,8M,83\n' | sfdisk -q "$1"`, "sh", "@")
		}, "mbr", ""},
		{"zeros", func(t *testing.T) string { return image(t, 4*mib, "true") }, "", ""},
		{"empty file", func(t *testing.T) string { return image(t, 0, "true") }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.name, "sfdisk") {
				if _, err := exec.LookPath("sfdisk"); err != nil {
					t.Skipf("sfdisk is not installed (Debian package fdisk); crafted tables are tested below: %v", err)
				}
			}
			fstype, label, err := probeFile(t, tt.make(t))
			if err != nil || fstype != tt.fstype || label != tt.lab {
				t.Errorf("Probe = %q, %q, %v; want %q, %q", fstype, label, err, tt.fstype, tt.lab)
			}
		})
	}
}

func TestProbeCrafted(t *testing.T) {
	hybrid := isoBytes("HYBRID", 1, 0)
	copy(hybrid, mbrBytes(mbrEntry(0x17, 0, 64))[:512])
	ctrl := extBytes("bad\x1b[2Jlabel\xff", 0, 0x40, 0)
	tests := []struct {
		name        string
		data        []byte
		fstype, lab string
	}{
		{"gpt 512-byte sectors", gptBytes(512), "gpt", ""},
		{"gpt 4096-byte sectors", gptBytes(4096), "gpt", ""},
		{"protective mbr only", mbrBytes(mbrEntry(0xEE, 1, 100)), "mbr", ""},
		{"mbr one partition", mbrBytes(mbrEntry(0x83, 2048, 4096)), "mbr", ""},
		{"mbr signature, no entries", mbrBytes(), "", ""},
		{"mbr entry of size 0", mbrBytes(mbrEntry(0x83, 2048, 0)), "", ""},
		{"mbr bad boot flag", func() []byte { b := mbrBytes(mbrEntry(0x83, 1, 1)); b[446] = 0x12; return b }(), "", ""},
		{"iso primary after a boot record", isoBytes("VOL", 0, 1), "iso9660", "VOL"},
		{"iso without primary", isoBytes("", 2), "iso9660", ""},
		{"iso cut inside its descriptors", isoBytes("CUT", 0, 0, 1)[:isoFirstDesc+isoDescSize+100], "iso9660", ""},
		{"hybrid iso is iso, not mbr", hybrid, "iso9660", "HYBRID"},
		{"ext4 by extents", extBytes("x", 0x4, 0x40, 0), "ext4", "x"},
		{"ext4 by ro_compat", extBytes("", 0x4, 0x2, 0x400), "ext4", ""},
		{"ext3 by journal", extBytes("y", 0x4, 0x2, 0x3), "ext3", "y"},
		{"ext2", extBytes("z", 0, 0x2, 0x1), "ext2", "z"},
		{"ext magic with absurd block size", func() []byte {
			b := extBytes("", 0, 0, 0)
			binary.LittleEndian.PutUint32(b[extSuper+extLogBlockOff:], 40)
			return b
		}(), "", ""},
		{"ext superblock cut short", extBytes(Label, 0, 0x40, 0)[:1500], "", ""},
		{"label of 16 bytes without NUL", extBytes("0123456789abcdef", 0, 0x40, 0), "ext4", "0123456789abcdef"},
		{"control characters stripped", ctrl, "ext4", "bad[2Jlabel"},
		{"zeros", make([]byte, 1<<20), "", ""},
		{"short", []byte{0xEB, 0x3C, 0x90}, "", ""},
		{"nothing", nil, "", ""},
	}
	for seed := int64(1); seed <= 8; seed++ {
		tests = append(tests, struct {
			name        string
			data        []byte
			fstype, lab string
		}{"random " + string(rune('0'+seed)), randomBytes(seed, 1<<20), "", ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := int64(len(tt.data))
			fstype, label, err := Probe(strictReader{t: t, r: bytes.NewReader(tt.data), size: size}, size)
			if err != nil || fstype != tt.fstype || label != tt.lab {
				t.Errorf("Probe = %q, %q, %v; want %q, %q", fstype, label, err, tt.fstype, tt.lab)
			}
		})
	}
}

func TestProbeSizeBounds(t *testing.T) {
	// A reader longer than the size it is given: Probe believes the size.
	data := extBytes(Label, 0, 0x40, 0)
	for _, size := range []int64{-1, 0, 1024, 2047} {
		fstype, _, err := Probe(strictReader{t: t, r: bytes.NewReader(data), size: size}, size)
		if fstype != "" || err != nil {
			t.Errorf("size %d: Probe = %q, %v; want nothing", size, fstype, err)
		}
	}
	if fstype, _, _ := Probe(bytes.NewReader(data), 2048); fstype != "ext4" {
		t.Errorf("size 2048 (the whole superblock): %q, want ext4", fstype)
	}
}

func TestProbeIOError(t *testing.T) {
	eio := errors.New("input/output error")
	_, _, err := Probe(strictReader{t: t, r: bytes.NewReader(nil), size: 1 << 20, err: eio}, 1<<20)
	if !errors.Is(err, eio) {
		t.Fatalf("Probe = %v, want the read error", err)
	}
}

func FuzzProbe(f *testing.F) {
	f.Add(extBytes(Label, 0x4, 0x40, 0)[:4096])
	f.Add(isoBytes("VOL", 1)[:isoFirstDesc+2*isoDescSize])
	f.Add(gptBytes(512)[:4096])
	f.Add(mbrBytes(mbrEntry(0x83, 1, 1))[:512])
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []int64{int64(len(data)), int64(len(data)) / 2} {
			fstype, label, err := Probe(strictReader{t: t, r: bytes.NewReader(data), size: size}, size)
			if err != nil {
				t.Fatalf("Probe of an in-memory image: %v", err)
			}
			if fstype == "" && label != "" {
				t.Fatalf("label %q without a file system", label)
			}
			if strings.ContainsFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7F }) {
				t.Fatalf("label %q has control characters", label)
			}
			if len(label) > 4*32 {
				t.Fatalf("label of %d bytes", len(label))
			}
		}
	})
}
