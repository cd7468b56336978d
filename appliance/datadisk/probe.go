package datadisk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The kinds Probe reports. An empty string means that Probe recognised
// nothing, which is not the same as blank: Scan also checks for zeros.
const (
	FSExt4    = "ext4"
	FSExt3    = "ext3"
	FSExt2    = "ext2"
	FSJournal = "jbd" // an ext3/ext4 external journal device: not mountable, never blank
	FSISO9660 = "iso9660"
	FSVFAT    = "vfat"
	FSGPT     = "gpt"
	FSMBR     = "mbr"
)

// IsExt reports whether fstype is a file system the ext4 driver mounts.
func IsExt(fstype string) bool {
	return fstype == FSExt4 || fstype == FSExt3 || fstype == FSExt2
}

// ext2/3/4 superblock: 1024 bytes at offset 1024.
const (
	extSuper       = 1024
	extMagicOff    = 0x38
	extMagic       = 0xEF53
	extLogBlockOff = 0x18
	extCompatOff   = 0x5C
	extIncompatOff = 0x60
	extROCompatOff = 0x64
	extLabelOff    = 0x78

	extCompatHasJournal = 0x4
	extIncompatJournal  = 0x8 // journal_dev
	// What ext3 knew; anything else in these words is ext4's (as blkid decides).
	extIncompatExt3 = 0x2 | 0x4 | 0x10 // filetype, recover, meta_bg
	extROCompatExt3 = 0x1 | 0x2 | 0x4  // sparse_super, large_file, btree_dir
)

// ISO 9660 volume descriptors start at sector 16 (2048-byte sectors).
const (
	isoFirstDesc = 16 * 2048
	isoDescSize  = 2048
	isoMaxDescs  = 32 // a real image has a handful; hostile ones end here
)

// Probe reads the superblocks of the file systems and partition tables the
// appliance may meet on a disk and tells which it found: ext2/3/4 (with the
// 16-byte volume label), ISO 9660 (the primary volume identifier), FAT (the
// boot sector's label; "NO NAME" is no label), GPT (a header at LBA 1 for
// 512- or 4096-byte sectors) or MBR (boot signature and a partition entry
// that is in use). It tries them in that order, so a hybrid ISO on a USB
// stick is "iso9660" rather than its MBR.
//
// r is untrusted: Probe never reads at or past size, and a device too short
// for a structure simply does not have it. err is only an I/O error;
// recognising nothing is ("", "", nil). Labels are cut at the first NUL,
// trimmed of spaces, and stripped of control characters and invalid UTF-8,
// because the console shows them.
func Probe(r io.ReaderAt, size int64) (fstype, label string, err error) {
	p := prober{r: r, size: size}
	for _, try := range []func() (string, string, error){p.ext, p.iso9660, p.gpt, p.vfat, p.mbr} {
		fstype, label, err = try()
		if err != nil || fstype != "" {
			return fstype, label, err
		}
	}
	return "", "", nil
}

type prober struct {
	r    io.ReaderAt
	size int64
}

// read returns n bytes at off, or nil when they lie (partly) beyond size.
func (p prober) read(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || p.size < 0 || off > p.size || int64(n) > p.size-off {
		return nil, nil
	}
	b := make([]byte, n)
	got, err := p.r.ReadAt(b, off)
	if got == n {
		return b, nil // io.ReaderAt may report io.EOF along with a full read
	}
	if err == nil || errors.Is(err, io.EOF) {
		// Shorter than it said: treat like a device too short.
		return nil, nil
	}
	return nil, fmt.Errorf("read %d bytes at %d: %w", n, off, err)
}

