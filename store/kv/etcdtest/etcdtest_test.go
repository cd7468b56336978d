package etcdtest_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// TestRestartKeepsData: a member listens on the address asked for, and a
// member killed with SIGKILL comes back with what it had acknowledged.
func TestRestartKeepsData(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Host: "127.0.0.2"})
	if ep := c.Endpoint(0); !strings.HasPrefix(ep, "http://127.0.0.2:") {
		t.Fatalf("endpoint %s, want one on 127.0.0.2", ep)
	}
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	c.Start(0)
	resp, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after a restart: %v", resp.Kvs)
	}
}

// TestLaunch: a cluster started outside a test (for TestMain) serves, and
// Close stops it.
func TestLaunch(t *testing.T) {
	c, err := etcdtest.Launch(etcdtest.Options{})
	if errors.Is(err, etcdtest.ErrNoEtcd) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	closed = true
	host := strings.TrimPrefix(c.Endpoint(0), "http://")
	if conn, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Close", host)
	}
}
