package store

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Audit ids are 24 lower-case hex digits: 16 of Unix nanoseconds and 8 of a
// sequence number. nextID makes them strictly increasing within a database,
// even across restarts and when the clock stands still or steps back, so
// the key order of a/<id> is the order in which entries were written.
const idLen = 24

// Audit list limits.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func auditKey(id string) []byte         { return []byte("a/" + id) }
func auditMACPrefix(mac string) string  { return "am/" + mac + "/" }
func auditMACKey(mac, id string) []byte { return []byte(auditMACPrefix(mac) + id) }

func formatID(nanos uint64, seq uint32) string { return fmt.Sprintf("%016x%08x", nanos, seq) }

// parseID splits an id; ok is false for anything nextID cannot produce.
func parseID(id string) (nanos uint64, seq uint32, ok bool) {
	if len(id) != idLen {
		return 0, 0, false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, 0, false
		}
	}
	n, err1 := strconv.ParseUint(id[:16], 16, 64)
	s, err2 := strconv.ParseUint(id[16:], 16, 32)
	return n, uint32(s), err1 == nil && err2 == nil
}

// nextID returns a fresh audit id for an entry written at now.
func (db *DB) nextID(now time.Time) string {
	var n uint64
	if ns := now.UnixNano(); ns > 0 {
		n = uint64(ns)
	}
	db.idMu.Lock()
	defer db.idMu.Unlock()
	switch {
	case n > db.lastNanos:
		db.lastNanos, db.lastSeq = n, 0
	case db.lastSeq == ^uint32(0):
		db.lastNanos, db.lastSeq = db.lastNanos+1, 0
	default:
		db.lastSeq++
	}
	return formatID(db.lastNanos, db.lastSeq)
}

// initIDs continues the id sequence after the newest stored entry. A key
// that is not an audit id (a damaged one) is reported and passed over: it
// must not keep the appliance from starting.
func (db *DB) initIDs() error {
	return db.kv.View(func(txn kv.Txn) error {
		opt := kv.IterOptions{Reverse: true, Prefix: []byte("a/")}
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek([]byte("a/\xff")); it.Valid(); it.Next() {
			key := it.Key()
			if n, s, ok := parseID(string(key[2:])); ok {
				db.lastNanos, db.lastSeq = n, s
				return nil
			}
			db.corrupt.report(kv.KeyCopy(it), errBadAuditKey)
		}
		return nil
	})
}

// errBadAuditKey is reported for a key under a/ or am/ that does not end
// in an audit id.
var errBadAuditKey = fmt.Errorf("%w: the key does not end in an audit id", ErrCorrupt)

// decodeAudit decodes the entry stored at key (a/<id>) from b. An entry
// that does not decode, or whose id is not its key's (JSON of another
// shape decodes to an entry without one), wraps ErrCorrupt.
func decodeAudit(key []byte, id string, b []byte) (AuditEntry, error) {
	var e AuditEntry
	if err := decodeValue(key, b, &e); err != nil {
		return AuditEntry{}, err
	}
	if e.ID != id {
		return AuditEntry{}, fmt.Errorf("decode %s: %w: the entry's id is %s", key, ErrCorrupt, label(e.ID))
	}
	return e, nil
}

// readAudit reads the entry at the iterator's item; ok is false when it
// is damaged, which is reported (logged once, counted) so that the
// caller skips it: one bad entry must not stop the audit list or an
// exporter that follows the log.
func (db *DB) readAudit(key []byte, id string, value func(func([]byte) error) error) (e AuditEntry, ok bool) {
	err := value(func(b []byte) error {
		var err error
		e, err = decodeAudit(key, id, b)
		return err
	})
	if err != nil {
		db.corrupt.report(append([]byte(nil), key...), err)
		return AuditEntry{}, false
	}
	return e, true
}

