package store

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// The store's tests run on Badger. With FOUNDRY_STORE_BACKEND=etcd every
// test that opens its database through openAt runs on a real etcd cluster
// instead (one for the package, each database under its own prefix), and
// the tests of what only Badger has (its files on a full disk, crashes,
// bytes planted beneath the store, its options) skip, saying so. `make
// test` runs the package both ways.
var testBackend = os.Getenv("FOUNDRY_STORE_BACKEND")

// testCluster is the etcd cluster of an etcd run.
var testCluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	switch testBackend {
	case "", "badger":
		os.Exit(m.Run())
	case "etcd":
	default:
		fmt.Fprintf(os.Stderr, "FOUNDRY_STORE_BACKEND=%q: badger or etcd\n", testBackend)
		os.Exit(2)
	}
	c, err := etcdtest.Launch(etcdtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testCluster = c
	code := m.Run()
	c.Close()
	os.Exit(code)
}

// openAt opens the test database that lives at dir: the Badger database
// in dir, or, on etcd, the keys under a prefix named after dir (so that a
// reopen finds them).
func openAt(dir string, opt Options) (*DB, error) {
	if testCluster == nil {
		return Open(dir, opt)
	}
	e, err := kv.OpenEtcd(context.Background(), kv.EtcdOptions{Endpoints: testCluster.Endpoints(), Prefix: "t" + dir + "/"})
	if err != nil {
		return nil, err
	}
	return OpenEngine(e, opt)
}

// badgerOnly skips a test of what only the Badger engine has.
func badgerOnly(t testing.TB) {
	t.Helper()
	if testCluster != nil {
		t.Skip("Badger only: this tests the Badger database's own files, options or failure modes")
	}
}
