package kv

import (
	"context"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// commit writes the transaction in one etcd transaction guarded by its
// read set.
func (t *etcdTxn) commit() (int64, error) {
	if len(t.writes) == 0 {
		return t.rev, nil
	}
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ops := make([]clientv3.Op, 0, len(keys)+1)
	for _, k := range keys {
		if w := t.writes[k]; w.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
	}
	if t.dels > 0 {
		ops = append(ops, clientv3.OpPut(guardKey, ""))
	}
	if len(ops) > t.e.maxOps {
		return 0, t.e.tooManyOps(len(ops))
	}
	cmps := t.compares()
	var resp *clientv3.TxnResponse
	err := t.e.call(func(ctx context.Context) (err error) {
		resp, err = t.e.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		return err
	})
	if err != nil {
		return 0, t.e.wrap(fmt.Sprintf("commit %d writes", len(ops)), err)
	}
	if !resp.Succeeded {
		t.e.log.Debug("conflict", "writes", len(ops), "compares", len(cmps), "rev", t.rev)
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// compares is the read set as etcd compares: each key read keeps the mod
// revision seen (a delete or a create changes it), each range walked has
// nothing newer than the read revision (an insert or a change). When they
// would not fit one etcd transaction: nothing newer over one span holding
// every read, plus the guard key, which every deleting commit bumps.
func (t *etcdTxn) compares() []clientv3.Cmp {
	if t.rev == 0 {
		return nil
	}
	ranges := mergeRanges(t.ranges)
	newer := func(r keyRange) clientv3.Cmp {
		return clientv3.Compare(clientv3.ModRevision(r.lo).WithRange(endArg(r.hi)), "<", t.rev+1)
	}
	if len(t.reads)+len(ranges) <= t.e.maxOps {
		cmps := make([]clientv3.Cmp, 0, len(t.reads)+len(ranges))
		for k, rev := range t.reads {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		}
		for _, r := range ranges {
			cmps = append(cmps, newer(r))
		}
		return cmps
	}
	all := slices.Clone(ranges)
	for k := range t.reads {
		all = append(all, keyRange{lo: k, hi: k + "\x00"})
	}
	span := all[0]
	for _, r := range all[1:] {
		span.lo = min(span.lo, r.lo)
		span.hi = maxEnd(span.hi, r.hi)
	}
	t.e.log.Debug("coarse commit", "reads", len(t.reads), "ranges", len(ranges), "from", span.lo, "to", span.hi)
	return []clientv3.Cmp{
		newer(span),
		clientv3.Compare(clientv3.ModRevision(guardKey), "<", t.rev+1),
	}
}

// maxEnd is the larger of two range ends, "" being the largest.
func maxEnd(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	return max(a, b)
}

// mergeRanges sorts ranges and joins those that overlap or touch.
func mergeRanges(in []keyRange) []keyRange {
	if len(in) == 0 {
		return nil
	}
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b keyRange) int { return strings.Compare(a.lo, b.lo) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if last.hi == "" || r.lo <= last.hi {
			last.hi = maxEnd(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// endArg is a range end as etcd takes it ("\x00": to the end).
func endArg(hi string) string {
	if hi == "" {
		return "\x00"
	}
	return hi
}

// prefixRange is the interval of keys that start with p.
func prefixRange(p []byte) keyRange {
	if len(p) == 0 {
		return keyRange{lo: "\x00"}
	}
	end := []byte(string(p))
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return keyRange{lo: string(p), hi: string(end[:i+1])}
		}
	}
	return keyRange{lo: string(p)} // p is all 0xff: to the end
}
