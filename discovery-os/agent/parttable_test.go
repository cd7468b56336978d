package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"slices"
	"testing"

	"github.com/diskfs/go-diskfs/partition"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// mbrEntry writes MBR (or EBR) entry i of sector b: type typ from LBA
// start for n sectors, and the boot signature.
func mbrEntry(b []byte, i int, typ byte, start, n uint32) {
	e := b[446+16*i:]
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], n)
	b[510], b[511] = 0x55, 0xAA
}

// gptDisk is a disk of size bytes with sector size ss whose GPT names
// parts (first and last LBA, inclusive), behind a protective MBR.
func gptDisk(size int64, ss int64, parts [][2]uint64) []byte {
	d := make([]byte, size)
	mbrEntry(d, 0, 0xEE, 1, uint32(size/512-1))
	h := d[ss:]
	copy(h, gptSignature)
	binary.LittleEndian.PutUint64(h[72:], 2) // entries from LBA 2
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	for i, p := range parts {
		e := d[2*ss+int64(i)*128:]
		e[0] = 0xAF // any type GUID but zero
		binary.LittleEndian.PutUint64(e[32:], p[0])
		binary.LittleEndian.PutUint64(e[40:], p[1])
	}
	return d
}

func TestPartitionSpans(t *testing.T) {
	const mib = 1 << 20
	extended := func() []byte {
		d := make([]byte, 64*mib)
		mbrEntry(d, 0, 0x83, 2048, 2048)     // 1–2 MiB
		mbrEntry(d, 1, 0x05, 8192, 65536)    // extended: 4–36 MiB
		ebr1 := d[8192*512:]                 // its first record
		mbrEntry(ebr1, 0, 0x83, 2048, 4096)  // logical: 5–7 MiB
		mbrEntry(ebr1, 1, 0x05, 16384, 8192) // next record at 4+8 MiB
		ebr2 := d[(8192+16384)*512:]
		mbrEntry(ebr2, 0, 0x8e, 2048, 2048) // logical: 13–14 MiB
		return d
	}
	loop := func() []byte {
		d := make([]byte, 16*mib)
		mbrEntry(d, 0, 0x0f, 2048, 8192) // extended: 1–5 MiB
		a := d[mib:]
		mbrEntry(a, 0, 0x83, 2048, 100) // logical at 2 MiB
		mbrEntry(a, 1, 0x05, 4096, 1)   // next record at 1+2 MiB
		b := d[3*mib:]
		mbrEntry(b, 0, 0x83, 1, 1)    // logical at 3 MiB + 512
		mbrEntry(b, 1, 0x05, 4096, 1) // next record: itself
		return d
	}
	for _, tc := range []struct {
		name string
		disk []byte
		want []extent
	}{
		{"no table", make([]byte, 4*mib), nil},
		{"gpt 512", gptDisk(32*mib, 512, [][2]uint64{{2048, 4095}, {8192, 65502}}),
			[]extent{{mib, 2 * mib}, {4 * mib, 65503 * 512}}},
		{"gpt 4096", gptDisk(32*mib, 4096, [][2]uint64{{256, 511}}),
			[]extent{{mib, 2 * mib}}},
		{"gpt past the disk is clipped", gptDisk(8*mib, 512, [][2]uint64{{4096, 1 << 40}, {1 << 40, 1<<40 + 5}, {100, 50}}),
			[]extent{{2 * mib, 8 * mib}}},
		{"mbr with logical partitions", extended(),
			[]extent{{mib, 2 * mib}, {4 * mib, 36 * mib}, {5 * mib, 7 * mib}, {13 * mib, 14 * mib}}},
		{"a record chain that loops ends", loop(),
			[]extent{{mib, 5 * mib}, {2 * mib, 2*mib + 100*512}, {3*mib + 512, 3*mib + 1024}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := partitionSpans(bytes.NewReader(tc.disk), int64(len(tc.disk)))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("spans %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// A released machine's disk as an install left it, with the image's
// partition table and the agent's cloud-init seed: the quick wipe must
// leave no signature at either end of any partition and nothing of the
// seed (the last tenant's keys and host name), while the bulk of a large
// partition stays as it was (it is the quick wipe).
func TestWipeInstalledDisk(t *testing.T) {
	const mib = 1 << 20
	secret := []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5-the-last-tenant's-key")
	files := map[string][]byte{"meta-data": []byte("{\"instance-id\":\"x\"}\n"),
		"user-data": append(append([]byte("#cloud-config\n{\"ssh_authorized_keys\":[\""), secret...), "\"]}\n"...), "network-config": []byte("{}\n")}
	for _, tc := range []struct {
		name string
		tbl  partition.Table
		root extent // the image's partition, larger than wipeWhole
	}{
		{"gpt", &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
			Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 202751, Type: gpt.LinuxFilesystem, Name: "root"}}},
			extent{mib, 99 * mib}},
		{"mbr", &mbr.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512,
			Partitions: []*mbr.Partition{{Index: 1, Type: mbr.Linux, Start: 2048, Size: 200704, Bootable: true}}},
			extent{mib, 99 * mib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := imageOnDisk(t, 100, 200, tc.tbl)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			// The file system: a pattern over the whole partition.
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, int(tc.root.end-tc.root.start)), tc.root.start); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := WriteSeed(p, files); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(p); !bytes.Contains(b, secret) {
				t.Fatal("the seed's key is not on the disk before the wipe: the test proves nothing")
			}
			inv := inventory.Inventory{Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 200 * mib}}}
			open := func(string) (Disk, error) { return os.OpenFile(p, os.O_RDWR, 0) }
			if n, err := WipeDisks(context.Background(), inv, open, false); n != 1 || err != nil {
				t.Fatalf("wiped %d, %v", n, err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secret) {
				t.Error("the last install's seed (its SSH key) survived the wipe")
			}
			zero := make([]byte, mib)
			for _, at := range []struct {
				what string
				off  int64
			}{
				{"the disk's first MiB", 0}, {"the disk's last MiB", 199 * mib},
				{"the partition's first MiB", tc.root.start}, {"the partition's last MiB", tc.root.end - mib},
			} {
				if !bytes.Equal(b[at.off:at.off+mib], zero) {
					t.Errorf("%s (at %d) is not zeroed", at.what, at.off)
				}
			}
			if mid := b[tc.root.start+mib : tc.root.end-mib]; !bytes.Equal(mid, bytes.Repeat([]byte{0xAB}, len(mid))) {
				t.Error("the quick wipe wrote the middle of the partition")
			}
		})
	}
}

// FuzzPartitionSpans: whatever the first sectors of a disk hold, the
// spans stay on the disk and are not empty.
func FuzzPartitionSpans(f *testing.F) {
	f.Add(gptDisk(1<<20, 512, [][2]uint64{{34, 2000}})[:16384], int64(1<<20))
	d := make([]byte, 4096)
	mbrEntry(d, 0, 0x05, 1, 100)
	mbrEntry(d[512:], 1, 0x05, 1, 1)
	f.Add(d, int64(1<<30))
	f.Fuzz(func(t *testing.T, head []byte, size int64) {
		if size < 0 {
			size = -size
		}
		disk := make([]byte, min(size, 1<<18))
		copy(disk, head)
		spans, err := partitionSpans(bytes.NewReader(disk), int64(len(disk)))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spans {
			if s.start < 0 || s.end <= s.start || s.end > int64(len(disk)) {
				t.Fatalf("extent %v outside a disk of %d bytes", s, len(disk))
			}
		}
	})
}
