package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Group commit of leases.
//
// Every synced Badger commit costs two msyncs (the value log and the
// memtable's write-ahead log), and an msync of the WAL's mapping is
// expensive in CPU: it write-protects the dirty pages again, so the next
// write faults and ext4 opens a journal handle for it, then the fsync
// commits the journal and flushes the disk. Badger shares a commit between
// the transactions that queued while the previous one was syncing, but on a
// fast disk few do: profiled under a DHCP load, 20,000 ACKs made 22,000
// msyncs. A DHCP server under load writes thousands of independent leases
// a second, so PutLease hands its lease to one writer goroutine that waits
// a little for others and commits them all in one transaction, synced once.
// Every caller still returns only after the commit holding its lease is
// synced.

// Defaults of the lease batcher.
const (
	// DefaultLeaseBatchGap is how long the writer waits for another lease
	// before it commits the ones it holds.
	DefaultLeaseBatchGap = time.Millisecond
	// DefaultLeaseBatchWindow bounds how long the first lease of a batch
	// waits for others. Each synced commit costs CPU (the msyncs above)
	// whatever it holds: under perfdhcp at 7,500 DORA/s, 1 ms and 5 ms
	// instead of 200 µs and 2 ms took 113 instead of 120 ms of CPU per
	// 1,000 DORA; 2 ms and 10 ms saved no more and lost more exchanges
	// at 8,500/s (bench/README.md, BenchmarkDHCPBuilds). A DHCP client
	// waits seconds for its ACK; a few milliseconds more are not seen.
	DefaultLeaseBatchWindow = 5 * time.Millisecond
	// leaseBatchMax bounds a batch, far below Badger's transaction limits.
	leaseBatchMax = 256
	// leaseBatchMaxShared bounds a batch on a shared engine (etcd): a
	// lease reads one to four keys and writes two to four, and an etcd
	// transaction holds at most its --max-txn-ops (128 by default)
	// writes and, to compare key by key, as many reads. A batch that is
	// still too big is split (kv.ErrTxnTooBig).
	leaseBatchMaxShared = 32
)

var errClosed = errors.New("store is closed")

// leaseWrite is one PutLease waiting for its commit.
type leaseWrite struct {
	lease Lease
	value []byte
	// err is the lease's own outcome in the transaction being tried
	// (ErrAddressTaken: nothing written for it).
	err  error
	done chan error // buffered: the writer never blocks on a caller
}

// leaseWriter owns the batching goroutine.
type leaseWriter struct {
	db          *DB
	gap, window time.Duration
	// max bounds a batch: leaseBatchMax, or leaseBatchMaxShared on a
	// shared engine.
	max int
	// in is unbuffered: a send succeeds only while the writer runs, so a
	// write is either committed (or failed) by it or refused by stop.
	in       chan *leaseWrite
	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	// commits counts the batches committed (for tests).
	commits atomic.Int64
}

func newLeaseWriter(db *DB, gap, window time.Duration, shared bool) *leaseWriter {
	if gap == 0 {
		gap = DefaultLeaseBatchGap
	}
	if window == 0 {
		window = DefaultLeaseBatchWindow
	}
	w := &leaseWriter{db: db, gap: gap, window: window, max: leaseBatchMax,
		in: make(chan *leaseWrite), stop: make(chan struct{}), stopped: make(chan struct{})}
	if shared {
		w.max = leaseBatchMaxShared
	}
	go w.run()
	return w
}

// put queues l and waits until it is durable or failed. The lease is
// encoded here, in the caller's goroutine, so that a bad one fails alone.
func (w *leaseWriter) put(l Lease) error {
	value, err := encodeJSON(l)
	if err != nil {
		return err
	}
	lw := &leaseWrite{lease: l, value: value, done: make(chan error, 1)}
	select {
	case w.in <- lw:
	case <-w.stop:
		return errClosed
	}
	return <-lw.done
}

// close stops the writer once its current batch is committed.
func (w *leaseWriter) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.stopped
}

func (w *leaseWriter) run() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	batch := make([]*leaseWrite, 0, w.max)
	for {
		select {
		case lw := <-w.in:
			batch = append(batch[:0], lw)
		case <-w.stop:
			return
		}
		w.collect(&batch, timer)
		w.commit(batch)
		for _, lw := range batch {
			lw.done <- lw.err
		}
		clear(batch)
	}
}

// collect adds to batch the leases that arrive at most gap apart, for at
// most window after the first, up to w.max. Negative gap or window
// commit at once.
func (w *leaseWriter) collect(batch *[]*leaseWrite, timer *time.Timer) {
	if w.gap < 0 || w.window < 0 {
		return
	}
	deadline := time.Now().Add(w.window)
	for len(*batch) < w.max {
		wait := min(w.gap, time.Until(deadline))
		if wait <= 0 {
			return
		}
		// Leases already waiting are taken without a timer.
		select {
		case lw := <-w.in:
			*batch = append(*batch, lw)
			continue
		default:
		}
		timer.Reset(wait)
		select {
		case lw := <-w.in:
			*batch = append(*batch, lw)
			timer.Stop()
		case <-timer.C:
			return
		case <-w.stop:
			timer.Stop()
			return
		}
	}
}

// commit writes the batch in one transaction and sets each lease's
// outcome: nil (durable), its own refusal (ErrAddressTaken: nothing
// written for it, the others commit), or the commit's error. A lease
// given twice is written as the later one. A batch too big for one
// transaction of the engine is split in two.
func (w *leaseWriter) commit(batch []*leaseWrite) {
	now := w.db.now()
	err := w.db.update(func(txn kv.Txn) error {
		for _, lw := range batch {
			lw.err = putLease(txn, lw.lease, lw.value, now)
			if lw.err != nil && !errors.Is(lw.err, ErrAddressTaken) {
				return lw.err
			}
		}
		return nil
	})
	w.commits.Add(1)
	if errors.Is(err, kv.ErrTxnTooBig) && len(batch) > 1 {
		w.commit(batch[:len(batch)/2])
		w.commit(batch[len(batch)/2:])
		return
	}
	if err != nil {
		err = fmt.Errorf("commit %d leases: %w", len(batch), err)
		for _, lw := range batch {
			lw.err = err
		}
	}
}
