package store

import (
	"errors"
	"fmt"
	"slices"
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
// Every PutLease still returns, and every PutLeaseThen callback is still
// called, only after the commit holding its lease is synced.

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

// leaseWrite is one lease waiting for its commit.
type leaseWrite struct {
	lease Lease
	value []byte
	// err is the lease's own outcome in the transaction being tried
	// (ErrAddressTaken: nothing written for it).
	err error
	// then is called with the outcome once, on the writer's goroutine.
	then func(error)
}

// leaseWriter owns the batching goroutine. Callers append to a queue
// that the writer drains, instead of handing each lease over a channel:
// a hand-off wakes the writer for every lease, and on a 2-core machine
// each wake is a context switch (bench/README.md). The writer is woken
// once when the queue stops being empty, and looks again every gap.
type leaseWriter struct {
	db          *DB
	gap, window time.Duration
	// max bounds a batch: leaseBatchMax, or leaseBatchMaxShared on a
	// shared engine.
	max int

	mu sync.Mutex
	// queue holds the leases given and not yet taken into a batch.
	queue []*leaseWrite
	// closed refuses new leases; the writer commits the queue first.
	closed bool
	// wake holds a token when the queue went from empty to not empty.
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
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
		wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	if shared {
		w.max = leaseBatchMaxShared
	}
	go w.run()
	return w
}

// putThen queues l and returns; then is called exactly once with the
// outcome: on the writer's goroutine once the commit holding l is synced
// (nil) or failed, or before putThen returns when l cannot be encoded or
// the store is closed. The lease is encoded here, in the caller's
// goroutine, so that a bad one fails alone. then must not wait for the
// store: the writer commits nothing else until it returns.
func (w *leaseWriter) putThen(l Lease, then func(error)) {
	value, err := encodeJSON(l)
	if err != nil {
		then(err)
		return
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		then(errClosed)
		return
	}
	w.queue = append(w.queue, &leaseWrite{lease: l, value: value, then: then})
	first := len(w.queue) == 1
	w.mu.Unlock()
	if first {
		select {
		case w.wake <- struct{}{}:
		default: // a token is there already
		}
	}
}

// close refuses new leases and returns once the writer has committed
// every lease given before.
func (w *leaseWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.stopped
}

func (w *leaseWriter) run() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if w.queued() == 0 {
			select {
			case <-w.wake:
				continue // the token may be older than the last batch
			case <-w.stop:
				if w.queued() == 0 {
					return
				}
			}
		}
		w.collect(timer)
		batch := w.take()
		w.commit(batch)
		for _, lw := range batch {
			lw.then(lw.err)
		}
	}
}

// queued is the number of leases waiting.
func (w *leaseWriter) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// take removes up to w.max leases from the queue, oldest first.
func (w *leaseWriter) take() []*leaseWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.queue), w.max)
	batch := slices.Clone(w.queue[:n])
	// The rest moves to the front, so that the queue's array is reused
	// rather than grown forever by appends at its end.
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	return batch
}

// collect waits while leases keep arriving: it returns once a gap passed
// with none, window passed since it began, the queue holds w.max, or the
// writer is stopping. Negative gap or window commit at once.
func (w *leaseWriter) collect(timer *time.Timer) {
	if w.gap < 0 || w.window < 0 {
		return
	}
	deadline := time.Now().Add(w.window)
	n := w.queued()
	for n < w.max {
		wait := min(w.gap, time.Until(deadline))
		if wait <= 0 {
			return
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-w.stop:
			timer.Stop()
			return
		}
		m := w.queued()
		if m == n {
			return // a gap without a lease
		}
		n = m
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
