package kv

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchEvent is one change of a key under a watched prefix.
type WatchEvent struct {
	Key     []byte
	Value   []byte // nil when Deleted
	Deleted bool
	// Created says the key did not exist before this change.
	Created bool
	// Rev is the revision of the commit that made the change (UpdateRev's
	// rev); the events of one commit share it and arrive together.
	Rev int64
}

// Watch calls fn with the changes under prefix (nil: every key) from
// revision fromRev on (0: from now), in revision order, each call holding
// whole commits, until ctx ends (it returns ctx's error) or fn returns an
// error (it returns it). To follow what a View loaded, watch from
// ViewRev's rev+1.
//
// It fails with ErrCompacted when fromRev is older than the cluster keeps,
// and with ErrUnavailable when the member it watches through loses its
// leader or its connection; the caller watches again from the last Rev it
// saw plus one (after a reload, for ErrCompacted).
func (e *Etcd) Watch(ctx context.Context, prefix []byte, fromRev int64, fn func([]WatchEvent) error) error {
	if e.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()
	r := prefixRange(prefix)
	opts := []clientv3.OpOption{clientv3.WithRange(endArg(r.hi))}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	next := fromRev
	what := func() string {
		if next == 0 {
			return "watch"
		}
		return fmt.Sprintf("watch from revision %d", next)
	}
	for resp := range e.watcher.Watch(ctx, r.lo, opts...) {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("etcd %s: compacted up to %d: %w", what(), resp.CompactRevision, ErrCompacted)
		}
		if err := resp.Err(); err != nil {
			return e.wrap(what(), err)
		}
		if len(resp.Events) == 0 {
			continue
		}
		evs := make([]WatchEvent, len(resp.Events))
		for i, ev := range resp.Events {
			evs[i] = WatchEvent{Key: ev.Kv.Key, Rev: ev.Kv.ModRevision}
			if ev.Type == clientv3.EventTypeDelete {
				evs[i].Deleted = true
			} else {
				evs[i].Value, evs[i].Created = ev.Kv.Value, ev.IsCreate()
			}
		}
		next = evs[len(evs)-1].Rev + 1
		if err := fn(evs); err != nil {
			return err
		}
	}
	if e.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("etcd %s: %w: the watch channel closed", what(), ErrUnavailable)
}
