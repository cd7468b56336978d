package store

import (
	"fmt"
	"strings"
	"sync"

	"github.com/foundry-appliance/foundry/store/kv"
)

// knownMACs is an in-memory superset of the MACs that have a machine
// record. The DHCP server looks up every packet's MAC, and on a busy
// network most of them belong to no machine: a MAC absent here is answered
// "not found" without a Badger transaction (which profiled at a tenth of
// the DHCP server's CPU).
//
// It stays a superset because a MAC is added before the transaction that
// creates its record and removed only after the one that deletes it has
// committed, both under the machine's lock (lockMAC) that orders every
// create and delete of one MAC. A failed transaction leaves the MAC in:
// the set may only err towards a Badger lookup.
type knownMACs struct {
	mu   sync.RWMutex
	macs macMap[struct{}]
}

// load fills the set with the MAC of every stored machine.
func (k *knownMACs) load(e kv.Engine) error {
	var macs macMap[struct{}]
	err := e.View(func(txn kv.Txn) error {
		opt := kv.IterOptions{}
		opt.Prefix = []byte("m/")
		opt.KeysOnly = true
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			macs.set(strings.TrimPrefix(string(it.Key()), "m/"), struct{}{})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load machine index: %w", err)
	}
	k.mu.Lock()
	k.macs = macs
	k.mu.Unlock()
	return nil
}

// mayExist reports whether mac may have a machine record; false means it
// certainly has none.
func (k *knownMACs) mayExist(mac string) bool {
	k.mu.RLock()
	_, ok := k.macs.get(mac)
	k.mu.RUnlock()
	return ok
}

// add is called, under the MAC's lock, before a transaction that may
// create mac's record.
func (k *knownMACs) add(mac string) {
	k.mu.Lock()
	k.macs.set(mac, struct{}{})
	k.mu.Unlock()
}

// remove is called, under the MAC's lock, after a transaction that deleted
// mac's record has committed.
func (k *knownMACs) remove(mac string) {
	k.mu.Lock()
	k.macs.delete(mac)
	k.mu.Unlock()
}
