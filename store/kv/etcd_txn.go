package kv

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// errTxnEnded: a Txn used after its View or Update returned.
var errTxnEnded = errors.New("kv: transaction used after it ended")

// pendingWrite is a buffered Set (del false) or Delete.
type pendingWrite struct {
	val []byte
	del bool
}

// keyRange is the interval [lo, hi) of keys; hi "" is the end of the
// engine's namespace.
type keyRange struct{ lo, hi string }

func (r keyRange) contains(k string) bool { return k >= r.lo && (r.hi == "" || k < r.hi) }

// etcdTxn is one View or Update.
type etcdTxn struct {
	e      *Etcd
	update bool
	ended  bool
	err    error // the first failed read: the transaction's outcome

	rev    int64 // the revision every read is at; 0 before the first read
	writes map[string]pendingWrite
	dels   int // deletes among writes

	// The read set (Update only): the mod revision seen of every key read
	// (0: absent), the ranges iterators walked, the iterators not closed.
	reads  map[string]int64
	ranges []keyRange
	iters  []*etcdIter
}

func (e *Etcd) newTxn(update bool) *etcdTxn {
	t := &etcdTxn{e: e, update: update}
	if update {
		t.writes = map[string]pendingWrite{}
		t.reads = map[string]int64{}
	}
	return t
}

// end closes what fn left open; its iterators' walks join the read set.
func (t *etcdTxn) end() {
	for _, it := range t.iters {
		it.Close()
	}
	t.iters = nil
	t.ended = true
}

func (t *etcdTxn) usable() error {
	if t.ended {
		return errTxnEnded
	}
	if t.err != nil {
		return t.err
	}
	if t.e.closed.Load() {
		return ErrClosed
	}
	return nil
}

// fail records the first failed read: the transaction cannot commit, and
// View returns it even when fn returns nil (an iterator cannot report it).
func (t *etcdTxn) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

// pin fixes the transaction's revision with a linearizable read.
func (t *etcdTxn) pin() error {
	_, err := t.get("\x00", "", func(op []clientv3.OpOption) []clientv3.OpOption {
		return append(op, clientv3.WithCountOnly())
	})
	return err
}

// get reads key (or [key, end) when end is set) at the transaction's
// revision; the first read is linearizable and fixes that revision.
func (t *etcdTxn) get(key, end string, more func([]clientv3.OpOption) []clientv3.OpOption) (*clientv3.GetResponse, error) {
	var opts []clientv3.OpOption
	if end != "" {
		opts = append(opts, clientv3.WithRange(end))
	}
	if more != nil {
		opts = more(opts)
	}
	if t.rev != 0 {
		// The revision is committed, so any member that has applied it
		// answers alone; one that lags says so and the read goes through
		// the leader.
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	var resp *clientv3.GetResponse
	err := t.e.call(func(ctx context.Context) (err error) {
		if t.rev != 0 {
			resp, err = t.e.kv.Get(ctx, key, append(opts, clientv3.WithSerializable())...)
			if !isFutureRev(err) {
				return err
			}
		}
		resp, err = t.e.kv.Get(ctx, key, opts...)
		return err
	})
	if err != nil {
		return nil, t.fail(t.e.wrap(fmt.Sprintf("read %q", key), err))
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

func (t *etcdTxn) Get(key []byte, fn func(val []byte) error) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("kv: empty key")
	}
	if w, ok := t.writes[string(key)]; ok {
		if w.del {
			return ErrNotFound
		}
		if fn == nil {
			return nil
		}
		return fn(w.val)
	}
	resp, err := t.get(string(key), "", func(op []clientv3.OpOption) []clientv3.OpOption {
		if fn == nil {
			return append(op, clientv3.WithKeysOnly())
		}
		return op
	})
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		t.read(string(key), 0)
		return ErrNotFound
	}
	t.read(string(key), resp.Kvs[0].ModRevision)
	if fn == nil {
		return nil
	}
	return fn(resp.Kvs[0].Value)
}

// read notes a key's mod revision in the read set.
func (t *etcdTxn) read(key string, modRev int64) {
	if t.update {
		t.reads[key] = modRev
	}
}

func (t *etcdTxn) Set(key, val []byte) error {
	return t.write(key, pendingWrite{val: val})
}

func (t *etcdTxn) Delete(key []byte) error {
	return t.write(key, pendingWrite{del: true})
}

func (t *etcdTxn) write(key []byte, w pendingWrite) error {
	if err := t.usable(); err != nil {
		return err
	}
	if !t.update {
		return ErrReadOnly
	}
	if len(key) == 0 {
		return errors.New("kv: empty key")
	}
	k := string(key)
	old, had := t.writes[k]
	dels := t.dels
	if had && old.del {
		dels--
	}
	if w.del {
		dels++
	}
	n := len(t.writes)
	if !had {
		n++
	}
	if dels > 0 {
		n++ // the guard key
	}
	if n > t.e.maxOps {
		return t.e.tooManyOps(n)
	}
	t.writes[k] = w
	t.dels = dels
	return nil
}

// ErrTxnTooBig: a transaction writes more keys than one etcd transaction
// may hold (the cluster's --max-txn-ops), or more bytes than one request
// may carry (--max-request-bytes, 1.5 MiB by default). Nothing was
// written; the caller splits its work.
var ErrTxnTooBig = errors.New("transaction too big for one etcd transaction")

func (e *Etcd) tooManyOps(n int) error {
	return fmt.Errorf("kv: %d operations in a transaction, over the %d etcd allows (its --max-txn-ops, EtcdOptions.MaxTxnOps): %w", n, e.maxOps, ErrTxnTooBig)
}

func (t *etcdTxn) NewIterator(opt IterOptions) Iterator {
	it := newEtcdIter(t, opt)
	if t.update {
		t.iters = append(t.iters, it)
	}
	return it
}
