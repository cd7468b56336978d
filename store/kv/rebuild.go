package kv

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Rebuilding a Badger database.
//
// A migration that rewrites most of the database through transactions or
// write batches leaves Badger's levels to rebalance: every table passes
// through level 0 and the compactions that follow, which build up to a
// dozen tables at once each, hold far more memory than the appliance is
// given (docs/robustness.md, sessions 17 and 18: the first start after the
// schema 3 migration of 100,000 machines went past 300 MiB). Rebuild writes
// the new content into a database of its own with Badger's StreamWriter,
// which builds the bottom level directly from sorted input, one table
// builder per stream, so nothing is left to compact; then it swaps the
// directories.
//
// The swap is two renames in the parent directory: <dir> to <dir>.old,
// then <dir>.rebuild to <dir>. RecoverRebuild, run before each open, ends
// a swap a crash interrupted: <dir>.rebuild is complete once <dir>.old
// exists (the old database is moved aside only after the new one is
// written, synced and closed), so it finishes the renames; a <dir>.rebuild
// without <dir>.old is a build cut off, which it deletes (the old database
// is untouched and the migration runs again).

// How a rebuild bounds its memory. Badger's StreamWriter builds each
// stream's tables in a table builder that holds the table's blocks, and
// their compressed copies, until it is written; a full builder is written
// by a goroutine of its own, and up to 16 of them run at once, so a writer
// that produces faster than the disk syncs tables holds 16 full builders
// (measured rebuilding 100,000 machines: 616 MiB of heap in use at the
// peak with 8 MiB tables, 357 MiB with 2 MiB ones; 161 MiB with chunks). So the BulkWriter cuts every
// stream into chunks of bulkChunk bytes, each a Badger stream of its own
// that it ends (one table each), and starts a chunk only while fewer than
// bulkInFlight ended chunks are not yet tables in the new database.
const (
	// bulkChunk is the input of one table; it is also the table size the
	// StreamWriter is given, which sizes a builder's first buffer (twice
	// that) and caps a table whose input compresses less than expected.
	bulkChunk = 2 << 20
	// bulkInFlight is how many tables may be waiting to be written.
	bulkInFlight = 3
	// bulkBatch is how much a BulkWriter buffers before it hands entries
	// to the StreamWriter, and bulkRun how much unordered data it sorts in
	// memory before it spills a sorted run to disk.
	bulkBatch = 2 << 20
	bulkRun   = 8 << 20
	// bulkStall is how long a BulkWriter waits for a table to be written
	// before it stops waiting (a failed write is reported by the flush at
	// the end).
	bulkStall = 30 * time.Second
)

func rebuildDirs(dir string) (next, old, runs string) {
	dir = filepath.Clean(dir)
	return dir + ".rebuild", dir + ".old", dir + ".sort"
}

