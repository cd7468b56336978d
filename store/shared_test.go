package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// openShared opens a store on the etcd cluster under prefix, as one
// appliance of a fleet would.
func openShared(t *testing.T, c *etcdtest.Cluster, prefix string) *DB {
	t.Helper()
	e, err := kv.OpenEtcd(context.Background(), kv.EtcdOptions{Endpoints: c.Endpoints(), Prefix: prefix, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenEngine(e, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// nextEvent waits for the next event on ch.
func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return Event{}
}

// noEvent checks that nothing arrives on ch for a while.
func noEvent(t *testing.T, ch <-chan Event, what string) {
	t.Helper()
	select {
	case ev := <-ch:
		t.Fatalf("%s: unexpected event %s %s rev %d", what, ev.Type, ev.Machine.MAC, ev.Machine.Revision)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestSharedStores runs two appliances' stores on one real etcd cluster:
// each sees the other's changes live, rules that span records (unique
// host names, one record per MAC) hold across them, and neither loses the
// other's audit entries.
func TestSharedStores(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := openShared(t, c, "fleet/"), openShared(t, c, "fleet/")
	evA, cancelA := a.Subscribe(256)
	defer cancelA()
	evB, cancelB := b.Subscribe(256)
	defer cancelB()

	t.Run("a create on one is an event and a record on the other", func(t *testing.T) {
		if _, err := a.CreateMachine(Machine{MAC: mac(1), Segment: "lab"}, admin); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, evA); ev.Type != EventCreated || ev.Machine.MAC != mac(1) {
			t.Fatalf("A's own event: %+v", ev)
		}
		noEvent(t, evA, "A after its own create") // its own commit, seen again through the watch, is not published twice
		if ev := nextEvent(t, evB); ev.Type != EventCreated || ev.Machine.MAC != mac(1) || ev.Machine.Revision != 1 {
			t.Fatalf("B's event: %s %s rev %d", ev.Type, ev.Machine.MAC, ev.Machine.Revision)
		}
		if m, err := b.GetMachine(mac(1)); err != nil || m.Segment != "lab" {
			t.Fatalf("B GetMachine: %+v %v", m, err)
		}
		page, err := b.ListMachinePage(MachineQuery{Text: "lab"})
		if err != nil || len(page.Machines) != 1 || page.Machines[0].MAC != mac(1) {
			t.Fatalf("B's list (its search mirror): %+v %v", page.Machines, err)
		}
	})
	t.Run("an update on the other comes back", func(t *testing.T) {
		if _, err := b.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Hostname = "web1"; return nil }); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, evB)
		if ev := nextEvent(t, evA); ev.Type != EventUpdated || ev.Machine.Hostname != "web1" || ev.Machine.Revision != 2 {
			t.Fatalf("A's event: %s %q rev %d", ev.Type, ev.Machine.Hostname, ev.Machine.Revision)
		}
		page, err := a.ListMachinePage(MachineQuery{Text: "web1"})
		if err != nil || len(page.Machines) != 1 {
			t.Fatalf("A's search for the new host name: %+v %v", page.Machines, err)
		}
	})
	t.Run("one MAC, one record, one host name", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, db := range []*DB{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = db.CreateMachine(Machine{MAC: mac(2), Hostname: "twin"}, admin)
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrExists) {
			t.Fatalf("two appliances creating one MAC: %v / %v, want one ErrExists", errs[0], errs[1])
		}
		if _, err := b.CreateMachine(Machine{MAC: mac(3), Hostname: "twin"}, admin); !errors.Is(err, ErrTaken) {
			t.Fatalf("a host name the other appliance's machine has: %v, want ErrTaken", err)
		}
	})
	t.Run("audit entries from both, none lost", func(t *testing.T) {
		before, err := a.ListAudit(AuditFilter{Limit: maxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		const each = 150
		var wg sync.WaitGroup
		for i, db := range []*DB{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range each {
					if err := db.AppendAudit("", Audit{Actor: "admin", Action: "note", Detail: fmt.Sprintf("%d-%d", i, j)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		after, err := b.ListAudit(AuditFilter{Limit: maxAuditLimit})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range after {
			if e.Action == "note" {
				seen[e.Detail] = true
			}
		}
		if len(seen) != 2*each || len(after) != len(before)+2*each {
			t.Fatalf("%d distinct notes of %d, %d entries after %d before", len(seen), 2*each, len(after), len(before))
		}
	})
	t.Run("a delete on one is an event on the other", func(t *testing.T) {
		for len(evB) > 0 {
			<-evB
		}
		if err := a.DeleteMachine(mac(1), admin); err != nil {
			t.Fatal(err)
		}
		var ev Event
		for ev = nextEvent(t, evB); ev.Machine.MAC != mac(1); ev = nextEvent(t, evB) {
		}
		if ev.Type != EventDeleted {
			t.Fatalf("B's event: %s", ev.Type)
		}
		if _, err := b.GetMachine(mac(1)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B GetMachine after A deleted it: %v", err)
		}
	})
	t.Run("a cluster without quorum fails writes and health within the timeout", func(t *testing.T) {
		if err := a.Healthy(context.Background()); err != nil {
			t.Fatalf("Healthy: %v", err)
		}
		c.Stop(0)
		defer c.Start(0)
		start := time.Now()
		_, err := a.CreateMachine(Machine{MAC: mac(9)}, admin)
		took := time.Since(start)
		if !errors.Is(err, ErrUnavailable) || took > 6*time.Second {
			t.Fatalf("create without etcd: %v after %v, want ErrUnavailable within the 2s request timeout (+ retries)", err, took)
		}
		if err := a.Healthy(context.Background()); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Healthy without etcd: %v", err)
		}
		t.Logf("create without etcd failed after %v: %v", took.Round(time.Millisecond), err)
	})
}

// TestSharedStoreCatchesUpAfterCompaction holds one store's watch behind
// a compaction of the cluster: it reloads what it keeps in memory and
// watches on, missing neither the change made while it was behind nor
// the ones after.
func TestSharedStoreCatchesUpAfterCompaction(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := openShared(t, c, "fleet/"), openShared(t, c, "fleet/")
	// Stop b's watch, as a long partition would, at the revision it has seen.
	b.shared.cancel()
	<-b.shared.done
	seen, err := b.shared.eng.ViewRev(func(txn kv.Txn) error { return txn.Get(keySchema, nil) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateMachine(Machine{MAC: mac(1)}, admin); err != nil {
		t.Fatal(err)
	}
	// One more commit, so that the compaction passes the create's revision
	// (a watch may start at the compacted revision itself).
	if err := a.AppendAudit("", Audit{Actor: "admin", Action: "note"}); err != nil {
		t.Fatal(err)
	}
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now, err := cli.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, now.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetMachine(mac(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b knew of the machine while its watch was stopped: %v", err)
	}
	evB, cancelB := b.Subscribe(16)
	defer cancelB()
	b.follow(b.shared, seen) // from a revision the cluster no longer keeps
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.GetMachine(mac(1)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("b did not learn the machine created while it was behind: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Its subscribers were told they missed events (closed channel).
	for closed := false; !closed; {
		select {
		case _, ok := <-evB:
			closed = !ok
		case <-time.After(10 * time.Second):
			t.Fatal("b's subscriber was not told that it missed events")
		}
	}
	evB, cancelB2 := b.Subscribe(16)
	defer cancelB2()
	if _, err := a.CreateMachine(Machine{MAC: mac(2)}, admin); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, evB); ev.Type != EventCreated || ev.Machine.MAC != mac(2) {
		t.Fatalf("b's event after the reload: %s %s", ev.Type, ev.Machine.MAC)
	}
}
