package kv

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Page sizes of an iterator's range reads. A descending read makes etcd
// read and sort every key of the range it is given, however small the
// limit, so reverse pages grow: a long reverse walk reads O(n log n) keys
// on the server, not O(n²/page).
const (
	iterPage       = 256
	iterReverseMax = 4096
)

type pendingKV struct {
	key string
	w   pendingWrite
}

// etcdIter merges two sorted streams: the keys under the prefix at the
// transaction's revision, read a page at a time, and the transaction's
// own writes as of NewIterator (a Set shadows the stored value, a Delete
// hides the key).
type etcdIter struct {
	t    *etcdTxn
	opt  IterOptions
	r    keyRange
	pend []pendingKV // ascending

	page  []*mvccpb.KeyValue // in walking order
	pi    int
	more  bool   // keys lie beyond page
	next  string // forward: the next page's first key; reverse: its end ("": none)
	limit int64
	pj    int // into pend; walks down when Reverse

	valid    bool
	key      []byte
	val      []byte
	fromPend bool

	// The walk since the last Seek or Rewind: from anchor (forward: the
	// first key it could hold; reverse: the end, exclusive) to the current
	// key. It joins the read set when it ends.
	walking bool
	anchor  string
	closed  bool
}

func newEtcdIter(t *etcdTxn, opt IterOptions) *etcdIter {
	it := &etcdIter{t: t, opt: opt, r: prefixRange(opt.Prefix)}
	for k, w := range t.writes {
		if it.r.contains(k) {
			it.pend = append(it.pend, pendingKV{key: k, w: w})
		}
	}
	slices.SortFunc(it.pend, func(a, b pendingKV) int { return strings.Compare(a.key, b.key) })
	return it
}

func (it *etcdIter) Rewind() {
	if it.opt.Reverse {
		it.seekReverse(it.r.hi)
	} else {
		it.seekForward(it.r.lo)
	}
}

func (it *etcdIter) Seek(key []byte) {
	if it.opt.Reverse {
		end := string(key) + "\x00"
		if it.r.hi != "" && end > it.r.hi {
			end = it.r.hi
		}
		it.seekReverse(end)
	} else {
		it.seekForward(max(string(key), it.r.lo))
	}
}

func (it *etcdIter) reset() bool {
	it.endWalk()
	it.valid = false
	it.page, it.pi = nil, 0
	return !it.closed && it.t.usable() == nil
}

func (it *etcdIter) seekForward(start string) {
	if !it.reset() {
		return
	}
	it.walking, it.anchor = true, start
	it.next, it.more, it.limit = start, it.r.hi == "" || start < it.r.hi, iterPage
	it.pj = sort.Search(len(it.pend), func(i int) bool { return it.pend[i].key >= start })
	it.settle()
}

// seekReverse walks down from the last key before end ("": the prefix's
// end).
func (it *etcdIter) seekReverse(end string) {
	if !it.reset() {
		return
	}
	it.walking, it.anchor = true, end
	it.next, it.more, it.limit = end, end == "" || end > it.r.lo, iterPage
	it.pj = len(it.pend) - 1
	if end != "" {
		it.pj = sort.Search(len(it.pend), func(i int) bool { return it.pend[i].key >= end }) - 1
	}
	it.settle()
}

// before: a comes before b in walking order.
func (it *etcdIter) before(a, b string) bool {
	if it.opt.Reverse {
		return a > b
	}
	return a < b
}

