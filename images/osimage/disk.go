package osimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"
)

const (
	mib        = 1 << 20
	sectorSize = 512
	// legacyBIOSBootable is GPT attribute bit 2, which syslinux's
	// gptmbr.bin looks for.
	legacyBIOSBootable = 1 << 2
	// gptMBR is syslinux's MBR boot code for GPT disks (Debian's extlinux).
	gptMBR = "/usr/lib/EXTLINUX/gptmbr.bin"
)

// layout places the partitions, in bytes; everything is MiB-aligned and
// the last MiB holds the backup GPT.
type layout struct {
	ESPStart, ESPSize   int64
	RootStart, RootSize int64
	Total               int64
}

// newLayout sizes the root file system for content bytes of files plus
// freeMiB, with a tenth more for the file system's own metadata.
func newLayout(espMiB int, content int64, freeMiB int) layout {
	root := content + content/10 + int64(freeMiB)*mib
	root = (root + 64*mib - 1) / (64 * mib) * (64 * mib)
	l := layout{ESPStart: mib, ESPSize: int64(espMiB) * mib}
	l.RootStart = l.ESPStart + l.ESPSize
	l.RootSize = root
	l.Total = l.RootStart + l.RootSize + mib
	return l
}

// table is the image's GPT.
func (l layout) table() *gpt.Table {
	part := func(i int, start, size int64, typ gpt.Type, name string, attrs uint64) *gpt.Partition {
		return &gpt.Partition{Index: i, Start: uint64(start / sectorSize), End: uint64((start+size)/sectorSize - 1),
			Size: uint64(size), Type: typ, Name: name, Attributes: attrs}
	}
	return &gpt.Table{LogicalSectorSize: sectorSize, PhysicalSectorSize: sectorSize, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{
			part(1, l.ESPStart, l.ESPSize, gpt.EFISystemPartition, "EFI system", 0),
			part(2, l.RootStart, l.RootSize, gpt.LinuxFilesystem, "root", legacyBIOSBootable),
		}}
}

// treeSize adds up the space the files under root take (whole 4 KiB
// blocks, as ext4 stores them).
func treeSize(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += (info.Size() + 4095) / 4096 * 4096
		if info.Size() == 0 {
			total += 4096 // an inode and a directory entry, roughly
		}
		return nil
	})
	return total, err
}

// makeDisk writes the image file at path: both file systems in place,
// the boot loaders, then the partition table and the MBR boot code.
func makeDisk(ctx context.Context, path string, l layout, root string, c bootConfig, work string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = f.Truncate(l.Total)
	f.Close()
	if err != nil {
		return fmt.Errorf("size %s: %w", path, err)
	}

	// The ESP: FAT32 with grub as the removable-media boot loader, the
	// path every UEFI firmware tries without boot entries. mkfs.vfat
	// picks the cluster size from the whole file, too large for FAT32 on
	// a small partition: one-sector clusters keep it FAT32.
	efi := filepath.Join(work, "BOOTX64.EFI")
	embedded := filepath.Join(work, "grub-embedded.cfg")
	if err := os.WriteFile(embedded, []byte(c.grubEmbedded()), 0o644); err != nil {
		return err
	}
	steps := [][]string{
		{"grub-mkstandalone", "-O", "x86_64-efi", "-o", efi, "--modules=part_gpt ext2",
			"--locales=", "--fonts=", "--themes=", "boot/grub/grub.cfg=" + embedded},
		{"mkfs.vfat", "-F", "32", "-s", "1", "-h", strconv.FormatInt(l.ESPStart/sectorSize, 10), "-n", "ESP", "-i", strings.ReplaceAll(c.ESPSerial, "-", ""),
			"--offset", strconv.FormatInt(l.ESPStart/sectorSize, 10), path, strconv.FormatInt(l.ESPSize/1024, 10)},
		{"mmd", "-i", fmt.Sprintf("%s@@%d", path, l.ESPStart), "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", fmt.Sprintf("%s@@%d", path, l.ESPStart), efi, "::/EFI/BOOT/BOOTX64.EFI"},
		// The root: ext4 without 64bit and metadata_csum, which
		// syslinux's ext4 reader does not know.
		{"mkfs.ext4", "-q", "-F", "-O", "^64bit,^metadata_csum", "-L", "root", "-U", c.RootUUID,
			"-E", fmt.Sprintf("offset=%d,root_owner=0:0", l.RootStart), "-d", root,
			path, strconv.FormatInt(l.RootSize/1024, 10) + "k"},
	}
	for _, s := range steps {
		if out, err := run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(out))
		}
	}
	if err := installExtlinux(ctx, path, l, work); err != nil {
		return err
	}
	return writeTable(path, l)
}

