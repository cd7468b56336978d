package gitops

import (
	"sync"

	"github.com/foundry-appliance/foundry/store"
)

// snapshots keep each machine as the store's recent events showed it, so
// that an audit entry is committed with the machine as it was right after
// that entry's change, however soon the next change followed: an
// administrator's approval is a commit of the approved Hardware even when
// another one deleted the machine a millisecond later. A goroutine fills
// it from store.Subscribe, so the exporter being busy (a slow push) drops
// no event. When a snapshot is missing (after a restart, or beyond the
// bounds below) the machine as it is now is committed instead: its later
// changes fold into that commit.
type snapshots struct {
	mu sync.Mutex
	by map[string][]snapshot
	n  int
}

type snapshot struct {
	rev  uint64 // the audit entry's Revision it pairs with
	m    store.Machine
	gone bool
}

// Bounds: revisions kept per machine (unaudited sightings also make
// revisions) and in all.
const (
	snapsPerMachine = 16
	snapsTotal      = 1024
)

func (c *snapshots) add(ev store.Event) {
	sn := snapshot{rev: ev.Machine.Revision, m: ev.Machine}
	if ev.Type == store.EventDeleted {
		sn.rev, sn.gone = ev.Machine.Revision+1, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string][]snapshot{}
	}
	if c.n >= snapsTotal {
		c.by, c.n = map[string][]snapshot{}, 0
	}
	list := append(c.by[sn.m.MAC], sn)
	if len(list) > snapsPerMachine {
		list = list[1:]
		c.n--
	}
	c.by[sn.m.MAC] = list
	c.n++
}

// take returns mac's snapshot of revision rev and forgets it and every
// older one.
func (c *snapshots) take(mac string, rev uint64) (snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.by[mac]
	var found snapshot
	ok := false
	i := 0
	for ; i < len(list) && list[i].rev <= rev; i++ {
		if list[i].rev == rev {
			found, ok = list[i], true
		}
	}
	c.n -= i
	if i == len(list) {
		delete(c.by, mac)
	} else {
		c.by[mac] = list[i:]
	}
	return found, ok
}