// fetch reads the next page.
func (it *etcdIter) fetch() {
	it.page, it.pi = nil, 0
	if !it.more {
		return
	}
	it.more = false
	lo, end := it.next, endArg(it.r.hi)
	if it.opt.Reverse {
		lo, end = it.r.lo, endArg(it.next)
	}
	limit := it.limit
	resp, err := it.t.get(lo, end, func(op []clientv3.OpOption) []clientv3.OpOption {
		op = append(op, clientv3.WithLimit(limit))
		if it.opt.Reverse {
			op = append(op, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		}
		if it.opt.KeysOnly {
			op = append(op, clientv3.WithKeysOnly())
		}
		return op
	})
	if err != nil {
		return // the transaction holds the error; the iterator ends
	}
	it.page, it.more = resp.Kvs, resp.More
	if n := len(it.page); n > 0 {
		last := string(it.page[n-1].Key)
		if it.opt.Reverse {
			it.next = last
			it.limit = min(2*it.limit, iterReverseMax)
		} else {
			it.next = last + "\x00"
		}
	}
}

func (it *etcdIter) remoteHead() *mvccpb.KeyValue {
	if it.pi >= len(it.page) {
		it.fetch()
	}
	if it.pi < len(it.page) {
		return it.page[it.pi]
	}
	return nil
}

func (it *etcdIter) pendHead() *pendingKV {
	if it.pj >= 0 && it.pj < len(it.pend) {
		return &it.pend[it.pj]
	}
	return nil
}

func (it *etcdIter) advancePend() {
	if it.opt.Reverse {
		it.pj--
	} else {
		it.pj++
	}
}

// settle makes the first visible key of the two streams current.
func (it *etcdIter) settle() {
	it.valid = false
	for it.t.err == nil {
		rk, pk := it.remoteHead(), it.pendHead()
		if it.t.err != nil || rk == nil && pk == nil {
			return
		}
		if pk != nil && (rk == nil || !it.before(string(rk.Key), pk.key)) {
			if rk != nil && string(rk.Key) == pk.key {
				it.pi++ // shadowed by the transaction's own write
				continue
			}
			if pk.w.del {
				it.advancePend()
				continue
			}
			it.valid, it.fromPend = true, true
			it.key, it.val = []byte(pk.key), pk.w.val
			return
		}
		if it.t.update {
			it.t.read(string(rk.Key), rk.ModRevision)
		}
		it.valid, it.fromPend = true, false
		it.key, it.val = rk.Key, rk.Value
		return
	}
}

func (it *etcdIter) Valid() bool { return it.valid && it.t.err == nil && !it.closed }

func (it *etcdIter) ValidForPrefix(p []byte) bool {
	return it.Valid() && bytes.HasPrefix(it.key, p)
}

func (it *etcdIter) Next() {
	if !it.Valid() {
		return
	}
	if it.fromPend {
		it.advancePend()
	} else {
		it.pi++
	}
	it.settle()
}

func (it *etcdIter) Key() []byte { return it.key }

func (it *etcdIter) Value(fn func(val []byte) error) error {
	if !it.Valid() {
		return ErrNotFound
	}
	if it.fromPend || !it.opt.KeysOnly {
		return fn(it.val)
	}
	// KeysOnly promised no Value call; read it at the same revision.
	resp, err := it.t.get(string(it.key), "", nil)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return ErrNotFound
	}
	return fn(resp.Kvs[0].Value)
}

// endWalk adds the range walked since the last Seek to the read set: up
// to and with the current key, or to the prefix's end once it ran out.
func (it *etcdIter) endWalk() {
	if !it.walking {
		return
	}
	it.walking = false
	if !it.t.update {
		return
	}
	var r keyRange
	switch {
	case !it.opt.Reverse && it.valid:
		r = keyRange{lo: it.anchor, hi: string(it.key) + "\x00"}
	case !it.opt.Reverse:
		r = keyRange{lo: it.anchor, hi: it.r.hi}
	case it.valid:
		r = keyRange{lo: string(it.key), hi: it.anchor}
	default:
		r = keyRange{lo: it.r.lo, hi: it.anchor}
	}
	if r.hi == "" || r.lo < r.hi {
		it.t.ranges = append(it.t.ranges, r)
	}
}

func (it *etcdIter) Close() {
	if it.closed {
		return
	}
	it.endWalk()
	it.closed = true
	it.valid = false
}