// writeAudit adds an entry (a already checked) inside txn; rev is the
// machine revision the change made (AuditEntry.Revision), 0 for none.
func (db *DB) writeAudit(txn kv.Txn, mac string, a Audit, now time.Time, rev uint64) error {
	e := AuditEntry{ID: db.nextID(now), Time: now, MAC: mac, Revision: rev, Audit: a}
	if db.shared != nil {
		// Another appliance's clock may give the same id: reading the key
		// makes a concurrent write of it conflict, and the retry takes the
		// next id; an entry already there is never overwritten.
		if err := txn.Get(auditKey(e.ID), nil); err == nil {
			return fmt.Errorf("audit id %s: %w", e.ID, kv.ErrConflict)
		} else if !errors.Is(err, kv.ErrNotFound) {
			return fmt.Errorf("write audit entry: %w", err)
		}
	}
	if err := setJSON(txn, auditKey(e.ID), e); err != nil {
		return fmt.Errorf("write audit entry: %w", err)
	}
	if mac != "" {
		if err := txn.Set(auditMACKey(mac, e.ID), nil); err != nil {
			return fmt.Errorf("write audit index: %w", err)
		}
	}
	return nil
}

// AppendAudit records an event that is not part of a store write (a failed
// approval attempt, say). mac may be empty.
func (db *DB) AppendAudit(mac string, a Audit) error {
	if mac != "" {
		if err := checkMAC(mac); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
	}
	if err := checkAudit(&a, "note"); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err := db.update(func(txn kv.Txn) error { return db.writeAudit(txn, mac, a, db.now(), 0) })
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// ListAudit returns matching entries newest first. Since is inclusive and
// Until exclusive; After continues a listing with the entries strictly
// older than that id (pass the last id of the previous page). Limit 0
// means 100; larger than 1000 means 1000. Damaged entries and index keys
// are skipped and reported (CorruptRecords), never an error; an index key
// whose entry is gone is skipped.
func (db *DB) ListAudit(f AuditFilter) ([]AuditEntry, error) {
	limit := f.Limit
	switch {
	case limit < 0:
		return nil, fmt.Errorf("list audit: %w: negative limit %d", ErrInvalid, limit)
	case limit == 0:
		limit = defaultAuditLimit
	case limit > maxAuditLimit:
		limit = maxAuditLimit
	}
	if f.After != "" {
		if _, _, ok := parseID(f.After); !ok {
			return nil, fmt.Errorf("list audit: %w: cursor %s is not an audit id", ErrInvalid, label(f.After))
		}
	}
	prefix := "a/"
	if f.MAC != "" {
		if err := checkMAC(f.MAC); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		prefix = auditMACPrefix(f.MAC)
	}
	out := []AuditEntry{}
	err := db.kv.View(func(txn kv.Txn) error {
		opt := kv.IterOptions{Reverse: true, Prefix: []byte(prefix), KeysOnly: f.MAC != ""}
		it := txn.NewIterator(opt)
		defer it.Close()
		start := prefix + "\xff"
		if f.After != "" {
			start = prefix + f.After
		}
		for it.Seek([]byte(start)); it.Valid() && len(out) < limit; it.Next() {
			key := it.Key()
			id := string(key[len(prefix):])
			if id == f.After {
				continue
			}
			n, _, ok := parseID(id)
			if !ok {
				db.corrupt.report(kv.KeyCopy(it), errBadAuditKey)
				continue
			}
			// An entry's time is never later than its id's, and ids only
			// get older from here: nothing further can be at or after Since.
			if !f.Since.IsZero() && time.Unix(0, int64(n)).Before(f.Since) {
				break
			}
			if f.MAC != "" {
				// The index key names the entry; the entry is read apart.
				key := auditKey(id)
				var e AuditEntry
				var bad error
				err := txn.Get(key, func(b []byte) error {
					e, bad = decodeAudit(key, id, b)
					return nil
				})
				switch {
				case errors.Is(err, kv.ErrNotFound):
					// pruned (retention.go deletes both keys at once; an older layout may not have)
				case err != nil:
					return fmt.Errorf("read audit entry %s: %w", id, err)
				case bad != nil:
					db.corrupt.report(key, bad)
				case f.match(e):
					out = append(out, e)
				}
				continue
			}
			if e, ok := db.readAudit(key, id, it.Value); ok && f.match(e) {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

func (f AuditFilter) match(e AuditEntry) bool {
	return (f.MAC == "" || e.MAC == f.MAC) &&
		(f.Actor == "" || e.Actor == f.Actor) &&
		(f.Action == "" || e.Action == f.Action) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since)) &&
		(f.Until.IsZero() || e.Time.Before(f.Until))
}
