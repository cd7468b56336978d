package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// Image imports and the data disk.
//
// The image library lives on the data disk with the database (image_dir
// defaults to <data_dir>/images). An import writes gigabytes; the store
// keeps SpaceReserve free for Badger, which dies (SIGBUS) when it cannot
// allocate a page it writes. So an import must never take that space: it
// is refused up front while the store refuses writes or the disk is below
// importFloor, and stopped when the disk gets there while it streams (each
// write is checked first) or converts (checked every spaceCheckEvery). A
// stopped import is failed with the reason and leaves no file, which
// gives the space back. The image directory's own ENOSPC (another file
// system) ends an import the same way.

// spaceReader is the part of *store.DB that tells the data disk's state;
// a Store without it is not checked.
type spaceReader interface {
	Space() store.Space
	Writable() error
}

// errImageDiskFull: the image directory's file system had no space left
// for a write of an import (ENOSPC).
var errImageDiskFull = errors.New("the image directory's disk is full")

// spaceCheckEvery is how often a running import checks the free space
// besides before each write: qemu-img writes the converted image itself.
const spaceCheckEvery = 100 * time.Millisecond

// importFloor is the free space below which imports stop: the store's
// reserve and half as much again, which the database's own writes may
// still take (the store refuses them only below the reserve).
func importFloor(reserve int64) int64 { return reserve + reserve/2 }

// importRoom decides whether an import may write with sp as the data
// disk's state: nil, or an error wrapping store.ErrNoSpace that says why.
// No guard (Reserve 0) or an unknown free space: no check.
func importRoom(sp store.Space) error {
	if sp.Reserve <= 0 || sp.Free < 0 {
		return nil
	}
	if floor := importFloor(sp.Reserve); sp.Full || sp.Free < floor {
		return fmt.Errorf("%w: %d MiB free on the file system holding %s; image imports need %d MiB free there, so that the %d MiB the database keeps in reserve stay free",
			store.ErrNoSpace, sp.Free>>20, sp.Dir, floor>>20, sp.Reserve>>20)
	}
	return nil
}

// importSpace reads the data disk's state now and decides (importRoom).
// While the store refuses writes, its own message is the answer.
func (s *Server) importSpace() error {
	sr, ok := s.Store.(spaceReader)
	if !ok {
		return nil
	}
	sp := sr.Space()
	if sp.Full {
		if err := sr.Writable(); err != nil {
			return err
		}
	}
	return importRoom(sp)
}

// diskFull wraps an ENOSPC of a write to the image directory as
// errImageDiskFull; other errors are returned as they are.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || err != nil && strings.Contains(err.Error(), "No space left on device") {
		return fmt.Errorf("%w: %v", errImageDiskFull, err)
	}
	return err
}

// spaceWriter is an import's file: each write first checks the disk
// (importSpace), and a refusal or an ENOSPC ends the import with that
// cause.
type spaceWriter struct {
	w      io.Writer
	check  func() error
	cancel context.CancelCauseFunc
}

func (sw *spaceWriter) Write(b []byte) (int, error) {
	if err := sw.check(); err != nil {
		err = fmt.Errorf("stopped: %w", err)
		sw.cancel(err)
		return 0, err
	}
	n, err := sw.w.Write(b)
	if full := diskFull(err); full != err {
		err = fmt.Errorf("stopped: %w", full)
		sw.cancel(err)
	}
	return n, err
}

// watchSpace checks the disk every spaceCheckEvery until the returned
// stop is called, and ends the import (cancel) when it is too full.
func (s *Server) watchSpace(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(spaceCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := s.importSpace(); err != nil {
				cancel(fmt.Errorf("stopped: %w", err))
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
