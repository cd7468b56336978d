package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// extent is a byte range of a disk, end exclusive.
type extent struct{ start, end int64 }

// Bounds of what partitionSpans reads: a table that claims more is read
// only this far, so a damaged or hostile table cannot make a wipe read
// gigabytes or loop.
const (
	maxGPTEntries     = 1024
	maxGPTEntryBytes  = 4096
	maxLogicalEntries = 128
	mbrSector         = 512
)

var gptSignature = []byte("EFI PART")

// partitionSpans returns the byte ranges of the partitions that the disk's
// GPT (512- or 4096-byte sectors) and MBR (with the logical partitions of
// an extended one) name, clipped to the disk's size. A disk without a
// table has none. Only a failed read is an error: what a table says is
// not trusted beyond clipping it to the disk, so a damaged table yields
// some ranges or none, never a failure.
func partitionSpans(r io.ReaderAt, size int64) ([]extent, error) {
	var out []extent
	add := func(start, n int64) {
		if start < 0 || n <= 0 || start >= size {
			return
		}
		out = append(out, extent{start, start + min(n, size-start)})
	}
	read := func(off int64, n int) ([]byte, error) {
		if off < 0 || off >= size {
			return nil, nil
		}
		b := make([]byte, min(int64(n), size-off))
		if _, err := r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read the partition table at %d: %w", off, err)
		}
		return b, nil
	}

	for _, ss := range []int64{512, 4096} {
		h, err := read(ss, 92)
		if err != nil {
			return nil, err
		}
		if len(h) < 92 || !bytes.HasPrefix(h, gptSignature) {
			continue
		}
		lba := binary.LittleEndian.Uint64(h[72:])
		n := int64(min(binary.LittleEndian.Uint32(h[80:]), maxGPTEntries))
		esz := int64(binary.LittleEndian.Uint32(h[84:]))
		if esz < 128 || esz > maxGPTEntryBytes || lba > uint64(size/ss) {
			continue
		}
		ents, err := read(int64(lba)*ss, int(n*esz))
		if err != nil {
			return nil, err
		}
		for i := int64(0); (i+1)*esz <= int64(len(ents)); i++ {
			e := ents[i*esz : (i+1)*esz]
			if bytes.Equal(e[:16], make([]byte, 16)) {
				continue // unused entry
			}
			first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
			if last < first || first > uint64(size/ss) {
				continue
			}
			add(int64(first)*ss, int64(min(last-first+1, uint64(size/ss)))*ss)
		}
		break
	}

	mbr, err := read(0, mbrSector)
	if err != nil {
		return nil, err
	}
	if len(mbr) < mbrSector || mbr[510] != 0x55 || mbr[511] != 0xAA {
		return out, nil
	}
	for i := range 4 {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start, n := int64(binary.LittleEndian.Uint32(e[8:]))*mbrSector, int64(binary.LittleEndian.Uint32(e[12:]))*mbrSector
		if typ == 0 || typ == 0xEE { // unused, or GPT's protective entry
			continue
		}
		add(start, n)
		if typ == 0x05 || typ == 0x0F || typ == 0x85 {
			logical, err := logicalSpans(read, start)
			if err != nil {
				return nil, err
			}
			for _, s := range logical {
				add(s.start, s.end-s.start)
			}
		}
	}
	return out, nil
}

// logicalSpans follows the chain of extended boot records of the extended
// partition at ext and returns its logical partitions (unclipped).
func logicalSpans(read func(int64, int) ([]byte, error), ext int64) ([]extent, error) {
	var out []extent
	seen := map[int64]bool{}
	for ebr := ext; len(seen) < maxLogicalEntries && !seen[ebr]; {
		seen[ebr] = true
		b, err := read(ebr, mbrSector)
		if err != nil {
			return nil, err
		}
		if len(b) < mbrSector || b[510] != 0x55 || b[511] != 0xAA {
			break
		}
		// The first entry is the logical partition, from this record;
		// the second the next record, from the extended partition.
		e, next := b[446:462], b[462:478]
		if e[4] != 0 {
			start := ebr + int64(binary.LittleEndian.Uint32(e[8:]))*mbrSector
			out = append(out, extent{start, start + int64(binary.LittleEndian.Uint32(e[12:]))*mbrSector})
		}
		off := int64(binary.LittleEndian.Uint32(next[8:])) * mbrSector
		if next[4] == 0 || off == 0 {
			break
		}
		ebr = ext + off
	}
	return out, nil
}
