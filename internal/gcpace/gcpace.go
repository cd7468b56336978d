// Package gcpace sets how often the garbage collector runs: a percentage
// of the live heap (GOGC), but never after less than a floor of new
// allocation.
//
// A collection costs a fixed part besides the live heap: the stacks and
// the globals, about 7 MB of them in foundry (gopacket's lookup tables,
// which coredhcp's server brings in). With a small live heap, GOGC 50
// runs a cycle every few megabytes of allocation: under perfdhcp at
// 8,400 DORA/s, every 210 ms on a 30 MB heap, 14 % of the server's CPU. A
// floor on the allocation between cycles spaces them out on a small heap
// and leaves a large one (100,000 machines, where GOGC 50 was chosen for
// the page cache's sake) at its percentage.
package gcpace

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// maxPercent bounds the percentage the floor may ask for: a nearly empty
// heap does not make the next cycle wait for gigabytes.
const maxPercent = 1000

// defaultCheck is how often the pacer looks for a collection whose end it
// was not told of.
const defaultCheck = 100 * time.Millisecond

// Pacer keeps the collector's percentage at Percent, or higher when the
// live heap is so small that Percent of it is less than Floor.
type Pacer struct {
	// Percent is the percentage of the live heap allocated between
	// cycles when the heap is large (GOGC). Required, > 0.
	Percent int
	// Floor is the least allocation between two cycles, in bytes.
	Floor uint64
	// Check is how often the pacer counts the collections, to catch one
	// whose end it was not told of; default 100 ms.
	Check time.Duration
	// live reads the live heap; default the runtime's /gc/heap/live:bytes.
	live func() uint64
	// set applies a percentage; default debug.SetGCPercent.
	set func(int) int
	// count reads how many collections have ended; default the runtime's
	// /gc/cycles/total:gc-cycles.
	count func() uint64
}

// percent is the collector percentage for a live heap of live bytes.
func (p Pacer) percent(live uint64) int {
	if live == 0 {
		return maxPercent
	}
	floor := p.Floor * 100 / live
	if floor > maxPercent {
		return maxPercent
	}
	return max(p.Percent, int(floor))
}

// Run sets the percentage at once and again after every collection, from
// the heap it found live, until ctx is done; it then leaves Percent in
// place. Set right after a cycle, the percentage applies to that cycle's
// live heap: set on a timer, one computed for a small heap would let the
// heap that grew meanwhile grow by as much again.
func (p Pacer) Run(ctx context.Context) {
	cycles := make(chan struct{}, 1)
	var watch func()
	watch = func() {
		// A cleanup runs once the collector found its object
		// unreachable: after each cycle, the next one's is attached.
		runtime.AddCleanup(new(sentinel), func(struct{}) {
			select {
			case cycles <- struct{}{}:
			default:
			}
			if ctx.Err() == nil {
				watch()
			}
		}, struct{}{})
	}
	watch()
	p.follow(ctx, cycles)
}

// sentinel holds a pointer so that it is not given out by the tiny
// allocator, whose objects may never be collected one by one.
type sentinel struct{ _ *byte }

// follow applies Percent at once, and the percentage for the live heap
// after every collection: on the sentinel's signal, or when the count of
// collections moved.
//
// Until a cycle's end has been seen, the live heap read may not be the one
// the next goal grows from: Run may start while a cycle marks. And a
// cycle's end can go unsignalled: a sentinel allocated while a cycle
// marks outlives that cycle (what is allocated during marking is kept),
// which happens at start, where cycles run back to back. In foundry serve
// a cycle that found 23 MB live kept the percentage of the 2 MB found by
// the one before it (the cap, 1,000 %), and the heap grew to 225 MB
// before the next (the flood test's peak of 208-251 MiB resident, 1 run
// in 3 or 4). So Percent holds until a cycle was seen, and the count of
// collections, read every Check, catches what the sentinel missed.
func (p Pacer) follow(ctx context.Context, cycles <-chan struct{}) {
	if p.live == nil {
		p.live = liveHeap
	}
	if p.set == nil {
		p.set = debug.SetGCPercent
	}
	if p.count == nil {
		p.count = completedCycles
	}
	if p.Check <= 0 {
		p.Check = defaultCheck
	}
	tick := time.NewTicker(p.Check)
	defer tick.Stop()
	p.set(p.Percent)
	applied := p.Percent
	seen := p.count()
	for {
		select {
		case <-ctx.Done():
			p.set(p.Percent)
			return
		case <-cycles:
		case <-tick.C:
			if p.count() == seen {
				continue
			}
		}
		seen = p.count()
		// Only a change of a tenth or more is applied: the live heap
		// moves a little between every two cycles.
		if want := p.percent(p.live()); want*10 < applied*9 || want*10 > applied*11 {
			p.set(want)
			applied = want
		}
	}
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 { return readUint64("/gc/heap/live:bytes") }

// completedCycles is how many collections have ended.
func completedCycles() uint64 { return readUint64("/gc/cycles/total:gc-cycles") }

// readUint64 reads one of the runtime's counters; 0 when this Go has no
// such counter.
func readUint64(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
