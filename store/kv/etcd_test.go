package kv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// openEtcd opens an engine on c; the test's cleanup closes it.
func openEtcd(t *testing.T, c *etcdtest.Cluster, opt kv.EtcdOptions) *kv.Etcd {
	t.Helper()
	opt.Endpoints = c.Endpoints()
	if c.CA != "" && opt.CAFile == "" {
		opt.CertFile, opt.KeyFile, opt.CAFile = c.ClientCert, c.ClientKey, c.CA
	}
	e, err := kv.OpenEtcd(context.Background(), opt)
	if err != nil {
		t.Fatalf("open etcd: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestEtcd runs the conformance suite and the etcd engine's own tests on
// one single-member cluster, each test under a prefix of its own.
func TestEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	var n atomic.Int64
	prefix := func() string { return fmt.Sprintf("test%d/", n.Add(1)) }
	t.Run("Engine", func(t *testing.T) {
		testEngine(t, engineCase{
			open: func(t *testing.T) kv.Engine {
				return openEtcd(t, c, kv.EtcdOptions{Prefix: prefix()})
			},
			rangeConflicts: true,
		})
	})
	t.Run("Prefix", func(t *testing.T) {
		a := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix()})
		b := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix()})
		set(t, a, "k", "a", "only-a", "1")
		set(t, b, "k", "b")
		mustGet(t, a, "k", "a")
		mustGet(t, b, "k", "b")
		mustAbsent(t, b, "only-a")
		if err := b.DropPrefix(nil); err != nil {
			t.Fatal(err)
		}
		mustAbsent(t, b, "k")
		mustGet(t, a, "k", "a")
		mustGet(t, a, "only-a", "1")
	})
	t.Run("MaxTxnOps", func(t *testing.T) { testMaxTxnOps(t, c, prefix) })
	t.Run("CoarseCompares", func(t *testing.T) { testCoarse(t, c, prefix) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, c, prefix) })
}

