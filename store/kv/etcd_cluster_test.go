package kv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// TestEtcdTLS: a cluster that requires client certificates serves a
// client with one and refuses one without.
func TestEtcdTLS(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{TLS: true})
	e := openEtcd(t, c, kv.EtcdOptions{})
	set(t, e, "k", "v")
	mustGet(t, e, "k", "v")
	for _, tc := range []struct {
		name string
		opt  kv.EtcdOptions
		why  string // in the error
	}{
		{"no client certificate", kv.EtcdOptions{CAFile: c.CA}, "bad certificate"},
		{"plain connection", kv.EtcdOptions{}, "no TLS file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.Endpoints = c.Endpoints()
			opt.DialTimeout = time.Second
			start := time.Now()
			e, err := kv.OpenEtcd(context.Background(), opt)
			if err == nil {
				e.Close()
				t.Fatal("connected")
			}
			t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, kv.ErrUnavailable) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("error %q: want ErrUnavailable saying %q", err, tc.why)
			}
		})
	}
}

// TestEtcdQuorum: three members go on with one killed (the leader), and
// with two killed a transaction fails with ErrUnavailable within
// RequestTimeout; once a member is back, every acknowledged write is
// there.
func TestEtcdQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster and kills two members")
	}
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	const timeout = 2 * time.Second
	e := openEtcd(t, c, kv.EtcdOptions{RequestTimeout: timeout})
	acked := 0
	incr := func() error {
		return e.Update(func(txn kv.Txn) error {
			n := 0
			if v, err := kv.GetCopy(txn, []byte("n")); err == nil {
				fmt.Sscan(string(v), &n)
			} else if !errors.Is(err, kv.ErrNotFound) {
				return err
			}
			txn.Set(fmt.Appendf(nil, "k/%d", n), []byte("v"))
			return txn.Set([]byte("n"), fmt.Append(nil, n+1))
		})
	}
	for range 5 {
		if err := incr(); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	leader := leaderOf(t, c)
	c.Stop(leader)
	start := time.Now()
	for {
		err := incr()
		if err == nil {
			break
		}
		if !errors.Is(err, kv.ErrUnavailable) || time.Since(start) > 15*time.Second {
			t.Fatalf("after killing the leader: %v", err)
		}
	}
	acked++
	t.Logf("leader (member %d) killed: first commit after %v", leader, time.Since(start).Round(time.Millisecond))
	for range 10 {
		if err := incr(); err != nil {
			t.Fatalf("with two of three members: %v", err)
		}
		acked++
	}

	// A watch ends when its member loses the leader, rather than going
	// quiet.
	watchEnd := make(chan error, 1)
	go func() {
		watchEnd <- e.Watch(context.Background(), nil, 0, func([]kv.WatchEvent) error { return nil })
	}()
	second := (leader + 1) % 3
	c.Stop(second)
	lost := time.Now()
	// Each path to the cluster at once: a read, a commit, a View, a Ping.
	var wg sync.WaitGroup
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Update with a read", incr},
		{"blind Update", func() error {
			return e.Update(func(txn kv.Txn) error { return txn.Set([]byte("blind"), []byte("x")) })
		}},
		{"View", func() error { _, err := get(t, e, "n"); return err }},
		{"Ping", func() error { return e.Ping(context.Background()) }},
	} {
		wg.Go(func() {
			start := time.Now()
			err := tc.call()
			took := time.Since(start)
			t.Logf("one of three members: %s failed in %v: %v", tc.name, took.Round(time.Millisecond), err)
			if !errors.Is(err, kv.ErrUnavailable) {
				t.Errorf("%s without quorum: %v, want ErrUnavailable", tc.name, err)
			}
			// RequestTimeout, plus slack for a loaded machine.
			if took > timeout+time.Second {
				t.Errorf("%s took %v, RequestTimeout is %v", tc.name, took, timeout)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-watchEnd:
		t.Logf("one of three members: Watch ended after %v: %v", time.Since(lost).Round(time.Millisecond), err)
		if !errors.Is(err, kv.ErrUnavailable) {
			t.Errorf("Watch without quorum: %v, want ErrUnavailable", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("Watch still running 15s after quorum was lost")
	}

	c.Start(second)
	start = time.Now()
	for {
		err := incr()
		if err == nil {
			break
		}
		if !errors.Is(err, kv.ErrUnavailable) || time.Since(start) > 15*time.Second {
			t.Fatalf("after a member came back: %v", err)
		}
	}
	acked++
	t.Logf("quorum back: first commit after %v", time.Since(start).Round(time.Millisecond))
	// A commit that failed with ErrUnavailable may have been applied
	// (its outcome is unknown), so n may pass the count acknowledged.
	v, err := get(t, e, "n")
	n := 0
	fmt.Sscan(v, &n)
	if err != nil || n < acked {
		t.Fatalf("n = %q, %v after %d acknowledged commits", v, err, acked)
	}
	var keys []string
	if err := e.View(func(txn kv.Txn) (err error) {
		keys, err = walk(txn, kv.IterOptions{Prefix: []byte("k/"), KeysOnly: true}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != n {
		t.Fatalf("%d keys, n = %d (%d acknowledged commits)", len(keys), n, acked)
	}
}

// leaderOf is the index of the cluster's leader.
func leaderOf(t *testing.T, c *etcdtest.Cluster) int {
	t.Helper()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, ep := range c.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if st.Header.MemberId == st.Leader {
			return i
		}
	}
	t.Fatal("no leader")
	return -1
}

// TestEtcdNoSpace: a cluster over its space quota refuses writes with
// ErrNoSpace and still serves reads.
func TestEtcdNoSpace(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{QuotaBackendBytes: 1 << 20})
	e := openEtcd(t, c, kv.EtcdOptions{})
	val := make([]byte, 64<<10)
	var err error
	i := 0
	for ; i < 100 && err == nil; i++ {
		err = e.Update(func(txn kv.Txn) error { return txn.Set(fmt.Appendf(nil, "big/%d", i), val) })
	}
	if !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("after %d writes of 64 KiB to a 1 MiB quota: %v", i, err)
	}
	t.Logf("write %d: %v", i, err)
	if _, err := get(t, e, "big/0"); err != nil {
		t.Fatalf("read with the quota alarm: %v", err)
	}
}
