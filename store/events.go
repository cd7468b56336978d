package store

// Event types.
const (
	EventCreated = "created"
	EventUpdated = "updated"
	EventDeleted = "deleted"
)

// subscriber is one Subscribe call; its channel is closed exactly once, by
// cancel, by publish (when it falls behind) or by Close, all under subMu.
type subscriber struct{ ch chan Event }

// defaultEventBuffer is used when Subscribe is given a buffer below 1.
const defaultEventBuffer = 64

// Subscribe returns a channel that receives an Event after every committed
// machine create, update and delete (expiry included), and a cancel
// function that ends the subscription and closes the channel.
//
// Writers never wait for subscribers. A subscriber whose buffer is full
// when an event arrives is dropped: its channel is closed without that
// event. A closed channel therefore means "you missed something": the
// subscriber must subscribe again and reload what it shows (ListMachines).
// Events of one machine arrive in Revision order. A buffer below 1 means 64.
// Event values are shared between subscribers and must not be modified.
func (db *DB) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer < 1 {
		buffer = defaultEventBuffer
	}
	s := &subscriber{ch: make(chan Event, buffer)}
	db.subMu.Lock()
	defer db.subMu.Unlock()
	if db.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	db.subs[s] = struct{}{}
	cancel := func() {
		db.subMu.Lock()
		defer db.subMu.Unlock()
		if _, ok := db.subs[s]; ok {
			delete(db.subs, s)
			close(s.ch)
		}
	}
	return s.ch, cancel
}

// publish delivers an event of each of ms (one machine as one commit's
// steps left it, in order) to every subscriber without blocking. Callers
// hold the machine's lock, which keeps one machine's events in commit
// order.
func (db *DB) publish(typ string, ms ...Machine) {
	db.mirror.refresh(db.kv, ms[len(ms)-1].MAC) // before subscribers hear of it
	db.subMu.Lock()
	defer db.subMu.Unlock()
	for _, m := range ms {
		ev := Event{Type: typ, Machine: m}
		for s := range db.subs {
			select {
			case s.ch <- ev:
			default:
				delete(db.subs, s)
				close(s.ch)
				db.log.Warn("event subscriber fell behind; dropped", "buffer", cap(s.ch))
			}
		}
	}
}