// testMaxTxnOps: a transaction larger than one etcd transaction fails
// cleanly, writing nothing; one of exactly the limit commits.
func testMaxTxnOps(t *testing.T, c *etcdtest.Cluster, prefix func() string) {
	e := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix()})
	write := func(n int, del bool) error {
		return e.Update(func(txn kv.Txn) error {
			for i := range n {
				if err := txn.Set(fmt.Appendf(nil, "w/%03d", i), []byte("v")); err != nil {
					return err
				}
			}
			if del {
				return txn.Delete([]byte("gone"))
			}
			return nil
		})
	}
	count := func() int {
		var keys []string
		if err := e.View(func(txn kv.Txn) (err error) {
			keys, err = walk(txn, kv.IterOptions{Prefix: []byte("w/"), KeysOnly: true}, nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	err := write(129, false)
	if !errors.Is(err, kv.ErrTxnTooBig) || !strings.Contains(err.Error(), "129") || !strings.Contains(err.Error(), "--max-txn-ops") {
		t.Fatalf("129 writes: %v", err)
	}
	t.Logf("129 writes: %v", err)
	if n := count(); n != 0 {
		t.Fatalf("%d keys written by a refused transaction", n)
	}
	// 127 sets and a delete: with the delete's guard key, 129.
	if err := write(127, true); !errors.Is(err, kv.ErrTxnTooBig) {
		t.Fatalf("127 writes and a delete: %v", err)
	}
	if err := write(128, false); err != nil {
		t.Fatalf("128 writes, etcd's default limit: %v", err)
	}
	if n := count(); n != 128 {
		t.Fatalf("%d keys, want 128", n)
	}
	// An engine told a larger limit than the cluster's: etcd refuses it
	// and the error says why.
	big := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix(), MaxTxnOps: 1000})
	err = big.Update(func(txn kv.Txn) error {
		for i := range 200 {
			txn.Set(fmt.Appendf(nil, "w/%03d", i), []byte("v"))
		}
		return nil
	})
	if !errors.Is(err, kv.ErrTxnTooBig) {
		t.Fatalf("200 writes against etcd's 128: %v", err)
	}
	t.Logf("200 writes against etcd's 128: %v", err)

	// Over etcd's 1.5 MiB a request, then over the client's 2 MiB.
	for _, n := range []int{3, 4} {
		err := e.Update(func(txn kv.Txn) error {
			for i := range n {
				txn.Set(fmt.Appendf(nil, "w/big%d", i), make([]byte, 600<<10))
			}
			return nil
		})
		if !errors.Is(err, kv.ErrTxnTooBig) {
			t.Fatalf("%d values of 600 KiB: %v", n, err)
		}
		t.Logf("%d values of 600 KiB: %v", n, err)
	}
	if n := count(); n != 128 {
		t.Fatalf("%d keys, want the 128 from before", n)
	}
}

// testCoarse: with more reads than fit one etcd transaction's compares,
// conflicts are still detected (deletes through the guard key), and a
// change outside every read does not conflict.
func testCoarse(t *testing.T, c *etcdtest.Cluster, prefix func() string) {
	e := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix(), MaxTxnOps: 8})
	var seed []string
	for i := range 20 {
		seed = append(seed, fmt.Sprintf("r/%02d", i), "v")
	}
	getAll := func(txn kv.Txn) error {
		for i := range 20 {
			if err := txn.Get(fmt.Appendf(nil, "r/%02d", i), nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, tc := range []struct {
		name     string
		read     func(kv.Txn) error
		other    func(kv.Txn) error
		conflict bool
	}{
		{"gets, delete of one", getAll, func(txn kv.Txn) error { return txn.Delete([]byte("r/05")) }, true},
		{"gets, change of one", getAll, func(txn kv.Txn) error { return txn.Set([]byte("r/05"), []byte("x")) }, true},
		{"gets, write elsewhere", getAll, func(txn kv.Txn) error { return txn.Set([]byte("s/1"), []byte("x")) }, false},
		{"walk, delete of one", iterate("r/"), func(txn kv.Txn) error { return txn.Delete([]byte("r/19")) }, true},
		{"walk, insert", iterate("r/"), func(txn kv.Txn) error { return txn.Set([]byte("r/05b"), []byte("x")) }, true},
		{"walk, write elsewhere", iterate("r/"), func(txn kv.Txn) error { return txn.Set([]byte("s/1"), []byte("x")) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.DropPrefix(nil)
			b := e.NewBatch() // in transactions of at most 8 writes
			for i := 0; i < len(seed); i += 2 {
				b.Set([]byte(seed[i]), []byte(seed[i+1]))
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
			err := e.Update(func(txn kv.Txn) error {
				if err := tc.read(txn); err != nil {
					return err
				}
				if err := e.Update(tc.other); err != nil {
					return err
				}
				return txn.Set([]byte("out"), []byte("mine"))
			})
			if tc.conflict != errors.Is(err, kv.ErrConflict) || !tc.conflict && err != nil {
				t.Fatalf("Update = %v, want conflict %v", err, tc.conflict)
			}
		})
	}
}

func testWatch(t *testing.T, c *etcdtest.Cluster, prefix func() string) {
	e := openEtcd(t, c, kv.EtcdOptions{Prefix: prefix()})
	set(t, e, "w/old", "1")
	from, err := e.ViewRev(func(kv.Txn) error { return nil })
	if err != nil || from == 0 {
		t.Fatalf("ViewRev: %d, %v", from, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan []kv.WatchEvent, 10)
	done := make(chan error, 1)
	go func() {
		done <- e.Watch(ctx, []byte("w/"), from+1, func(evs []kv.WatchEvent) error {
			got <- evs
			return nil
		})
	}()
	rev, err := e.UpdateRev(func(txn kv.Txn) error {
		txn.Set([]byte("w/a"), []byte("A"))
		txn.Set([]byte("x/outside"), []byte("X"))
		return txn.Delete([]byte("w/old"))
	})
	if err != nil || rev <= from {
		t.Fatalf("UpdateRev: %d, %v (ViewRev %d)", rev, err, from)
	}
	var evs []kv.WatchEvent
	select {
	case evs = <-got:
	case err := <-done:
		t.Fatalf("Watch returned %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event in 5s")
	}
	want := "w/a=A@%d w/old deleted@%d"
	if s := fmtEvents(evs); s != fmt.Sprintf(want, rev, rev) {
		t.Fatalf("events %s, want "+want, s, rev, rev)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after cancel: %v", err)
	}

	// From an old revision it replays; from one compacted away it says so.
	var replay []kv.WatchEvent
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	err = e.Watch(ctx2, []byte("w/"), from+1, func(evs []kv.WatchEvent) error {
		replay = evs
		return errAbort
	})
	if err != errAbort || fmtEvents(replay) != fmtEvents(evs) {
		t.Fatalf("replay: %v, %s", err, fmtEvents(replay))
	}
	// Every key of the engine, and nothing else: not the guard key the
	// delete wrote.
	err = e.Watch(ctx2, nil, from+1, func(evs []kv.WatchEvent) error {
		replay = evs
		return errAbort
	})
	want = "w/a=A@%d w/old deleted@%d x/outside=X@%d"
	if s := fmtEvents(replay); err != errAbort || s != fmt.Sprintf(want, rev, rev, rev) {
		t.Fatalf("watch of every key: %v, %s, want "+want, err, s, rev, rev, rev)
	}
	cli := c.Client(t)
	if _, err := cli.Compact(ctx2, rev); err != nil {
		t.Fatal(err)
	}
	err = e.Watch(ctx2, []byte("w/"), from, func([]kv.WatchEvent) error { return nil })
	if !errors.Is(err, kv.ErrCompacted) {
		t.Fatalf("watch from a compacted revision: %v", err)
	}
}

func fmtEvents(evs []kv.WatchEvent) string {
	var parts []string
	for _, ev := range evs {
		if ev.Deleted {
			parts = append(parts, fmt.Sprintf("%s deleted@%d", ev.Key, ev.Rev))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%s@%d", ev.Key, ev.Value, ev.Rev))
		}
	}
	return strings.Join(parts, " ")
}
