package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Free space.
//
// Badger maps its write-ahead logs (two memtables' worth each), its value
// logs and every new table into memory as sparse files. Writing into a
// page that the file system cannot allocate is not an error Badger can
// return but a SIGBUS that kills the process, and Open writes such pages
// too (a new memtable, a new value log, the flush of the memtables it
// replays), so a data disk that filled up once also kept the appliance
// from starting again.
//
// The store therefore keeps space back, two ways:
//
//   - a guard: every write transaction (update) first reads the file
//     system's free space and, below Options.SpaceReserve, is refused with
//     ErrNoSpace — the transaction still runs read-only, so one that turns
//     out to change nothing succeeds. Reads are never refused.
//   - a ballast: a file of SpaceReserve bytes, allocated (not sparse), in
//     the database directory. It is deleted when the disk fills, which
//     gives Badger that much room to finish what it started (a memtable
//     flush, a compaction), to close, and to open again on the full disk.
//
// Writes resume once 2¼ × SpaceReserve are free: the ballast is allocated
// again and SpaceReserve stays free. Something else filling the disk in
// the instant between the guard's reading and Badger's page fault is not
// covered; the reserve makes that window a race against SpaceReserve bytes.

// DefaultSpaceReserve is the free space the store keeps back by default.
// It covers what Badger may write without a new transaction of ours, with
// this store's settings (Open): the rest of a 16 MiB write-ahead log, the
// flush of two 16 MiB memtables, and a level-0 compaction (five tables of
// at most 16 MiB and the 10 MiB base level they overlap) — all of it
// before Snappy compression, which shrinks Foundry's JSON several times.
const DefaultSpaceReserve = 128 << 20

// ErrNoSpace is returned by every write while the file system holding the
// database has less free space than the store keeps back; the message says
// how much is free and from when writes resume. Nothing is written.
var ErrNoSpace = errors.New("data disk full")

// ballastName is the ballast file in the database directory (Badger keeps
// to its own names there: *.sst, *.vlog, *.mem, MANIFEST, …).
const ballastName = "foundry-space-reserve"

// openSlack is what Open may write besides the flush of replayed
// memtables: a new memtable's and value log's first pages, the manifest.
const openSlack = 4 << 20

// spaceCheckEvery is how often the store reads the free space when nothing
// writes, so that the ballast goes as soon as something else fills the
// disk and /readyz follows a disk that was cleaned up.
const spaceCheckEvery = time.Second

// Space is the state of the file system holding the database.
type Space struct {
	// Dir is the database directory.
	Dir string
	// Free is the space available there, in bytes (statfs f_bavail); -1
	// when it cannot be read.
	Free int64
	// Reserve is the space the store keeps back; 0 when there is no guard
	// (an in-memory store, or SpaceReserve negative).
	Reserve int64
	// Full means writes are refused with ErrNoSpace.
	Full bool
}

// ResumeAt is the free space at which refused writes resume.
func (s Space) ResumeAt() int64 { return resumeAt(s.Reserve) }

func resumeAt(reserve int64) int64 { return 2*reserve + reserve/8 }

// spaceGuard refuses writes on a full disk and keeps the ballast.
type spaceGuard struct {
	dir, ballast string
	reserve      int64
	free         func(dir string) (int64, error)
	log          *slog.Logger
	stop, done   chan struct{}
	stopOnce     sync.Once

	mu      sync.Mutex // guards the fields below and the ballast file
	full    bool
	avail   int64
	statErr bool // a failed reading was logged
}

// newSpaceGuard sets up the guard for the database in dir before Badger
// opens it, and refuses (ErrNoSpace) when even after dropping the ballast
// there is not room for what Open writes. nil: no guard.
func newSpaceGuard(dir string, opt Options, log *slog.Logger) (*spaceGuard, error) {
	if opt.InMemory {
		return nil, nil
	}
	if opt.SpaceReserve < 0 {
		// No guard, and no ballast left from when there was one.
		if err := os.Remove(filepath.Join(dir, ballastName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the space reserve: %w", err)
		}
		return nil, nil
	}
	g := &spaceGuard{dir: dir, ballast: filepath.Join(dir, ballastName), reserve: opt.SpaceReserve,
		free: opt.FreeSpace, log: log}
	if g.reserve == 0 {
		g.reserve = DefaultSpaceReserve
	}
	if g.free == nil {
		g.free = freeSpace
	}
	// The guard refuses writes exactly while the ballast is missing. One
	// of another size (SpaceReserve changed) is made again.
	fi, err := os.Stat(g.ballast)
	present := err == nil && fi.Size() == g.reserve
	if !present {
		os.Remove(g.ballast)
	}
	g.avail, err = g.free(dir)
	switch {
	case err != nil:
		g.log.Warn("cannot read the data disk's free space; writes are not guarded", "dir", dir, "err", err)
		g.statErr, g.avail = true, -1
	case present && g.avail < g.reserve:
		g.refresh() // releases the ballast, and says so
	case !present && g.avail >= resumeAt(g.reserve) && allocate(g.ballast, g.reserve) == nil:
		g.avail, _ = g.free(dir)
	case !present:
		os.Remove(g.ballast)
		g.full = true
		log.Error("data disk full: refusing writes until space is freed", "dir", dir,
			"free", mib(g.avail), "reserve", mib(g.reserve), "resume_at", mib(resumeAt(g.reserve)))
	}
	if need := pendingFlush(dir) + openSlack; g.avail >= 0 && g.avail < need {
		return nil, fmt.Errorf("%w: %s free on the file system holding %s, and opening the database may write %s (the flush of the write-ahead logs it replays): free space there",
			ErrNoSpace, mib(g.avail), dir, mib(need))
	}
	return g, nil
}

// watch re-reads the free space every spaceCheckEvery until close.
func (g *spaceGuard) watch() {
	defer close(g.done)
	t := time.NewTicker(spaceCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			g.mu.Lock()
			g.refresh()
			g.mu.Unlock()
		}
	}
}

