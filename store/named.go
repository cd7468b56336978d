package store

import (
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// namedKind describes one kind of record kept under an admin-chosen name
// (clusters, profiles). Their create, get, list, update and delete are the
// same transactions; a kind states only what differs: its validation, the
// records a write refers to and the rule that refuses a delete. Error
// contexts and audit actions are built from kind, so they stay
// "create cluster x: …" and "create-cluster" for every kind alike.
type namedKind[T any] struct {
	kind   string                                 // "cluster": errors, audit action and detail
	prefix string                                 // key prefix, "c/"
	name   func(T) string                         // the record's name (its key)
	times  func(*T) (created, updated *time.Time) // the record's timestamps
	check  func(T) error                          // validates a record before it is written
	// refs checks, and touches, what next refers to; old is the stored
	// record (the zero T on create). nil means the kind refers to nothing.
	refs func(txn kv.Txn, old, next T) error
	// inUse refuses to delete name while something refers to it.
	inUse func(txn kv.Txn, name string) error
}

func (k namedKind[T]) key(name string) []byte { return []byte(k.prefix + name) }

// create stores a new record; ErrExists when the name is taken.
func (k namedKind[T]) create(db *DB, v T, a Audit) (T, error) {
	name := k.name(v)
	fail := func(err error) (T, error) {
		var zero T
		return zero, fmt.Errorf("create %s %s: %w", k.kind, ref(name), err)
	}
	if err := k.check(v); err != nil {
		return fail(err)
	}
	if err := objectAudit(&a, "create-"+k.kind, k.kind, name); err != nil {
		return fail(err)
	}
	err := db.update(func(txn kv.Txn) error {
		if ok, err := has(txn, k.key(name)); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		if k.refs != nil {
			var none T
			if err := k.refs(txn, none, v); err != nil {
				return err
			}
		}
		now := db.now()
		created, updated := k.times(&v)
		*created, *updated = now, now
		if err := setJSON(txn, k.key(name), v); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, now, 0)
	})
	if err != nil {
		return fail(err)
	}
	return v, nil
}

// get returns one record; ErrNotFound when unknown.
func (k namedKind[T]) get(db *DB, name string) (T, error) {
	var v, zero T
	if err := checkName(k.kind, name); err != nil {
		return zero, fmt.Errorf("get %s: %w", k.kind, err)
	}
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, k.key(name), &v) })
	if err != nil {
		return zero, fmt.Errorf("get %s %s: %w", k.kind, name, err)
	}
	return v, nil
}

// list returns every record sorted by name.
func (k namedKind[T]) list(db *DB) ([]T, error) {
	out, err := list[T](db, k.prefix)
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", k.kind, err)
	}
	return out, nil
}

// update lets fn change a stored record. The name and the creation time
// cannot change; the update time is set to now. fn may run more than once.
func (k namedKind[T]) update(db *DB, name string, a Audit, fn func(*T) error) (T, error) {
	var out T
	fail := func(err error) (T, error) {
		var zero T
		return zero, fmt.Errorf("update %s %s: %w", k.kind, ref(name), err)
	}
	if err := checkName(k.kind, name); err != nil {
		return fail(err)
	}
	if fn == nil {
		return fail(fmt.Errorf("%w: nil update function", ErrInvalid))
	}
	if err := objectAudit(&a, "update-"+k.kind, k.kind, name); err != nil {
		return fail(err)
	}
	err := db.update(func(txn kv.Txn) error {
		var old T
		if err := getJSON(txn, k.key(name), &old); err != nil {
			return err
		}
		next := old
		if err := fn(&next); err != nil {
			return err
		}
		if k.name(next) != k.name(old) {
			return fmt.Errorf("%w: a %s cannot be renamed (to %s)", ErrInvalid, k.kind, ref(k.name(next)))
		}
		if err := k.check(next); err != nil {
			return err
		}
		if k.refs != nil {
			if err := k.refs(txn, old, next); err != nil {
				return err
			}
		}
		now := db.now()
		oldCreated, _ := k.times(&old)
		created, updated := k.times(&next)
		*created, *updated = *oldCreated, now
		if err := setJSON(txn, k.key(name), next); err != nil {
			return err
		}
		out = next
		return db.writeAudit(txn, "", a, now, 0)
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// delete removes a record: ErrNotFound when unknown, the kind's inUse
// error while something refers to it.
func (k namedKind[T]) delete(db *DB, name string, a Audit) error {
	if err := checkName(k.kind, name); err != nil {
		return fmt.Errorf("delete %s: %w", k.kind, err)
	}
	if err := objectAudit(&a, "delete-"+k.kind, k.kind, name); err != nil {
		return fmt.Errorf("delete %s %s: %w", k.kind, name, err)
	}
	err := db.update(func(txn kv.Txn) error {
		if ok, err := has(txn, k.key(name)); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		if err := k.inUse(txn, name); err != nil {
			return err
		}
		if err := txn.Delete(k.key(name)); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, db.now(), 0)
	})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", k.kind, name, err)
	}
	return nil
}

// objectAudit checks a and, when it has no detail, names the object.
func objectAudit(a *Audit, action, kind, name string) error {
	if err := checkAudit(a, action); err != nil {
		return err
	}
	if a.Detail == "" {
		a.Detail = kind + " " + name
	}
	return nil
}

// machineRefs is the part of a stored machine that the in-use rules read.
type machineRefs struct {
	MAC     string `json:"mac"`
	Cluster string `json:"cluster"`
	Profile string `json:"profile"`
}

// inUse returns an ErrInUse error naming the first machine for which uses
// is true, or nil.
func inUse(txn kv.Txn, what string, uses func(machineRefs) bool) error {
	user, err := firstUser(txn, "m/", func(m machineRefs) (string, bool) { return m.MAC, uses(m) })
	if err != nil {
		return err
	}
	if user != "" {
		return fmt.Errorf("%w: %s is used by machine %s", ErrInUse, what, user)
	}
	return nil
}

// firstUser returns the id of the first record under prefix that uses
// accepts, or "". Every key it reads joins txn's read set, so a concurrent
// write to any of them makes txn conflict and re-check its rule.
func firstUser[T any](txn kv.Txn, prefix string, uses func(T) (id string, ok bool)) (string, error) {
	var user string
	err := scan(txn, prefix, func(v T) error {
		if id, ok := uses(v); ok {
			user = id
			return errStop
		}
		return nil
	})
	return user, err
}
