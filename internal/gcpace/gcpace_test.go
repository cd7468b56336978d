package gcpace

import (
	"context"
	"runtime"
	"sync"
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

// TestRunFollowsTheLiveHeap: Run applies the floor's percentage at once,
// follows the live heap when it moves by a tenth or more (not for less),
// and leaves Percent in place when ctx ends.
func TestRunFollowsTheLiveHeap(t *testing.T) {
	var live atomic.Uint64
	live.Store(16 << 20)
	var mu sync.Mutex
	var applied []int
	set := func(v int) int {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, v)
		return 0
	}
	last := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), applied...)
	}
	wait := func(n int) []int {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(last()) < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return last()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p := Pacer{Percent: 50, Floor: 32 << 20, Every: time.Millisecond, live: live.Load, set: set}
	go func() { defer close(done); p.Run(ctx) }()
	if got := wait(1); got[0] != 200 {
		t.Fatalf("first percentage %v, want 200", got)
	}
	live.Store(17 << 20) // 188 %: within a tenth of 200
	time.Sleep(20 * time.Millisecond)
	if got := last(); len(got) != 1 {
		t.Errorf("a move of 6 %% applied: %v", got)
	}
	live.Store(128 << 20)
	if got := wait(2); got[1] != 50 {
		t.Errorf("large heap: percentages %v, want 50 second", got)
	}
	cancel()
	<-done
	if got := last(); got[len(got)-1] != 50 {
		t.Errorf("after Run: %v, want Percent last", got)
	}
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
