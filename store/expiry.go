package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store/kv"
)

// expireAudit is the audit record of an expiry (docs/spec.md §1).
var expireAudit = Audit{Actor: "system", Action: "expire"}

// ExpireMachines deletes every temporary machine whose ExpiresAt is not
// after Now, each in its own transaction with an audit entry (actor
// "system", action "expire") and a "deleted" event, and returns them. A
// machine approved (made permanent) in the meantime is left alone.
func (db *DB) ExpireMachines() ([]Machine, error) {
	now := db.now()
	var due []string
	// The expiry entries (index.go) sort by time: the round reads keys up
	// to now and no record that is not due; expire re-reads each one under
	// its lock, so an entry left stale by a concurrent change only costs a
	// look.
	bound := now.UTC().Format(timeKey)
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(expiryPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			mac, ok := expiryMAC(it.Key(), bound)
			if !ok {
				break
			}
			due = append(due, mac)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire machines: %w", err)
	}
	out := []Machine{}
	var errs []error
	for _, mac := range due {
		m, ok, err := db.expire(mac, now)
		if err != nil {
			errs = append(errs, err)
		} else if ok {
			out = append(out, m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("expire machines: %w", err)
	}
	return out, nil
}

// expire deletes one machine if it is still due; ok reports whether it was.
func (db *DB) expire(mac string, now time.Time) (m Machine, ok bool, err error) {
	defer db.lockMAC(mac)()
	err = db.update(func(txn kv.Txn) error {
		cur, err := getMachine(txn, mac)
		if errors.Is(err, ErrNotFound) {
			ok = false
			return nil
		}
		if err != nil {
			return err
		}
		if ok = cur.Temporary && !cur.ExpiresAt.After(now); !ok {
			return nil
		}
		a := expireAudit
		a.Detail = "temporary record expired at " + cur.ExpiresAt.UTC().Format(time.RFC3339)
		m, err = db.deleteMachine(txn, mac, a)
		return err
	})
	if err != nil {
		return Machine{}, false, fmt.Errorf("expire %s: %w", mac, err)
	}
	if ok {
		db.known.remove(mac)
		db.publish(EventDeleted, m)
	}
	return m, ok, nil
}

// RunExpiry calls ExpireMachines, removes expired boot nonces and lets
// Badger reclaim value-log space, at once and then every every (default
// one minute), until ctx is done; it then returns nil. Failures are logged
// and retried on the next round.
func (db *DB) RunExpiry(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		db.expireRound()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (db *DB) expireRound() {
	if db.isClosed() {
		return // the owner closed the store before cancelling ctx
	}
	gone, err := db.ExpireMachines()
	if err != nil {
		db.log.Warn("expire machines", "err", err)
	}
	for _, m := range gone {
		db.log.Info("expired temporary machine", "mac", m.MAC, "expires_at", m.ExpiresAt)
	}
	if n, err := db.sweepNonces(); err != nil {
		db.log.Warn("remove expired nonces", "err", err)
	} else if n > 0 {
		db.log.Debug("removed expired nonces", "count", n)
	}
	if n, err := db.sweepSessions(); err != nil {
		db.log.Warn("end expired sessions", "err", err)
	} else if n > 0 {
		db.log.Debug("ended expired sessions", "count", n)
	}
	b, ok := db.kv.(*kv.Badger)
	if !ok || b.DB().Opts().InMemory {
		return
	}
	// One pass at most: GC is incremental and the next round continues.
	err = b.DB().RunValueLogGC(0.5)
	if err != nil && !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
		db.log.Warn("value log gc", "err", err)
	}
}