// RecoverRebuild ends or discards a rebuild of the database in dir that a
// crash interrupted (see Rebuild); it does nothing when there was none.
func RecoverRebuild(dir string) error {
	next, old, runs := rebuildDirs(dir)
	if err := os.RemoveAll(runs); err != nil {
		return fmt.Errorf("remove a rebuild's sorted runs: %w", err)
	}
	if !exists(old) {
		if err := os.RemoveAll(next); err != nil {
			return fmt.Errorf("remove a rebuild cut off: %w", err)
		}
		return nil
	}
	if exists(next) {
		// The second rename did not happen. An empty dir in its place
		// was made by someone opening the database meanwhile; anything
		// more is not ours to remove.
		if exists(dir) {
			if err := os.Remove(dir); err != nil {
				return fmt.Errorf("finish a rebuild's swap: %s is in the way: %w", dir, err)
			}
		}
		if err := os.Rename(next, dir); err != nil {
			return fmt.Errorf("finish a rebuild's swap: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("finish a rebuild's swap: %w", err)
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove the database a rebuild replaced: %w", err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ErrUnsupported is returned by Rebuild for a database that has no
// directory to rebuild (in memory).
var ErrUnsupported = errors.New("not supported by this engine")

// Rebuild replaces the database's whole content by what fill writes to
// the BulkWriter it is given, which may read the database meanwhile (the
// engine is open and unchanged until fill and the new database's build
// have returned). Files in the database's directory that are not Badger's
// own are carried over to the new one. When Rebuild fails before the swap,
// the database is as it was; after, the engine is closed and the error
// says so (the next open ends the swap: RecoverRebuild).
func (b *Badger) Rebuild(fill func(*BulkWriter) error) error {
	opt := b.db.Opts()
	if opt.InMemory || opt.Dir == "" {
		return fmt.Errorf("rebuild: %w", ErrUnsupported)
	}
	dir := filepath.Clean(opt.Dir)
	next, old, runs := rebuildDirs(dir)
	if err := os.RemoveAll(next); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := b.build(opt, next, runs, fill); err != nil {
		os.RemoveAll(next)
		os.RemoveAll(runs)
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := os.RemoveAll(runs); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := carryOver(dir, next); err != nil {
		os.RemoveAll(next)
		return fmt.Errorf("rebuild: %w", err)
	}
	err := b.db.Close()
	b.closed = true
	if err != nil {
		return fmt.Errorf("rebuild: close the old database: %w", err)
	}
	if err := os.Rename(dir, old); err != nil {
		return fmt.Errorf("rebuild: move the old database aside: %w", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := RecoverRebuild(dir); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	db, err := badger.Open(opt)
	if err != nil {
		return fmt.Errorf("rebuild: open the new database: %w", err)
	}
	b.db, b.closed = db, false
	return nil
}

// build writes the new database in next.
func (b *Badger) build(opt badger.Options, next, runs string, fill func(*BulkWriter) error) error {
	// The memtable is never used (the StreamWriter writes tables), but
	// Open and Prepare each allocate one: the smallest whose batch limit
	// (15 %) still holds a value at the value threshold.
	nopt := opt.WithDir(next).WithValueDir(next).WithSyncWrites(false).
		WithMemTableSize(max(opt.ValueThreshold*100/15+1<<20, 2<<20))
	size := int64(bulkChunk)
	for i := 2; i < opt.MaxLevels; i++ {
		size /= int64(opt.TableSizeMultiplier)
	}
	nopt = nopt.WithBaseTableSize(max(size, 64<<10))
	ndb, err := badger.Open(nopt)
	if err != nil {
		return fmt.Errorf("create the new database: %w", err)
	}
	sw := ndb.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		sw.Cancel()
		ndb.Close()
		return fmt.Errorf("prepare the new database: %w", err)
	}
	w := &BulkWriter{db: ndb, sw: sw, buf: z.NewBuffer(bulkBatch, "foundry-rebuild"), runDir: runs,
		streams: map[uint32]*bulkStream{}}
	defer w.buf.Release()
	err = fill(w)
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		sw.Cancel()
		ndb.Close()
		return err
	}
	if err := ndb.Close(); err != nil {
		return fmt.Errorf("close the new database: %w", err)
	}
	return syncDir(next)
}

// carryOver moves every file of dir that Badger did not write into next
// (the store's space reserve).
func carryOver(dir, next string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || badgerFile(e.Name()) || exists(filepath.Join(next, e.Name())) {
			continue
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(next, e.Name())); err != nil {
			return fmt.Errorf("carry %s over: %w", e.Name(), err)
		}
	}
	return syncDir(next)
}

func badgerFile(name string) bool {
	switch name {
	case "MANIFEST", "KEYREGISTRY", "LOCK", "DISCARD", "MANIFEST-REWRITE", "KEYREGISTRY-REWRITE":
		return true
	}
	for _, ext := range []string{".sst", ".vlog", ".mem"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// BulkWriter receives a rebuild's content: ordered streams (Put), whose
// keys a caller gives in ascending order, and unordered entries (Add),
// which it sorts (spilling sorted runs to disk past bulkRun) and writes
// when the fill returns. An unordered key must not fall inside the range
// of an ordered stream: Badger's bottom level holds tables whose ranges
// do not overlap.
type BulkWriter struct {
	db      *badger.DB // the new database
	sw      *badger.StreamWriter
	buf     *z.Buffer
	streams map[uint32]*bulkStream
	// Chunks: the last Badger stream id given, and how many chunks have
	// been ended (each is at least one table once written).
	sid   uint32
	ended int

	// Unordered entries: an arena of length-prefixed pairs and their
	// offsets, sorted and spilled to runs in runDir when full.
	arena  []byte
	offs   []int
	runDir string
	runs   []string
}

// bulkStream is an ordered stream, or the unordered entries between two.
type bulkStream struct {
	first, last []byte
	sid         uint32 // the Badger stream of its current chunk; 0: none
	n           int    // bytes in the current chunk
}

// Put adds key to ordered stream id (any id but 0); key must be greater
// than the stream's last. Put copies key and value.
func (w *BulkWriter) Put(id uint32, key, value []byte) error {
	if id == 0 {
		return fmt.Errorf("bulk write: stream 0: ids start at 1")
	}
	s := w.streams[id]
	if s == nil {
		s = &bulkStream{first: bytes.Clone(key)}
		w.streams[id] = s
	}
	if s.last != nil && bytes.Compare(key, s.last) <= 0 {
		return fmt.Errorf("bulk write: stream %d: key %q after %q, not in ascending order", id, key, s.last)
	}
	s.last = append(s.last[:0], key...)
	return w.write(s, key, value)
}

func (w *BulkWriter) write(s *bulkStream, key, value []byte) error {
	if s.sid == 0 {
		w.pace()
		w.sid++
		s.sid = w.sid
	}
	badger.KVToBuffer(&pb.KV{Key: key, Value: value, Version: 1, StreamId: s.sid}, w.buf)
	s.n += len(key) + len(value)
	if s.n >= bulkChunk {
		return w.endChunk(s)
	}
	if w.buf.LenNoPadding() < bulkBatch {
		return nil
	}
	return w.flush()
}

// endChunk ends s's current chunk: the StreamWriter sends its builder to
// be written.
func (w *BulkWriter) endChunk(s *bulkStream) error {
	if s.sid == 0 {
		return nil
	}
	badger.KVToBuffer(&pb.KV{StreamId: s.sid, StreamDone: true}, w.buf)
	s.sid, s.n = 0, 0
	w.ended++
	return w.flush()
}

// pace waits while bulkInFlight ended chunks are not yet tables, or until
// no table has been written for bulkStall.
func (w *BulkWriter) pace() {
	last, since := -1, time.Now()
	for {
		tables := len(w.db.Tables())
		if w.ended-tables < bulkInFlight {
			return
		}
		if tables != last {
			last, since = tables, time.Now()
		} else if time.Since(since) > bulkStall {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *BulkWriter) flush() error {
	if w.buf.LenNoPadding() == 0 {
		return nil
	}
	if err := w.sw.Write(w.buf); err != nil {
		return fmt.Errorf("bulk write: %w", err)
	}
	w.buf.Reset()
	return nil
}

// Add adds an entry in any order; Add copies key and value.
func (w *BulkWriter) Add(key, value []byte) error {
	w.offs = append(w.offs, len(w.arena))
	w.arena = binary.AppendUvarint(w.arena, uint64(len(key)))
	w.arena = append(w.arena, key...)
	w.arena = binary.AppendUvarint(w.arena, uint64(len(value)))
	w.arena = append(w.arena, value...)
	if len(w.arena) < bulkRun {
		return nil
	}
	return w.spill()
}

func (w *BulkWriter) sortArena() {
	slices.SortFunc(w.offs, func(a, b int) int {
		ka, _ := pairAt(w.arena, a)
		kb, _ := pairAt(w.arena, b)
		return bytes.Compare(ka, kb)
	})
}

// spill writes the arena, sorted, to a run file of its own.
func (w *BulkWriter) spill() error {
	w.sortArena()
	if err := os.MkdirAll(w.runDir, 0o700); err != nil {
		return fmt.Errorf("bulk write: %w", err)
	}
	name := filepath.Join(w.runDir, fmt.Sprintf("run-%04d", len(w.runs)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("bulk write: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	for _, off := range w.offs {
		k, v := pairAt(w.arena, off)
		bw.Write(binary.AppendUvarint(nil, uint64(len(k))))
		bw.Write(k)
		bw.Write(binary.AppendUvarint(nil, uint64(len(v))))
		bw.Write(v)
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("bulk write: spill a sorted run: %w", err)
	}
	w.runs = append(w.runs, name)
	w.arena, w.offs = w.arena[:0], w.offs[:0]
	return nil
}

// finish ends the ordered streams and writes the unordered entries in
// key order, each between two ordered streams' ranges as a stream of its
// own, then flushes the StreamWriter.
func (w *BulkWriter) finish() error {
	type span struct{ first, last []byte }
	var spans []span
	for _, s := range w.streams {
		if err := w.endChunk(s); err != nil {
			return err
		}
		spans = append(spans, span{s.first, s.last})
	}
	slices.SortFunc(spans, func(a, b span) int { return bytes.Compare(a.first, b.first) })
	for i := 1; i < len(spans); i++ {
		if bytes.Compare(spans[i].first, spans[i-1].last) <= 0 {
			return fmt.Errorf("bulk write: ordered streams overlap at %q", spans[i].first)
		}
	}
	src, err := w.unordered()
	if err != nil {
		return err
	}
	defer src.close()
	var last []byte
	gap := 0
	between := &bulkStream{}
	for {
		k, v, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("bulk write: read a sorted run: %w", err)
		}
		if last != nil && bytes.Compare(k, last) <= 0 {
			return fmt.Errorf("bulk write: key %q given twice", k)
		}
		last = append(last[:0], k...)
		for gap < len(spans) && bytes.Compare(k, spans[gap].first) >= 0 {
			if bytes.Compare(k, spans[gap].last) <= 0 {
				return fmt.Errorf("bulk write: key %q falls inside an ordered stream (%q to %q)", k, spans[gap].first, spans[gap].last)
			}
			gap++
			// The entries past this stream are a chunk of their own.
			if err := w.endChunk(between); err != nil {
				return err
			}
		}
		if err := w.write(between, k, v); err != nil {
			return err
		}
	}
	if err := w.endChunk(between); err != nil {
		return err
	}
	if err := w.sw.Flush(); err != nil {
		return fmt.Errorf("bulk write: %w", err)
	}
	return nil
}

// unordered returns the unordered entries in key order: the arena alone
// when nothing was spilled, else a merge of the runs.
func (w *BulkWriter) unordered() (pairSource, error) {
	if len(w.runs) == 0 {
		w.sortArena()
		return &arenaSource{w: w}, nil
	}
	if len(w.offs) > 0 {
		if err := w.spill(); err != nil {
			return nil, err
		}
	}
	w.arena, w.offs = nil, nil
	m := &mergeSource{}
	for _, name := range w.runs {
		f, err := os.Open(name)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("bulk write: %w", err)
		}
		r := &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10)}
		m.files = append(m.files, f)
		if err := r.advance(); err == io.EOF {
			continue
		} else if err != nil {
			m.close()
			return nil, fmt.Errorf("bulk write: read a sorted run: %w", err)
		}
		m.h = append(m.h, r)
	}
	heap.Init(&m.h)
	return m, nil
}
