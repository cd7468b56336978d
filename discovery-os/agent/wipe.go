package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// wipeEdge is how much of each end of a disk a quick wipe zeroes: the
// first MiB holds the MBR, the GPT and the superblocks of LVM, md 1.1/1.2,
// ext*, XFS, btrfs and ZFS's first labels; the last MiB the backup GPT,
// md 0.90/1.0 and ZFS's last labels.
const wipeEdge = 1 << 20

// wipeChunk is the write size of a full wipe.
const wipeChunk = 4 << 20

// wipeWhole is the largest partition a quick wipe zeroes whole: the
// cloud-init seed the agent adds (SeedSize, and up to a MiB more that its
// alignment gives it) holds the last install's host name, SSH keys,
// network and first-boot URL, and FAT puts those files anywhere in it, so
// none of it may outlive a release.
const wipeWhole = SeedSize + 2<<20

// WipeDisks wipes every fixed, writable disk of inv, opened with open, or
// every byte of it when full. The quick wipe zeroes the first and last MiB
// of the disk (MBR, GPT and its backup, and the signatures kept there),
// and of every partition its MBR or GPT names (the file system, LVM, md,
// ZFS and LUKS signatures kept at a partition's ends, which zeroing the
// disk's own ends misses: an installed Debian's root starts at 65 MiB),
// and every partition of at most wipeWhole whole; the table is read
// before anything is written, so the disk must open for reading too.
// Removable and read-only devices are left alone: a USB stick or a
// virtual CD may be what an operator booted from. It returns how many
// disks it wiped, and every disk's failure joined.
func WipeDisks(ctx context.Context, inv inventory.Inventory, open func(path string) (Disk, error), full bool) (int, error) {
	var errs []error
	n := 0
	for _, d := range inv.Disks {
		if d.Removable || d.ReadOnly || d.SizeBytes == 0 {
			continue
		}
		if err := wipeDisk(ctx, d, open, full); err != nil {
			errs = append(errs, fmt.Errorf("wipe %s: %w", d.Path, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func wipeDisk(ctx context.Context, d inventory.Disk, open func(string) (Disk, error), full bool) (err error) {
	dev, err := open(d.Path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dev.Close(); err == nil {
			err = cerr
		}
	}()
	size := int64(d.SizeBytes)
	zero := make([]byte, min(int64(wipeChunk), size))
	write := func(off, n int64) error {
		for n > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min(n, int64(len(zero)))
			if _, err := dev.WriteAt(zero[:k], off); err != nil {
				return err
			}
			off, n = off+k, n-k
		}
		return nil
	}
	if full {
		err = write(0, size)
	} else {
		var spans []extent
		if spans, err = quickSpans(dev, size); err != nil {
			return err
		}
		for _, sp := range spans {
			if err = write(sp.start, sp.end-sp.start); err != nil {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	return dev.Sync()
}

// quickSpans is what a quick wipe of dev (size bytes) zeroes: the ends of
// the disk and of each partition its table names, and partitions of at
// most wipeWhole whole. A dev that is no io.ReaderAt (a test's) gets the
// disk's ends only.
func quickSpans(dev Disk, size int64) ([]extent, error) {
	ends := func(s extent) []extent {
		if s.end-s.start <= 2*wipeEdge {
			return []extent{s}
		}
		return []extent{{s.start, s.start + wipeEdge}, {s.end - wipeEdge, s.end}}
	}
	out := ends(extent{0, size})
	r, ok := dev.(io.ReaderAt)
	if !ok {
		return out, nil
	}
	parts, err := partitionSpans(r, size)
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		if p.end-p.start <= wipeWhole {
			out = append(out, p)
		} else {
			out = append(out, ends(p)...)
		}
	}
	return out, nil
}

// wipe carries out a release's wipe decision and reports it; the agent
// then asks for its next decision (approval again).
func (a *Agent) wipe(ctx context.Context, w *agentwire.DecisionWipe) error {
	full, secure := w != nil && w.Full, w != nil && w.Secure
	how := "partition tables and signatures"
	switch {
	case secure:
		how = "the drives' own secure erase"
	case full:
		how = "every byte"
	}
	a.status("released: wiping the disks (%s)", how)
	open := a.Disks
	if open == nil {
		open = OpenDisk
	}
	var n int
	var err error
	if secure {
		n, how, err = SecureEraseDisks(ctx, a.Inventory, a.SecureErase, open)
		// A drive's refusals, one per disk, could make the report
		// longer than the appliance takes: printable bounds it.
		if how = printable(how); how == "" {
			how = "no fixed disk"
		}
	} else {
		n, err = WipeDisks(ctx, a.Inventory, open, full)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		a.fail(err)
		a.report(ctx, false, printable(err.Error()))
		return a.sleep(ctx, durationOr(a.FailureDelay, 30*time.Second))
	}
	a.status("wiped %d disks (%s): waiting for approval", n, how)
	a.report(ctx, true, fmt.Sprintf("wiped %d disks (%s)", n, how))
	return nil
}
