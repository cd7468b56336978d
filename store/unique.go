package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Host names and static addresses are unique among machines. The rule is
// kept by index keys written in the same transaction as the machine, so
// that two concurrent approvals naming one host name cannot both pass:
// both read the index key, and Badger's conflict detection makes the
// second re-run and find the first's claim. (A check against a list read
// before the write, as the API once did, lets both through.)

// TakenError says which machine holds a unique value.
type TakenError struct {
	// Field is "hostname" or "address".
	Field string
	Value string
	// By is the MAC of the machine that has it.
	By string
}

func (e *TakenError) Error() string {
	return fmt.Sprintf("%s %s is used by machine %s", e.Field, e.Value, e.By)
}

// Unwrap makes errors.Is(err, ErrTaken) hold.
func (e *TakenError) Unwrap() error { return ErrTaken }

func hostKey(h string) []byte { return []byte("uh/" + strings.ToLower(h)) }

// staticAddr is the machine's approved static address, "" when it has none.
func staticAddr(m Machine) string {
	if m.Approval == nil || !m.Approval.Network.Address.IsValid() {
		return ""
	}
	return m.Approval.Network.Address.Addr().String()
}

func addrKey(a string) []byte { return []byte("ua/" + a) }

// claimUnique moves old's claims to next's in txn: a machine being created
// has a zero old, one being deleted a zero next. ErrTaken (a *TakenError)
// when next wants what another machine holds.
func claimUnique(txn kv.Txn, old, next Machine) error {
	mac := next.MAC
	if mac == "" {
		mac = old.MAC
	}
	for _, c := range []struct {
		field     string
		was, want string
		key       func(string) []byte
	}{
		{"hostname", strings.ToLower(old.Hostname), strings.ToLower(next.Hostname), hostKey},
		{"address", staticAddr(old), staticAddr(next), addrKey},
	} {
		if c.want != "" {
			holder, err := indexHolder(txn, c.key(c.want))
			if err != nil {
				return err
			}
			if holder != "" && holder != mac {
				return &TakenError{Field: c.field, Value: c.want, By: holder}
			}
			if holder == "" {
				if err := txn.Set(c.key(c.want), []byte(mac)); err != nil {
					return err
				}
			}
		}
		if c.was != "" && c.was != c.want {
			// Release only what this machine holds.
			if holder, err := indexHolder(txn, c.key(c.was)); err != nil {
				return err
			} else if holder == mac {
				if err := txn.Delete(c.key(c.was)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// indexHolder returns the MAC stored at key, "" when none.
func indexHolder(txn kv.Txn, key []byte) (string, error) {
	var mac string
	err := txn.Get(key, func(v []byte) error {
		mac = string(v)
		return nil
	})
	if errors.Is(err, kv.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return mac, nil
}

// buildUnique indexes every stored machine (the schema 1 → 2 migration).
// Where old records already share a value, the first by MAC keeps it and
// the others stay unindexed until they change: refusing to start would
// strand the whole appliance over a duplicate nobody can fix without it.
func buildUnique(txn kv.Txn) error {
	return scan(txn, "m/", func(m Machine) error {
		err := claimUnique(txn, Machine{}, m)
		if errors.Is(err, ErrTaken) {
			return nil
		}
		return err
	})
}
