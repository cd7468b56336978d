package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"

	"github.com/foundry-appliance/foundry/names"
)

// An exporter (the GitOps repository, package gitops) follows the audit
// log: it reads the entries after the last one it has delivered, in the
// order they were written, and keeps that entry's id as a named cursor
// (meta/cursor/<name>). The audit log is written in the same synced
// transaction as every change, so a cursor that moves only once an entry's
// effect is delivered loses nothing across a crash or a restart.

func cursorKey(name string) []byte { return []byte("meta/cursor/" + name) }

// AuditAfter returns up to limit entries written after the entry with id
// after ("" = from the first), oldest first. Limit 0 means 100; larger
// than 1000 means 1000. Entries that cannot be decoded are skipped and
// reported (CorruptRecords), never returned nor an error.
//
// Ids are drawn inside their transaction, before it commits, so an entry
// can appear after one with a later id (two writes racing by a fraction
// of a second). A follower that must see every entry reads again from a
// little before its cursor (AuditIDBefore) and ignores what it has seen.
func (db *DB) AuditAfter(after string, limit int) ([]AuditEntry, error) {
	switch {
	case limit < 0:
		return nil, fmt.Errorf("audit after: %w: negative limit %d", ErrInvalid, limit)
	case limit == 0:
		limit = defaultAuditLimit
	case limit > maxAuditLimit:
		limit = maxAuditLimit
	}
	if after != "" {
		if _, _, ok := parseID(after); !ok {
			return nil, fmt.Errorf("audit after: %w: cursor %s is not an audit id", ErrInvalid, label(after))
		}
	}
	out := []AuditEntry{}
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("a/")})
		defer it.Close()
		for it.Seek(auditKey(after)); it.Valid() && len(out) < limit; it.Next() {
			id := string(it.Key()[2:])
			if id == after {
				continue
			}
			// A damaged entry is reported and passed over: the exporter
			// goes on with the entries after it (it renders each machine
			// whole, so the next entry of that machine carries its change).
			if e, ok := db.readAudit(it.Key(), id, it.Value); ok {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit after: %w", err)
	}
	return out, nil
}

// AuditIDBefore returns the smallest id that an entry written d before
// the entry with id could have ("" for "" or an id that is not one), for
// re-reading behind a cursor.
func AuditIDBefore(id string, d time.Duration) string {
	n, _, ok := parseID(id)
	if !ok {
		return ""
	}
	if uint64(d) >= n {
		return ""
	}
	return formatID(n-uint64(d), 0)
}

// Cursor returns the value of the named cursor; "" when it was never set.
func (db *DB) Cursor(name string) (string, error) {
	if err := names.CheckName(name); err != nil {
		return "", fmt.Errorf("read cursor: %w: %v", ErrInvalid, err)
	}
	var v string
	err := db.kv.View(func(txn kv.Txn) error {
		b, err := getRaw(txn, cursorKey(name))
		if err != nil {
			return err
		}
		v = string(b)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor sets the named cursor to value (an audit id, or "" to start
// over), synced.
func (db *DB) SetCursor(name, value string) error {
	if err := names.CheckName(name); err != nil {
		return fmt.Errorf("set cursor: %w: %v", ErrInvalid, err)
	}
	if value != "" {
		if _, _, ok := parseID(value); !ok {
			return fmt.Errorf("set cursor: %w: %s is not an audit id", ErrInvalid, label(value))
		}
	}
	err := db.update(func(txn kv.Txn) error { return txn.Set(cursorKey(name), []byte(value)) })
	if err != nil {
		return fmt.Errorf("set cursor %s: %w", name, err)
	}
	return nil
}
