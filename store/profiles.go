package store

import (
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

const profilePrefix = "p/"

func profileKey(name string) []byte { return []byte(profilePrefix + name) }

// profileKind is what profiles add to the shared named-record code: a
// kind, a library image that must exist and be ready, and no delete while
// a machine uses the profile or a cluster names it as its default. It is
// never changed.
var profileKind = namedKind[Profile]{
	kind:   "profile",
	prefix: profilePrefix,
	name:   func(p Profile) string { return p.Name },
	times:  func(p *Profile) (*time.Time, *time.Time) { return &p.CreatedAt, &p.UpdatedAt },
	check:  checkProfile,
	refs: func(txn kv.Txn, old, next Profile) error {
		return refImage(txn, old.Image, next.Image)
	},
	inUse: profileInUse,
}

func checkProfile(p Profile) error {
	if err := checkName("profile", p.Name); err != nil {
		return err
	}
	if p.Kind != ProfileNetboot && p.Kind != ProfileImage {
		return fmt.Errorf("%w: profile kind %s: want %q or %q", ErrInvalid, label(string(p.Kind)), ProfileNetboot, ProfileImage)
	}
	if p.Image != "" {
		if p.Kind != ProfileImage {
			return fmt.Errorf("%w: a %s profile cannot name an image", ErrInvalid, p.Kind)
		}
		if err := checkName("image", p.Image); err != nil {
			return err
		}
	}
	return checkText("description", p.Description, maxText)
}

// profileInUse refuses deleting a profile that a machine uses or that a
// cluster names as its default.
func profileInUse(txn kv.Txn, name string) error {
	what := "profile " + name
	if err := inUse(txn, what, func(m machineRefs) bool { return m.Profile == name }); err != nil {
		return err
	}
	user, err := firstUser(txn, clusterPrefix, func(c Cluster) (string, bool) { return c.Name, c.DefaultProfile == name })
	if err != nil {
		return err
	}
	if user != "" {
		return fmt.Errorf("%w: %s is the default of cluster %s", ErrInUse, what, user)
	}
	return nil
}

// CreateProfile stores a new profile; ErrExists when the name is taken.
// CreatedAt and UpdatedAt are set to now. Fields beyond name and kind are
// the API's to validate.
func (db *DB) CreateProfile(p Profile, a Audit) (Profile, error) {
	return profileKind.create(db, p, a)
}

// GetProfile returns one profile; ErrNotFound when unknown.
func (db *DB) GetProfile(name string) (Profile, error) { return profileKind.get(db, name) }

// ListProfiles returns every profile sorted by name.
func (db *DB) ListProfiles() ([]Profile, error) { return profileKind.list(db) }

// UpdateProfile lets fn change a profile and stores it with the audit
// entry. The name and CreatedAt cannot change; UpdatedAt is set to now. If
// fn returns an error nothing is written. fn may run more than once.
func (db *DB) UpdateProfile(name string, a Audit, fn func(*Profile) error) (Profile, error) {
	return profileKind.update(db, name, a, fn)
}

// DeleteProfile removes a profile: ErrNotFound when unknown, ErrInUse
// while a machine uses it or a cluster names it as its default.
func (db *DB) DeleteProfile(name string, a Audit) error { return profileKind.delete(db, name, a) }
