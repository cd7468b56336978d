package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

func profileKey(name string) []byte { return []byte("p/" + name) }

func checkProfile(p Profile) error {
	if err := checkName("profile", p.Name); err != nil {
		return err
	}
	if p.Kind != ProfileNetboot && p.Kind != ProfileImage {
		return fmt.Errorf("%w: profile kind %s: want %q or %q", ErrInvalid, label(string(p.Kind)), ProfileNetboot, ProfileImage)
	}
	return checkText("description", p.Description, maxText)
}

// CreateProfile stores a new profile; ErrExists when the name is taken.
// CreatedAt and UpdatedAt are set to now. Fields beyond name and kind are
// the API's to validate.
func (db *DB) CreateProfile(p Profile, a Audit) (Profile, error) {
	fail := func(err error) (Profile, error) {
		return Profile{}, fmt.Errorf("create profile %s: %w", ref(p.Name), err)
	}
	if err := checkProfile(p); err != nil {
		return fail(err)
	}
	if err := objectAudit(&a, "create-profile", "profile", p.Name); err != nil {
		return fail(err)
	}
	err := db.update(func(txn *badger.Txn) error {
		if ok, err := has(txn, profileKey(p.Name)); err != nil {
			return err
		} else if ok {
			return ErrExists
		}
		now := db.now()
		p.CreatedAt, p.UpdatedAt = now, now
		if err := setJSON(txn, profileKey(p.Name), p); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, now)
	})
	if err != nil {
		return fail(err)
	}
	return p, nil
}

// GetProfile returns one profile; ErrNotFound when unknown.
func (db *DB) GetProfile(name string) (Profile, error) {
	if err := checkName("profile", name); err != nil {
		return Profile{}, fmt.Errorf("get profile: %w", err)
	}
	var p Profile
	err := db.bdb.View(func(txn *badger.Txn) error { return getJSON(txn, profileKey(name), &p) })
	if err != nil {
		return Profile{}, fmt.Errorf("get profile %s: %w", name, err)
	}
	return p, nil
}

// ListProfiles returns every profile sorted by name.
func (db *DB) ListProfiles() ([]Profile, error) {
	out, err := list[Profile](db, "p/")
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w", err)
	}
	return out, nil
}

// UpdateProfile lets fn change a profile and stores it with the audit
// entry. The name and CreatedAt cannot change; UpdatedAt is set to now. If
// fn returns an error nothing is written. fn may run more than once.
func (db *DB) UpdateProfile(name string, a Audit, fn func(*Profile) error) (Profile, error) {
	fail := func(err error) (Profile, error) {
		return Profile{}, fmt.Errorf("update profile %s: %w", ref(name), err)
	}
	if err := checkName("profile", name); err != nil {
		return fail(err)
	}
	if fn == nil {
		return fail(fmt.Errorf("%w: nil update function", ErrInvalid))
	}
	if err := objectAudit(&a, "update-profile", "profile", name); err != nil {
		return fail(err)
	}
	var out Profile
	err := db.update(func(txn *badger.Txn) error {
		var old Profile
		if err := getJSON(txn, profileKey(name), &old); err != nil {
			return err
		}
		next := old
		if err := fn(&next); err != nil {
			return err
		}
		if next.Name != old.Name {
			return fmt.Errorf("%w: a profile cannot be renamed (to %s)", ErrInvalid, ref(next.Name))
		}
		if err := checkProfile(next); err != nil {
			return err
		}
		now := db.now()
		next.CreatedAt, next.UpdatedAt = old.CreatedAt, now
		if err := setJSON(txn, profileKey(name), next); err != nil {
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

// DeleteProfile removes a profile: ErrNotFound when unknown, ErrInUse
// while a machine uses it or a cluster names it as its default.
func (db *DB) DeleteProfile(name string, a Audit) error {
	if err := checkName("profile", name); err != nil {
		return fmt.Errorf("delete profile: %w", err)
	}
	if err := objectAudit(&a, "delete-profile", "profile", name); err != nil {
		return fmt.Errorf("delete profile %s: %w", name, err)
	}
	err := db.update(func(txn *badger.Txn) error {
		if ok, err := has(txn, profileKey(name)); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		what := "profile " + name
		if err := inUse(txn, what, func(m machineRefs) bool { return m.Profile == name }); err != nil {
			return err
		}
		var user string
		err := scan(txn, "c/", func(c Cluster) error {
			if c.DefaultProfile == name {
				user = c.Name
				return errStop
			}
			return nil
		})
		if err != nil {
			return err
		}
		if user != "" {
			return fmt.Errorf("%w: %s is the default of cluster %s", ErrInUse, what, user)
		}
		if err := txn.Delete(profileKey(name)); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, db.now())
	})
	if err != nil {
		return fmt.Errorf("delete profile %s: %w", name, err)
	}
	return nil
}
