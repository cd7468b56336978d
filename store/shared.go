package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// sharedEngine is an engine other appliances write to as well (etcd): the
// store follows their commits through a watch, so that its in-memory
// views (the known MACs, the search mirror, the event stream) stay
// current. A machine another appliance creates is therefore known here
// once the watch has delivered it, milliseconds later; until then
// GetMachine says it does not exist, as it would have a moment earlier.
type sharedEngine interface {
	kv.Engine
	ViewRev(fn func(kv.Txn) error) (int64, error)
	UpdateRev(fn func(kv.Txn) error) (int64, error)
	Watch(ctx context.Context, prefix []byte, fromRev int64, fn func([]kv.WatchEvent) error) error
	Ping(ctx context.Context) error
}

// follower applies the commits other appliances make to this one's
// in-memory state. Commits this appliance made itself are recognised by
// their revision and passed over: their effects are applied by the code
// that made them, which holds the machine's lock (lockMAC) until it has
// published, so a remote change of the same machine waits for it.
type follower struct {
	eng sharedEngine

	mu  sync.Mutex
	own map[int64]struct{} // revisions of this appliance's commits not yet seen in the watch

	cancel context.CancelFunc
	done   chan struct{}
}

// update commits fn and records its revision as this appliance's own.
func (f *follower) update(fn func(kv.Txn) error) error {
	rev, err := f.eng.UpdateRev(fn)
	if err == nil && rev > 0 {
		f.mu.Lock()
		f.own[rev] = struct{}{}
		f.mu.Unlock()
	}
	return err
}

// mine reports whether rev is one of this appliance's commits. The caller
// holds the lock of the machine the commit changed: a commit of this
// appliance that changed it has recorded its revision before it let go.
func (f *follower) mine(rev int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.own[rev]
	return ok
}

// seen forgets rev once the watch has delivered its commit.
func (f *follower) seen(rev int64) {
	f.mu.Lock()
	delete(f.own, rev)
	f.mu.Unlock()
}

// OpenEngine opens the store on an engine that is not the default Badger
// database (kv.OpenEtcd's). The engine is closed with the DB, or at once
// when opening fails. Options.InMemory, SpaceReserve and FreeSpace do not
// apply: the engine keeps its own space (etcd's quota fails a write with
// kv.ErrNoSpace, which the store returns as ErrNoSpace).
func OpenEngine(e kv.Engine, opt Options) (*DB, error) {
	db, err := open(e, opt, nil)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// follow starts the watch of a shared engine from just after rev, the
// revision the in-memory state was loaded at.
func (db *DB) follow(f *follower, rev int64) {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		from := rev + 1
		for {
			err := f.eng.Watch(ctx, nil, from, func(evs []kv.WatchEvent) error {
				db.applyRemote(f, evs)
				from = evs[len(evs)-1].Rev + 1
				return nil
			})
			if ctx.Err() != nil || errors.Is(err, kv.ErrClosed) {
				return
			}
			if errors.Is(err, kv.ErrCompacted) {
				// Changes were missed: every in-memory view reloads, and
				// the watch resumes after the revision the reload starts
				// from (as at open), so that nothing in between is lost.
				db.log.Warn("store watch fell behind the cluster's compaction; reloading", "err", err)
				rev, rerr := f.eng.ViewRev(func(txn kv.Txn) error { return txn.Get(keySchema, nil) })
				if rerr == nil {
					rerr = db.known.load(db.kv)
				}
				if rerr != nil {
					db.log.Warn("reload after compaction", "err", rerr) // tried again after the pause
				} else {
					db.mirror.drop()
					db.dropSubscribers()
					f.mu.Lock()
					clear(f.own) // commits in the gap never come back
					f.mu.Unlock()
					from = rev + 1
				}
			} else {
				db.log.Warn("store watch ended; watching again", "err", err, "from_revision", from)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// applyRemote brings one batch of another appliance's commits into this
// appliance's mirror and event stream.
func (db *DB) applyRemote(f *follower, evs []kv.WatchEvent) {
	for i := 0; i < len(evs); {
		rev := evs[i].Rev
		j := i
		for j < len(evs) && evs[j].Rev == rev {
			j++
		}
		for _, ev := range evs[i:j] {
			db.applyRemoteKey(f, ev)
		}
		f.seen(rev)
		i = j
	}
}

func (db *DB) applyRemoteKey(f *follower, ev kv.WatchEvent) {
	key := string(ev.Key)
	var mac string
	switch {
	case strings.HasPrefix(key, "m/"):
		mac = key[2:]
	case strings.HasPrefix(key, "xq/"):
		mac = key[3:]
	default:
		return
	}
	defer db.lockMAC(mac)()
	if f.mine(ev.Rev) {
		return
	}
	switch {
	case strings.HasPrefix(key, "m/"):
		if ev.Deleted {
			db.known.remove(mac)
			db.publish(EventDeleted, Machine{MAC: mac})
			return
		}
		db.known.add(mac)
		var m Machine
		err := db.kv.View(func(txn kv.Txn) (err error) {
			m, err = getMachine(txn, mac)
			return err
		})
		if err != nil {
			// Deleted again since, or unreadable: a later event or the
			// next list says so.
			db.log.Debug("follow a remote machine change", "mac", mac, "err", err)
			return
		}
		typ := EventUpdated
		if ev.Created {
			typ = EventCreated
		}
		db.publish(typ, m)
	default:
		// A session change moved the machine's search row (conflicts).
		db.mirror.refresh(db.kv, mac)
	}
}

// dropSubscribers closes every subscriber's channel: they missed events
// and must load what they show again (Subscribe).
func (db *DB) dropSubscribers() {
	db.subMu.Lock()
	defer db.subMu.Unlock()
	for s := range db.subs {
		delete(db.subs, s)
		close(s.ch)
	}
}

// Healthy returns nil when the store's backend answers: always on Badger;
// on a shared engine, a quorum read within its request timeout. The error
// wraps ErrUnavailable (for /readyz).
func (db *DB) Healthy(ctx context.Context) error {
	if db.shared == nil {
		return nil
	}
	if err := db.shared.eng.Ping(ctx); err != nil {
		return fmt.Errorf("store backend: %w", err)
	}
	return nil
}

// Backend names the engine the records are kept in: "badger" or "etcd".
func (db *DB) Backend() string {
	if db.shared != nil {
		return "etcd"
	}
	return "badger"
}

// ErrUnavailable is returned when a shared backend cannot be reached or
// has lost its quorum: nothing was written, or, when a commit's answer was
// lost, the caller cannot know (kv.ErrUnavailable).
var ErrUnavailable = kv.ErrUnavailable

// txnItems is how many items of perItem writes each one transaction holds:
// def, or fewer on an engine that bounds a transaction's operations
// (etcd's --max-txn-ops; one is kept for the engine's own delete marker).
func (db *DB) txnItems(perItem, def int) int {
	l, ok := db.kv.(interface{ MaxTxnOps() int })
	if !ok {
		return def
	}
	return max(1, min(def, (l.MaxTxnOps()-1)/perItem))
}
