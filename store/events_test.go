package store

import (
	"sync"
	"testing"
	"time"
)

func TestEventsInOrder(t *testing.T) {
	db, _, _ := openTest(t)
	events, cancel := db.Subscribe(16)
	defer cancel()

	mustCreate(t, db, Machine{MAC: mac(1)})
	for range 3 {
		if _, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Progress += 10; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteMachine(mac(1), admin); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ string
		rev uint64
	}{{EventCreated, 1}, {EventUpdated, 2}, {EventUpdated, 3}, {EventUpdated, 4}, {EventDeleted, 4}}
	for i, w := range want {
		select {
		case ev := <-events:
			if ev.Type != w.typ || ev.Machine.Revision != w.rev || ev.Machine.MAC != mac(1) {
				t.Errorf("event %d = %s rev %d, want %s rev %d", i, ev.Type, ev.Machine.Revision, w.typ, w.rev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	// Failed writes publish nothing.
	if _, err := db.UpdateMachine(mac(1), admin, func(*Machine) error { return nil }); err == nil {
		t.Fatal("update of a deleted machine succeeded")
	}
	select {
	case ev := <-events:
		t.Errorf("unexpected event %+v", ev)
	default:
	}
}

// TestEventsPerMachineOrderUnderConcurrency checks that concurrent updates
// of one machine reach a subscriber in Revision order.
func TestEventsPerMachineOrderUnderConcurrency(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	const n = 50
	events, cancel := db.Subscribe(n)
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Progress++; return nil }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		ev := <-events
		if want := uint64(i + 2); ev.Machine.Revision != want {
			t.Fatalf("event %d has revision %d, want %d", i, ev.Machine.Revision, want)
		}
	}
}

func TestSlowSubscriberIsClosed(t *testing.T) {
	db, _, _ := openTest(t)
	slow, cancelSlow := db.Subscribe(1)
	defer cancelSlow()
	fast, cancelFast := db.Subscribe(10)
	defer cancelFast()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 3; i++ {
			if _, err := db.CreateMachine(Machine{MAC: mac(i)}, admin); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done: // writers were not blocked by the slow subscriber
	case <-time.After(10 * time.Second):
		t.Fatal("writers blocked on a full subscriber")
	}
	if ev, ok := <-slow; !ok || ev.Machine.MAC != mac(1) {
		t.Errorf("slow subscriber's first event = %+v, %v", ev, ok)
	}
	if _, ok := <-slow; ok {
		t.Error("slow subscriber still open after falling behind")
	}
	for i := 1; i <= 3; i++ {
		if ev := <-fast; ev.Machine.MAC != mac(i) {
			t.Errorf("fast subscriber event %d = %s", i, ev.Machine.MAC)
		}
	}
	cancelSlow() // cancelling a dropped subscriber is harmless
}

func TestCancelSubscription(t *testing.T) {
	db, _, _ := openTest(t)
	events, cancel := db.Subscribe(0) // 0 means the default buffer
	if cap(events) != defaultEventBuffer {
		t.Errorf("buffer %d, want %d", cap(events), defaultEventBuffer)
	}
	cancel()
	cancel() // twice is harmless
	if _, ok := <-events; ok {
		t.Fatal("channel open after cancel")
	}
	mustCreate(t, db, Machine{MAC: mac(1)}) // publishing to no one must not panic
	db.subMu.Lock()
	n := len(db.subs)
	db.subMu.Unlock()
	if n != 0 {
		t.Errorf("%d subscribers left after cancel", n)
	}
}