func (p prober) ext() (string, string, error) {
	sb, err := p.read(extSuper, 1024)
	if sb == nil || err != nil {
		return "", "", err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[extMagicOff:]) != extMagic {
		return "", "", nil
	}
	// Block size is 1024 << s_log_block_size, at most 64 KiB; a larger
	// value is random bytes that happen to hold the magic.
	if le.Uint32(sb[extLogBlockOff:]) > 6 {
		return "", "", nil
	}
	compat := le.Uint32(sb[extCompatOff:])
	incompat := le.Uint32(sb[extIncompatOff:])
	rocompat := le.Uint32(sb[extROCompatOff:])
	label := cleanLabel(sb[extLabelOff : extLabelOff+16])
	switch {
	case incompat&extIncompatJournal != 0:
		return FSJournal, label, nil
	case incompat&^extIncompatExt3 != 0 || rocompat&^extROCompatExt3 != 0:
		return FSExt4, label, nil
	case compat&extCompatHasJournal != 0:
		return FSExt3, label, nil
	default:
		return FSExt2, label, nil
	}
}

func (p prober) iso9660() (string, string, error) {
	found := false
	for i := int64(0); i < isoMaxDescs; i++ {
		d, err := p.read(isoFirstDesc+i*isoDescSize, isoDescSize)
		if d == nil || err != nil {
			if found {
				return FSISO9660, "", err
			}
			return "", "", err
		}
		if string(d[1:6]) != "CD001" {
			break
		}
		found = true
		switch d[0] {
		case 1: // primary volume descriptor; the volume identifier is at 40
			return FSISO9660, cleanLabel(d[40:72]), nil
		case 255: // set terminator
			return FSISO9660, "", nil
		}
	}
	if found {
		return FSISO9660, "", nil
	}
	return "", "", nil
}

func (p prober) gpt() (string, string, error) {
	for _, sector := range []int64{512, 4096} {
		h, err := p.read(sector, 8)
		if err != nil {
			return "", "", err
		}
		if h != nil && string(h) == "EFI PART" {
			return FSGPT, "", nil
		}
	}
	return "", "", nil
}

func (p prober) vfat() (string, string, error) {
	bs, err := p.read(0, 512)
	if bs == nil || err != nil {
		return "", "", err
	}
	le := binary.LittleEndian
	if !(bs[0] == 0xEB && bs[2] == 0x90) && bs[0] != 0xE9 {
		return "", "", nil
	}
	switch le.Uint16(bs[11:]) { // bytes per sector
	case 512, 1024, 2048, 4096:
	default:
		return "", "", nil
	}
	spc := bs[13] // sectors per cluster: a power of two
	if spc == 0 || spc&(spc-1) != 0 {
		return "", "", nil
	}
	if le.Uint16(bs[14:]) == 0 || bs[16] == 0 || bs[16] > 2 { // reserved sectors, FAT count
		return "", "", nil
	}
	if media := bs[21]; media != 0xF0 && media < 0xF8 {
		return "", "", nil
	}
	// FAT12/16 keep the extended boot record at 36, FAT32 at 64; the
	// type string is what tells a FAT boot sector from an MBR's code.
	for _, ebr := range []struct{ sig, label, typ int }{{38, 43, 54}, {66, 71, 82}} {
		if string(bs[ebr.typ:ebr.typ+3]) != "FAT" {
			continue
		}
		label := ""
		if bs[ebr.sig] == 0x29 || bs[ebr.sig] == 0x28 {
			label = cleanLabel(bs[ebr.label : ebr.label+11])
		}
		if label == "NO NAME" {
			label = ""
		}
		return FSVFAT, label, nil
	}
	return "", "", nil
}

func (p prober) mbr() (string, string, error) {
	s, err := p.read(0, 512)
	if s == nil || err != nil {
		return "", "", err
	}
	if s[510] != 0x55 || s[511] != 0xAA {
		return "", "", nil
	}
	used := false
	for i := 0; i < 4; i++ {
		e := s[446+16*i : 446+16*(i+1)]
		if e[0] != 0 && e[0] != 0x80 { // boot flag: anything else is not a table
			return "", "", nil
		}
		if e[4] != 0 && binary.LittleEndian.Uint32(e[12:]) != 0 {
			used = true
		}
	}
	if !used {
		return "", "", nil
	}
	return FSMBR, "", nil
}

// cleanLabel makes a label read from an untrusted disk safe to print.
func cleanLabel(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
