package gcpace

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	p := Pacer{Percent: 50, Floor: 32 << 20}
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, maxPercent},
		{1 << 20, maxPercent},   // 3,200 % capped
		{16 << 20, 200},         // the floor: 32 MiB after 16 MiB live
		{32 << 20, 100},         //
		{64 << 20, 50},          // the floor and GOGC agree
		{200 << 20, 50},         // a large heap keeps GOGC
		{(64 << 20) - 1, 50},    // rounding down never goes under GOGC
		{(64 << 20) / 3, 150},   //
		{(32 << 20) * 10, 50},   //
		{(32 << 20) / 10, 1000}, //
	} {
		if got := p.percent(tt.live); got != tt.want {
			t.Errorf("live %d bytes: percent %d, want %d", tt.live, got, tt.want)
		}
	}
}

// TestFollowTracksTheLiveHeap: the pacer applies Percent at once (the
// heap it could read then may be older than the cycle under way), the
// floor's percentage after a cycle, follows the live heap after each
// further cycle when it moved by a tenth or more (not for less), and
// leaves Percent in place when ctx ends.
func TestFollowTracksTheLiveHeap(t *testing.T) {
	var live atomic.Uint64
	live.Store(16 << 20)
	applied := make(chan int, 10)
	cycles := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := Pacer{Percent: 50, Floor: 32 << 20, live: live.Load, set: func(v int) int { applied <- v; return 0 },
		count: func() uint64 { return 0 }}
	go func() { defer close(done); p.follow(ctx, cycles) }()
	next := func() int {
		t.Helper()
		select {
		case v := <-applied:
			return v
		case <-time.After(5 * time.Second):
			t.Fatal("no percentage applied")
			return 0
		}
	}
	if got := next(); got != 50 {
		t.Fatalf("first percentage %d, want Percent before any cycle was seen", got)
	}
	cycles <- struct{}{}
	if got := next(); got != 200 {
		t.Fatalf("percentage after a cycle with 16 MiB live: %d, want 200", got)
	}
	live.Store(17 << 20) // 188 %: within a tenth of 200
	cycles <- struct{}{}
	live.Store(128 << 20)
	cycles <- struct{}{}
	if got := next(); got != 50 {
		t.Errorf("after a cycle with a large heap: %d, want 50 (and nothing for the small move before)", got)
	}
	cancel()
	<-done
	if got := next(); got != 50 {
		t.Errorf("after Run: %d, want Percent", got)
	}
}

// TestFollowCountsCollections: a collection whose end the sentinel never
// signals (one that was marking when the sentinel was allocated) is found
// by the count of collections at the next check, and the percentage for
// its live heap applied; while the count stands still, nothing is.
func TestFollowCountsCollections(t *testing.T) {
	var live, count atomic.Uint64
	live.Store(2 << 20)
	count.Store(7)
	applied := make(chan int, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := Pacer{Percent: 50, Floor: 32 << 20, Check: time.Millisecond, live: live.Load, count: count.Load,
		set: func(v int) int { applied <- v; return 0 }}
	go func() { defer close(done); p.follow(ctx, make(chan struct{})) }()
	defer func() { cancel(); <-done }()
	next := func() (int, bool) {
		select {
		case v := <-applied:
			return v, true
		case <-time.After(200 * time.Millisecond):
			return 0, false
		}
	}
	if got, _ := next(); got != 50 {
		t.Fatalf("first percentage %d, want Percent", got)
	}
	if got, ok := next(); ok {
		t.Fatalf("percentage %d applied with no collection counted", got)
	}
	count.Add(1) // the 2 MiB cycle ends, unsignalled
	if got, ok := next(); !ok || got != maxPercent {
		t.Fatalf("after a counted cycle with 2 MiB live: %d (applied %v), want %d", got, ok, maxPercent)
	}
	live.Store(23 << 20) // the next cycle, also unsignalled, finds 23 MiB
	count.Add(1)
	if got, ok := next(); !ok || got != 139 {
		t.Fatalf("after a counted cycle with 23 MiB live: %d (applied %v), want 139", got, ok)
	}
}

// TestRunFollowsCollections: Run, with the runtime's own readings and
// setting, applies the floor's percentage to a small heap after a
// collection, moves to Percent after the collection that finds the heap
// large, and leaves Percent in place at its end.
func TestRunFollowsCollections(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	runtime.GC()
	if live := liveHeap(); live > 8<<20 {
		t.Skipf("the test binary's heap is already %d bytes", live)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := Pacer{Percent: 50, Floor: 16 << 20}
	go func() { defer close(done); p.Run(ctx) }()
	waitFor := func(want int, collect bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for gogc() != want && time.Now().Before(deadline) {
			if collect {
				runtime.GC()
			}
			time.Sleep(5 * time.Millisecond)
		}
		if got := gogc(); got != want {
			t.Fatalf("GOGC %d, want %d", got, want)
		}
	}
	waitFor(p.Percent, false) // before a collection was seen
	waitFor(maxPercent, true) // 16 MiB after a heap of a few: capped
	kept := make([][]byte, 64)
	for i := range kept {
		kept[i] = make([]byte, 1<<20)
	}
	waitFor(50, true) // 16 MiB is a quarter of 64: GOGC's 50 %
	runtime.KeepAlive(kept)
	cancel()
	<-done
	if got := gogc(); got != p.Percent {
		t.Errorf("after Run: GOGC %d, want %d", got, p.Percent)
	}
}

// gogc reads the collector's percentage without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestLiveHeapReadsTheRuntime: the runtime's reading is the heap a
// collection found live: non-zero after one, and it grows with what is
// kept.
func TestLiveHeapReadsTheRuntime(t *testing.T) {
	runtime.GC()
	before := liveHeap()
	kept := make([][]byte, 64)
	for i := range kept {
		kept[i] = make([]byte, 1<<20)
	}
	runtime.GC()
	after := liveHeap()
	runtime.KeepAlive(kept)
	if before == 0 || after < before+60<<20 {
		t.Errorf("live heap %d then %d bytes after keeping 64 MiB", before, after)
	}
}