// installExtlinux installs extlinux into /boot/extlinux of the root file
// system, which it can only do on a mounted file system.
func installExtlinux(ctx context.Context, path string, l layout, work string) error {
	mnt := filepath.Join(work, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("loop,offset=%d,sizelimit=%d", l.RootStart, l.RootSize)
	if out, err := run(ctx, "mount", "-t", "ext4", "-o", opts, path, mnt); err != nil {
		return fmt.Errorf("mount the root file system: %w\n%s", err, tail(out))
	}
	out, err := run(ctx, "extlinux", "--install", filepath.Join(mnt, "boot", "extlinux"))
	// Unmount whatever happened, even if ctx has ended.
	if uout, uerr := run(context.Background(), "umount", mnt); uerr != nil {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		if err == nil {
			return fmt.Errorf("unmount the root file system: %w\n%s", uerr, tail(uout))
		}
	}
	if err != nil {
		return fmt.Errorf("install extlinux: %w\n%s", err, tail(out))
	}
	return nil
}

// writeTable writes the GPT (after the file systems: mkfs must not
// overwrite it) and syslinux's MBR boot code in front of it.
func writeTable(path string, l layout) error {
	boot, err := os.ReadFile(gptMBR)
	if err != nil {
		return fmt.Errorf("read syslinux's GPT MBR: %w", err)
	}
	if len(boot) > 440 {
		return fmt.Errorf("%s is %d bytes, more than the 440 of MBR boot code", gptMBR, len(boot))
	}
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadWrite), diskfs.WithSectorSize(sectorSize))
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = d.Partition(l.table())
	d.Close()
	if err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(boot, 0); err != nil {
		f.Close()
		return fmt.Errorf("write MBR boot code: %w", err)
	}
	return f.Close()
}

// checksums of the raw image and its compressed copy.
type checksums struct {
	raw, zst string
	zstBytes int64
}

// compress writes raw's zstd-compressed copy to dst, hashing both in one
// pass.
func compress(raw, dst string) (checksums, error) {
	in, err := os.Open(raw)
	if err != nil {
		return checksums{}, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return checksums{}, err
	}
	defer out.Close()
	rawHash, zstHash := sha256.New(), sha256.New()
	counter := &countWriter{}
	zw, err := zstd.NewWriter(io.MultiWriter(out, zstHash, counter),
		zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(2))
	if err != nil {
		return checksums{}, fmt.Errorf("zstd: %w", err)
	}
	if _, err := io.CopyBuffer(zw, io.TeeReader(in, rawHash), make([]byte, 4*mib)); err != nil {
		zw.Close()
		return checksums{}, fmt.Errorf("compress %s: %w", raw, err)
	}
	if err := zw.Close(); err != nil {
		return checksums{}, fmt.Errorf("compress %s: %w", raw, err)
	}
	if err := out.Close(); err != nil {
		return checksums{}, fmt.Errorf("write %s: %w", dst, err)
	}
	return checksums{raw: hex.EncodeToString(rawHash.Sum(nil)), zst: hex.EncodeToString(zstHash.Sum(nil)),
		zstBytes: counter.n}, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
