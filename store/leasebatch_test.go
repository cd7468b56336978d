package store

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func batchLease(i int) Lease {
	return Lease{Segment: "lab", MAC: mac(i), IP: netip.AddrFrom4([4]byte{10, 77, byte(i >> 8), byte(i)}),
		Hostname: fmt.Sprintf("h%d", i), Expires: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)}
}

// storedLeases reopens the closed store in dir and returns its leases on
// segment "lab".
func storedLeases(t *testing.T, dir string) []Lease {
	t.Helper()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.ListLeases("lab")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestPutLeaseBatches writes leases from many goroutines at once: each
// call returns nil only with its lease stored, and they share commits.
func TestPutLeaseBatches(t *testing.T) {
	tests := []struct {
		name        string
		gap, window time.Duration
		callers     int
		shared      bool // fewer commits than leases
	}{
		{"defaults", 0, 0, 1, false},
		{"no wait", -1, -1, 32, false},
		{"concurrent", 20 * time.Millisecond, time.Second, 64, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := Open(dir, Options{LeaseBatchGap: tt.gap, LeaseBatchWindow: tt.window})
			if err != nil {
				t.Fatal(err)
			}
			const perCaller = 10
			var wg sync.WaitGroup
			errs := make(chan error, tt.callers*perCaller)
			for c := range tt.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range perCaller {
						errs <- db.PutLease(batchLease(c*perCaller + k))
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			n := tt.callers * perCaller
			if commits := db.leases.commits.Load(); tt.shared && commits >= int64(n) {
				t.Errorf("%d leases took %d commits; want shared commits", n, commits)
			}
			// Reopen: every acknowledged lease is on disk, as given.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			got := storedLeases(t, dir)
			if len(got) != n {
				t.Fatalf("%d leases stored, want %d", len(got), n)
			}
			for _, l := range got {
				var i int
				fmt.Sscanf(l.Hostname, "h%d", &i)
				if w := batchLease(i); l.MAC != w.MAC || l.IP != w.IP || !l.Expires.Equal(w.Expires) {
					t.Errorf("stored %+v, want %+v", l, w)
				}
			}
		})
	}
}

// TestPutLeaseClose: calls racing Close either return nil with the lease
// stored or an error; none hangs, and calls after Close fail.
func TestPutLeaseClose(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{LeaseBatchGap: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	results := make(chan error, n)
	for i := range n {
		go func() { results <- db.PutLease(batchLease(i)) }()
	}
	time.Sleep(time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case err := <-results:
			if err == nil {
				acked++
			}
		case <-timeout:
			t.Fatal("PutLease hangs after Close")
		}
	}
	if err := db.PutLease(batchLease(1)); !errors.Is(err, errClosed) {
		t.Errorf("PutLease after Close: %v, want %v", err, errClosed)
	}
	got := storedLeases(t, dir)
	if len(got) < acked {
		t.Errorf("%d leases acknowledged, %d stored", acked, len(got))
	}
	t.Logf("%d of %d racing PutLease calls acknowledged before Close", acked, n)
}

// TestPutLeaseThen gives leases the way a DHCP server's reader does, one
// goroutine that never waits: each callback is called once, a bad lease's
// before PutLeaseThen returns, and a Close right after the last call
// commits every lease given before it, so each callback says nil and the
// reopened store holds them all.
func TestPutLeaseThen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var mu sync.Mutex
	calls := map[int]int{}
	var failed []error
	for i := range n {
		db.PutLeaseThen(batchLease(i), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			calls[i]++
			if err != nil {
				failed = append(failed, err)
			}
		})
	}
	bad := batchLease(n)
	bad.IP = netip.Addr{}
	var badErr error
	db.PutLeaseThen(bad, func(err error) { badErr = err })
	if !errors.Is(badErr, ErrInvalid) {
		t.Errorf("lease without an address: callback got %v before PutLeaseThen returned, want ErrInvalid", badErr)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i := range n {
		if calls[i] != 1 {
			t.Errorf("lease %d: callback called %d times by Close's return, want once", i, calls[i])
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d leases failed, first: %v", len(failed), failed[0])
	}
	mu.Unlock()
	commits := db.leases.commits.Load()
	if commits >= n/10 {
		t.Errorf("%d leases from one goroutine took %d commits; want them batched", n, commits)
	}
	t.Logf("%d leases given without waiting, %d commits", n, commits)
	var closedErr error
	db.PutLeaseThen(batchLease(1), func(err error) { closedErr = err })
	if !errors.Is(closedErr, errClosed) {
		t.Errorf("PutLeaseThen after Close: callback got %v before it returned, want %v", closedErr, errClosed)
	}
	if got := storedLeases(t, dir); len(got) != n {
		t.Errorf("%d leases stored after reopening, want %d", len(got), n)
	}
}
