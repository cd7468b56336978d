package kv_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// BenchmarkEngines: what a lease allocation costs each engine — an Update
// that reads a key and writes two — and a View of one key, from one
// goroutine and from several (distinct keys: no conflicts).
func BenchmarkEngines(b *testing.B) {
	engines := []struct {
		name string
		open func(b *testing.B) kv.Engine
	}{
		{"badger", func(b *testing.B) kv.Engine {
			db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithSyncWrites(true).WithLogger(nil))
			if err != nil {
				b.Fatal(err)
			}
			return kv.NewBadger(db)
		}},
		{"etcd", func(b *testing.B) kv.Engine {
			c := etcdtest.Start(b, etcdtest.Options{})
			e, err := kv.OpenEtcd(b.Context(), kv.EtcdOptions{Endpoints: c.Endpoints()})
			if err != nil {
				b.Fatal(err)
			}
			return e
		}},
	}
	for _, eng := range engines {
		b.Run(eng.name, func(b *testing.B) {
			e := eng.open(b)
			defer e.Close()
			var n atomic.Int64
			update := func() error {
				i := n.Add(1)
				return e.Update(func(txn kv.Txn) error {
					if err := txn.Get(fmt.Appendf(nil, "l/%d", i), nil); !errors.Is(err, kv.ErrNotFound) && err != nil {
						return err
					}
					txn.Set(fmt.Appendf(nil, "l/%d", i), []byte("lease"))
					return txn.Set(fmt.Appendf(nil, "m/%d", i), []byte("machine"))
				})
			}
			view := func() error {
				return e.View(func(txn kv.Txn) error {
					err := txn.Get(fmt.Appendf(nil, "l/%d", n.Load()), nil)
					if errors.Is(err, kv.ErrNotFound) {
						return nil
					}
					return err
				})
			}
			for _, op := range []struct {
				name string
				fn   func() error
			}{{"update", update}, {"view", view}} {
				b.Run(op.name, func(b *testing.B) {
					for b.Loop() {
						if err := op.fn(); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run(op.name+"-parallel", func(b *testing.B) {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := op.fn(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		})
	}
}
