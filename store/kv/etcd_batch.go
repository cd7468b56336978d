package kv

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// batchBytes bounds the keys and values of one etcd transaction of a
// Batch, below etcd's default --max-request-bytes (1.5 MiB).
const batchBytes = 1 << 20

// NewBatch returns a Batch that writes etcd transactions of at most
// MaxTxnOps operations (and about 1 MiB) each, as they fill.
func (e *Etcd) NewBatch() Batch {
	return &etcdBatch{e: e, idx: map[string]int{}}
}

type etcdBatch struct {
	e     *Etcd
	ops   []clientv3.Op
	idx   map[string]int // key → its op, so a key is written once per transaction
	bytes int
	dels  bool
	err   error
}

func (b *etcdBatch) Set(key, val []byte) error {
	return b.add(key, clientv3.OpPut(string(key), string(val)), len(key)+len(val), false)
}

func (b *etcdBatch) Delete(key []byte) error {
	return b.add(key, clientv3.OpDelete(string(key)), len(key), true)
}

func (b *etcdBatch) add(key []byte, op clientv3.Op, size int, del bool) error {
	if b.err != nil {
		return b.err
	}
	if b.e.closed.Load() {
		return ErrClosed
	}
	if len(key) == 0 {
		return errors.New("kv: empty key")
	}
	if i, ok := b.idx[string(key)]; ok {
		// etcd refuses a transaction that names a key twice.
		b.ops[i] = op
		b.dels = b.dels || del
		b.bytes += size
		return nil
	}
	// Room for the guard key's write.
	if len(b.ops)+2 > b.e.maxOps || len(b.ops) > 0 && b.bytes+size > batchBytes {
		if err := b.commit(); err != nil {
			return err
		}
	}
	b.idx[string(key)] = len(b.ops)
	b.ops = append(b.ops, op)
	b.bytes += size
	b.dels = b.dels || del
	return nil
}

func (b *etcdBatch) commit() error {
	if len(b.ops) == 0 {
		return nil
	}
	ops := b.ops
	if b.dels {
		ops = append(ops, clientv3.OpPut(guardKey, ""))
	}
	err := b.e.call(func(ctx context.Context) error {
		_, err := b.e.kv.Txn(ctx).Then(ops...).Commit()
		return err
	})
	b.ops, b.bytes, b.dels = nil, 0, false
	clear(b.idx)
	if err != nil {
		b.err = b.e.wrap(fmt.Sprintf("batch of %d writes", len(ops)), err)
	}
	return b.err
}

// Flush writes what is left; every write is durable when it returns nil.
func (b *etcdBatch) Flush() error {
	if b.err != nil {
		return b.err
	}
	return b.commit()
}

// Cancel drops the writes not yet sent.
func (b *etcdBatch) Cancel() {
	b.ops, b.bytes, b.dels = nil, 0, false
	clear(b.idx)
}

// DropPrefix deletes every key under prefix in one etcd request.
func (e *Etcd) DropPrefix(prefix []byte) error {
	if e.closed.Load() {
		return ErrClosed
	}
	r := prefixRange(prefix)
	err := e.call(func(ctx context.Context) error {
		_, err := e.kv.Txn(ctx).Then(
			clientv3.OpDelete(r.lo, clientv3.WithRange(endArg(r.hi))),
			clientv3.OpPut(guardKey, ""),
		).Commit()
		return err
	})
	return e.wrap(fmt.Sprintf("drop prefix %q", prefix), err)
}
