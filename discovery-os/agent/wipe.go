package agent

import (
	"context"
	"errors"
	"fmt"
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

// WipeDisks wipes every fixed, writable disk of inv, opened with open: the
// first and last MiB of each (partition tables and signatures), or every
// byte when full. Removable and read-only devices are left alone: a USB
// stick or a virtual CD may be what an operator booted from. It returns
// how many disks it wiped, and every disk's failure joined.
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
		edge := min(int64(wipeEdge), size)
		if err = write(0, edge); err == nil {
			err = write(size-edge, edge)
		}
	}
	if err != nil {
		return err
	}
	return dev.Sync()
}

// wipe carries out a release's wipe decision and reports it; the agent
// then asks for its next decision (approval again).
func (a *Agent) wipe(ctx context.Context, w *agentwire.DecisionWipe) error {
	full := w != nil && w.Full
	how := "partition tables and signatures"
	if full {
		how = "every byte"
	}
	a.status("released: wiping the disks (%s)", how)
	open := a.Disks
	if open == nil {
		open = OpenDisk
	}
	n, err := WipeDisks(ctx, a.Inventory, open, full)
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
