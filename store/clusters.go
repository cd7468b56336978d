package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

const clusterPrefix = "c/"

func clusterKey(name string) []byte { return []byte(clusterPrefix + name) }

// clusterKind is what clusters add to the shared named-record code: a
// default profile that must exist, and no delete while a machine belongs
// to the cluster. It is never changed.
var clusterKind = namedKind[Cluster]{
	kind:   "cluster",
	prefix: clusterPrefix,
	name:   func(c Cluster) string { return c.Name },
	times:  func(c *Cluster) (*time.Time, *time.Time) { return &c.CreatedAt, &c.UpdatedAt },
	check:  checkCluster,
	refs: func(txn kv.Txn, old, next Cluster) error {
		return refProfile(txn, old.DefaultProfile, next.DefaultProfile)
	},
	inUse: func(txn kv.Txn, name string) error {
		return inUse(txn, "cluster "+name, func(m machineRefs) bool { return m.Cluster == name })
	},
}

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

// refProfile checks that a cluster's default profile exists and touches it.
func refProfile(txn kv.Txn, old, name string) error {
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

// CreateCluster stores a new cluster; ErrExists when the name is taken.
// CreatedAt and UpdatedAt are set to now; a DefaultProfile must exist.
func (db *DB) CreateCluster(c Cluster, a Audit) (Cluster, error) {
	return clusterKind.create(db, c, a)
}

// GetCluster returns one cluster; ErrNotFound when unknown.
func (db *DB) GetCluster(name string) (Cluster, error) { return clusterKind.get(db, name) }

// ListClusters returns every cluster sorted by name.
func (db *DB) ListClusters() ([]Cluster, error) { return clusterKind.list(db) }

// UpdateCluster lets fn change a cluster and stores it with the audit
// entry. The name and CreatedAt cannot change; UpdatedAt is set to now. If
// fn returns an error nothing is written. fn may run more than once.
func (db *DB) UpdateCluster(name string, a Audit, fn func(*Cluster) error) (Cluster, error) {
	return clusterKind.update(db, name, a, fn)
}

// DeleteCluster removes a cluster: ErrNotFound when unknown, ErrInUse
// while a machine belongs to it.
func (db *DB) DeleteCluster(name string, a Audit) error { return clusterKind.delete(db, name, a) }
