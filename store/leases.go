package store

import (
	"fmt"

	"github.com/foundry-appliance/foundry/store/kv"
)

func leasePrefix(segment string) string   { return "l/" + segment + "/" }
func leaseKey(segment, mac string) []byte { return []byte(leasePrefix(segment) + mac) }

func checkLease(l Lease) error {
	if err := checkSegment(l.Segment); err != nil {
		return err
	}
	if err := checkMAC(l.MAC); err != nil {
		return err
	}
	if !l.IP.IsValid() {
		return fmt.Errorf("%w: lease without an IP address", ErrInvalid)
	}
	return checkText("hostname", l.Hostname, maxHostname)
}

// PutLease stores (or replaces) the lease of l.MAC on l.Segment. It returns
// only after the write is synced to disk: an ACK may then be sent.
// Concurrent calls share one synced commit (leasebatch.go).
func (db *DB) PutLease(l Lease) error {
	if err := checkLease(l); err != nil {
		return fmt.Errorf("put lease %s/%s: %w", ref(l.Segment), ref(l.MAC), err)
	}
	if err := db.leases.put(l); err != nil {
		return fmt.Errorf("put lease %s/%s: %w", l.Segment, l.MAC, err)
	}
	return nil
}

// DeleteLease removes a lease; ErrNotFound when there is none.
func (db *DB) DeleteLease(segment, mac string) error {
	if err := checkSegment(segment); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", ref(segment), ref(mac), err)
	}
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", segment, ref(mac), err)
	}
	err := db.update(func(txn kv.Txn) error {
		key := leaseKey(segment, mac)
		if ok, err := has(txn, key); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		return txn.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", segment, mac, err)
	}
	return nil
}

// ListLeases returns the leases of one segment, or of all segments when
// segment is "", sorted by segment and MAC.
func (db *DB) ListLeases(segment string) ([]Lease, error) {
	prefix := "l/"
	if segment != "" {
		if err := checkSegment(segment); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		prefix = leasePrefix(segment)
	}
	out, err := list[Lease](db, prefix)
	if err != nil {
		return nil, fmt.Errorf("list leases %s: %w", ref(segment), err)
	}
	return out, nil
}
