package store

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

func clusterKey(name string) []byte { return []byte("c/" + name) }

func checkCluster(c Cluster) error {
	if err := checkName("cluster", c.Name); err != nil {
		return err
	}
	if c.DefaultProfile != "" {
		if err := checkName("default profile", c.DefaultProfile); err != nil {
			return err
		}
	}
	return checkText("description", c.Description, maxText)
}

// machineRefs is the part of a stored machine that the in-use rules read.
type machineRefs struct {
	MAC     string `json:"mac"`
	Cluster string `json:"cluster"`
	Profile string `json:"profile"`
}

// inUse returns an ErrInUse error naming the first machine for which uses
// is true, or nil. Every machine key it reads joins txn's read set, so a
// concurrent write to any of them makes txn conflict and re-check.
func inUse(txn *badger.Txn, what string, uses func(machineRefs) bool) error {
	var user string
	err := scan(txn, "m/", func(m machineRefs) error {
		if uses(m) {
			user = m.MAC
			return errStop
		}
		return nil
	})
	if err != nil {
		return err
	}
	if user != "" {
		return fmt.Errorf("%w: %s is used by machine %s", ErrInUse, what, user)
	}
	return nil
}

// refProfile checks that a cluster's default profile exists and touches it.
func refProfile(txn *badger.Txn, old, name string) error {
	if name == "" || name == old {
		return nil
	}
	if err := touch(txn, profileKey(name)); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: default profile %s does not exist", ErrInvalid, name)
	} else if err != nil {
		return err
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

// CreateCluster stores a new cluster; ErrExists when the name is taken.
// CreatedAt and UpdatedAt are set to now; a DefaultProfile must exist.
func (db *DB) CreateCluster(c Cluster, a Audit) (Cluster, error) {
	fail := func(err error) (Cluster, error) {
		return Cluster{}, fmt.Errorf("create cluster %s: %w", ref(c.Name), err)
	}
	if err := checkCluster(c); err != nil {
		return fail(err)
	}
	if err := objectAudit(&a, "create-cluster", "cluster", c.Name); err != nil {
		return fail(err)
	}
	err := db.update(func(txn *badger.Txn) error {
		if ok, err := has(txn, clusterKey(c.Name)); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		if err := refProfile(txn, "", c.DefaultProfile); err != nil {
			return err
		}
		now := db.now()
		c.CreatedAt, c.UpdatedAt = now, now
		if err := setJSON(txn, clusterKey(c.Name), c); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, now)
	})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// GetCluster returns one cluster; ErrNotFound when unknown.
func (db *DB) GetCluster(name string) (Cluster, error) {
	if err := checkName("cluster", name); err != nil {
		return Cluster{}, fmt.Errorf("get cluster: %w", err)
	}
	var c Cluster
	err := db.bdb.View(func(txn *badger.Txn) error { return getJSON(txn, clusterKey(name), &c) })
	if err != nil {
		return Cluster{}, fmt.Errorf("get cluster %s: %w", name, err)
	}
	return c, nil
}

// ListClusters returns every cluster sorted by name.
func (db *DB) ListClusters() ([]Cluster, error) {
	out, err := list[Cluster](db, "c/")
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

// UpdateCluster lets fn change a cluster and stores it with the audit
// entry. The name and CreatedAt cannot change; UpdatedAt is set to now. If
// fn returns an error nothing is written. fn may run more than once.
func (db *DB) UpdateCluster(name string, a Audit, fn func(*Cluster) error) (Cluster, error) {
	fail := func(err error) (Cluster, error) {
		return Cluster{}, fmt.Errorf("update cluster %s: %w", ref(name), err)
	}
	if err := checkName("cluster", name); err != nil {
		return fail(err)
	}
	if fn == nil {
		return fail(fmt.Errorf("%w: nil update function", ErrInvalid))
	}
	if err := objectAudit(&a, "update-cluster", "cluster", name); err != nil {
		return fail(err)
	}
	var out Cluster
	err := db.update(func(txn *badger.Txn) error {
		var old Cluster
		if err := getJSON(txn, clusterKey(name), &old); err != nil {
			return err
		}
		next := old
		if err := fn(&next); err != nil {
			return err
		}
		if next.Name != old.Name {
			return fmt.Errorf("%w: a cluster cannot be renamed (to %s)", ErrInvalid, ref(next.Name))
		}
		if err := checkCluster(next); err != nil {
			return err
		}
		if err := refProfile(txn, old.DefaultProfile, next.DefaultProfile); err != nil {
			return err
		}
		now := db.now()
		next.CreatedAt, next.UpdatedAt = old.CreatedAt, now
		if err := setJSON(txn, clusterKey(name), next); err != nil {
			return err
		}
		out = next
		return db.writeAudit(txn, "", a, now)
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// DeleteCluster removes a cluster: ErrNotFound when unknown, ErrInUse
// while a machine belongs to it.
func (db *DB) DeleteCluster(name string, a Audit) error {
	if err := checkName("cluster", name); err != nil {
		return fmt.Errorf("delete cluster: %w", err)
	}
	if err := objectAudit(&a, "delete-cluster", "cluster", name); err != nil {
		return fmt.Errorf("delete cluster %s: %w", name, err)
	}
	err := db.update(func(txn *badger.Txn) error {
		if ok, err := has(txn, clusterKey(name)); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		what := "cluster " + name
		if err := inUse(txn, what, func(m machineRefs) bool { return m.Cluster == name }); err != nil {
			return err
		}
		if err := txn.Delete(clusterKey(name)); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, db.now())
	})
	if err != nil {
		return fmt.Errorf("delete cluster %s: %w", name, err)
	}
	return nil
}
