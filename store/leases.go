package store

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

func leasePrefix(segment string) string   { return "l/" + segment + "/" }
func leaseKey(segment, mac string) []byte { return []byte(leasePrefix(segment) + mac) }

// Address claims. Every lease claims its address: la/<segment>/<ip> holds
// the MAC of the lease on that address, written in the lease's own
// transaction. A lease write reads the claim, so two appliances leasing
// one address to two clients at once conflict in the engine (etcd compares
// the claim's revision, Badger its read set), and the one that runs again
// finds the address taken: no address is ever leased to two clients, even
// by two DHCP servers that share the store.
func claimPrefix(segment string) string { return "la/" + segment + "/" }
func claimKey(segment string, ip netip.Addr) []byte {
	return []byte(claimPrefix(segment) + ip.String())
}

// ErrAddressTaken is returned by PutLease for an address another client
// holds a live lease on (*AddressTakenError says whose). It wraps ErrTaken.
var ErrAddressTaken error = addressTaken{}

type addressTaken struct{}

func (addressTaken) Error() string { return "address leased to another client" }
func (addressTaken) Unwrap() error { return ErrTaken }

// AddressTakenError says which client holds an address PutLease was asked
// to lease to another, and until when.
type AddressTakenError struct {
	Segment string
	IP      netip.Addr
	// By is the MAC of the lease holding the address (a declined address's
	// record key for a declined one).
	By string
	// Until is when that lease (or decline) ends.
	Until    time.Time
	Declined bool
}

func (e *AddressTakenError) Error() string {
	return fmt.Sprintf("address %v on segment %s is leased to %s until %s", e.IP, e.Segment, e.By, e.Until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrAddressTaken) and errors.Is(err, ErrTaken) hold.
func (e *AddressTakenError) Unwrap() error { return ErrAddressTaken }

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

// PutLease stores (or replaces) the lease of l.MAC on l.Segment and claims
// its address; a lease that moves releases its old address. It returns
// only after the write is durable: an ACK may then be sent. An address
// another MAC holds a lease on that has not expired (at the store's clock)
// fails with an *AddressTakenError (ErrAddressTaken) and nothing is
// written; an expired holder's claim and lease record are taken over.
// Concurrent calls share one commit (leasebatch.go), each with its own
// result.
func (db *DB) PutLease(l Lease) error {
	done := make(chan error, 1)
	db.PutLeaseThen(l, func(err error) { done <- err })
	return <-done
}

// PutLeaseThen is PutLease without the wait: it returns at once, and then
// is called exactly once with what PutLease would have returned — on the
// lease writer's goroutine once the commit holding l is synced or failed,
// or before PutLeaseThen returns when l is invalid or the store closed. A
// DHCP server's reader gives its leases this way, so that no goroutine
// waits for each. then must not wait for the store (no other lease is
// committed until it returns).
func (db *DB) PutLeaseThen(l Lease, then func(error)) {
	if err := checkLease(l); err != nil {
		then(fmt.Errorf("put lease %s/%s: %w", ref(l.Segment), ref(l.MAC), err))
		return
	}
	db.leases.putThen(l, func(err error) {
		if err != nil {
			err = fmt.Errorf("put lease %s/%s: %w", l.Segment, l.MAC, err)
		}
		then(err)
	})
}

// putLease writes the encoded lease l in txn with its claim (PutLease's
// rule). It reads the claim, and the MAC's previous lease only when the
// claim is not already the MAC's: a renewal costs one read. Nothing is
// written when it fails.
func putLease(txn kv.Txn, l Lease, value []byte, now time.Time) error {
	ck := claimKey(l.Segment, l.IP)
	holder, err := getRaw(txn, ck)
	switch {
	case err == nil && string(holder) == l.MAC:
		// Renewal: the address is already this MAC's.
		return txn.Set(leaseKey(l.Segment, l.MAC), value)
	case err == nil:
		if err := takeOver(txn, l, string(holder), now); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	// A new claim: the MAC's lease on another address gives that one up.
	var old Lease
	switch err := getJSON(txn, leaseKey(l.Segment, l.MAC), &old); {
	case err == nil && old.IP != l.IP:
		if err := releaseClaim(txn, l.Segment, l.MAC, old.IP); err != nil {
			return err
		}
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		// An undecodable record is overwritten; its claim, if any, stays
		// until another lease takes the address over.
	default:
		return err
	}
	if err := txn.Set(ck, []byte(l.MAC)); err != nil {
		return err
	}
	return txn.Set(leaseKey(l.Segment, l.MAC), value)
}

// takeOver lets l have an address whose claim holder holds: an
// *AddressTakenError while holder's lease on it is live; otherwise the
// holder's record, if it is still on this address, is deleted (a lease
// record never shares its address with another).
func takeOver(txn kv.Txn, l Lease, holder string, now time.Time) error {
	var h Lease
	err := getJSON(txn, leaseKey(l.Segment, holder), &h)
	switch {
	case err == nil && h.IP == l.IP:
		if now.Before(h.Expires) {
			return &AddressTakenError{Segment: l.Segment, IP: l.IP, By: holder, Until: h.Expires, Declined: h.Declined}
		}
		return txn.Delete(leaseKey(l.Segment, holder))
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		// A claim without its lease (the holder moved on, or its record
		// is unreadable): nothing holds the address.
		return nil
	}
	return err
}

// releaseClaim deletes the claim of ip if mac holds it.
func releaseClaim(txn kv.Txn, segment, mac string, ip netip.Addr) error {
	key := claimKey(segment, ip)
	cur, err := getRaw(txn, key)
	if errors.Is(err, ErrNotFound) || (err == nil && string(cur) != mac) {
		return nil
	}
	if err != nil {
		return err
	}
	return txn.Delete(key)
}

// GetLease returns the lease of mac on segment; ErrNotFound when there is
// none. The DHCP server of a pair adopts a client its peer leased to.
func (db *DB) GetLease(segment, mac string) (Lease, error) {
	if err := checkSegment(segment); err != nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", ref(segment), ref(mac), err)
	}
	if err := checkMAC(mac); err != nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", segment, ref(mac), err)
	}
	var l Lease
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, leaseKey(segment, mac), &l) })
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s/%s: %w", segment, mac, err)
	}
	return l, nil
}

// DeleteLease removes a lease and its address claim; ErrNotFound when
// there is none.
func (db *DB) DeleteLease(segment, mac string) error {
	if err := checkSegment(segment); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", ref(segment), ref(mac), err)
	}
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("delete lease %s/%s: %w", segment, ref(mac), err)
	}
	err := db.update(func(txn kv.Txn) error {
		key := leaseKey(segment, mac)
		var l Lease
		switch err := getJSON(txn, key, &l); {
		case err == nil:
			if err := releaseClaim(txn, segment, mac, l.IP); err != nil {
				return err
			}
		case errors.Is(err, ErrCorrupt):
			// Deleted all the same; a claim left behind is taken over.
		default:
			return err
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