func (g *spaceGuard) start() {
	if g == nil {
		return
	}
	g.stop, g.done = make(chan struct{}), make(chan struct{})
	go g.watch()
}

// close stops watch; it reports whether Badger may close, which flushes
// its memtable: not when the disk is too full for that flush.
func (g *spaceGuard) close() (mayFlush bool, free, need int64) {
	if g == nil {
		return true, -1, 0
	}
	if g.stop != nil {
		g.stopOnce.Do(func() { close(g.stop) })
		<-g.done
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh()
	need = pendingFlush(g.dir) + openSlack
	return g.avail < 0 || g.avail >= need, g.avail, need
}

// check reads the free space and returns nil when writes are allowed,
// else an error wrapping ErrNoSpace.
func (g *spaceGuard) check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh()
	if !g.full {
		return nil
	}
	return g.fullErr()
}

func (g *spaceGuard) fullErr() error {
	free := "an unknown amount"
	if g.avail >= 0 {
		free = mib(g.avail)
	}
	return fmt.Errorf("%w: %s free on the file system holding %s; writes resume once %s are free (the database keeps %s of it in reserve)",
		ErrNoSpace, free, g.dir, mib(resumeAt(g.reserve)), mib(g.reserve))
}

// state returns the guard's view now.
func (g *spaceGuard) state() Space {
	if g == nil {
		return Space{Free: -1}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh()
	return Space{Dir: g.dir, Free: g.avail, Reserve: g.reserve, Full: g.full}
}

// spaceStep is the guard's decision: from whether writes are refused now,
// the free space and the reserve, whether they are refused next and what
// becomes of the ballast.
func spaceStep(full bool, free, reserve int64) (nextFull bool, act ballastAction) {
	switch {
	case free < 0:
		return full, keepBallast // unknown: change nothing
	case !full && free < reserve:
		return true, releaseBallast
	case full && free >= resumeAt(reserve):
		return false, allocateBallast
	}
	return full, keepBallast
}

type ballastAction int

const (
	keepBallast ballastAction = iota
	releaseBallast
	allocateBallast
)

func (a ballastAction) String() string {
	return [...]string{"keep", "release", "allocate"}[a]
}

// refresh reads the free space and applies spaceStep. g.mu is held.
func (g *spaceGuard) refresh() {
	free, err := g.free(g.dir)
	if err != nil {
		if !g.statErr {
			g.log.Warn("cannot read the data disk's free space; writes are not guarded", "dir", g.dir, "err", err)
			g.statErr = true
		}
		g.avail = -1
		return
	}
	g.avail = free
	next, act := spaceStep(g.full, free, g.reserve)
	switch act {
	case releaseBallast:
		err := os.Remove(g.ballast)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			g.log.Error("release the space reserve", "file", g.ballast, "err", err)
		}
		if f, err := g.free(g.dir); err == nil {
			g.avail = f
		}
		g.log.Error("data disk full: refusing writes until space is freed", "dir", g.dir,
			"free", mib(g.avail), "reserve", mib(g.reserve), "resume_at", mib(resumeAt(g.reserve)))
	case allocateBallast:
		if err := allocate(g.ballast, g.reserve); err != nil {
			os.Remove(g.ballast)
			g.log.Warn("data disk: cannot allocate the space reserve; writes stay refused", "file", g.ballast, "err", err)
			return
		}
		if f, err := g.free(g.dir); err == nil {
			g.avail = f
		}
		g.log.Info("data disk has space again: accepting writes", "dir", g.dir, "free", mib(g.avail), "reserve", mib(g.reserve))
	}
	g.full = next
}

// pendingFlush is the space taken by Badger's write-ahead logs in dir: at
// most what flushing them to tables writes (tables are compressed).
func pendingFlush(dir string) int64 {
	return dirUsage(dir, func(name string) bool { return strings.HasSuffix(name, ".mem") })
}

// dirUsage is the space taken by the files of dir whose names match.
func dirUsage(dir string, match func(name string) bool) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if !match(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += allocatedSize(fi)
		}
	}
	return n
}

// roomForCopy refuses (ErrNoSpace) to write a second copy of the database,
// as a rebuild does beside the first, when that would leave less than the
// reserve free.
func (g *spaceGuard) roomForCopy() error {
	if g == nil {
		return nil
	}
	if err := g.check(); err != nil {
		return err
	}
	need := dirUsage(g.dir, func(name string) bool { return name != ballastName })
	avail, err := g.free(g.dir)
	if err != nil {
		return nil // unknown: not guarded, as every write then
	}
	if avail-need < g.reserve {
		return fmt.Errorf("%w: %s free on the file system holding %s; rewriting the database needs %s for its new copy and keeps %s in reserve",
			ErrNoSpace, mib(avail), g.dir, mib(need), mib(g.reserve))
	}
	return nil
}

// allocate makes path a file of size bytes whose blocks are all allocated.
func allocate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := preallocate(f, size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeZeros is preallocate's fallback on file systems without fallocate.
func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

func mib(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// Space reads the free space of the file system holding the database now
// and returns the guard's state (Full: writes are refused).
func (db *DB) Space() Space { return db.space.state() }

// Writable returns nil while the store accepts writes, else an error
// wrapping ErrNoSpace that says how much space is free and from when
// writes resume (for /readyz).
func (db *DB) Writable() error { return db.space.check() }
