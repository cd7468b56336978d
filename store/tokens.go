package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/foundry-appliance/foundry/store/kv"
)

func tokenKey(id string) []byte       { return []byte("t/" + id) }
func tokenHashKey(hash []byte) []byte { return []byte("th/" + hex.EncodeToString(hash)) }

// storedToken is an APIToken as stored: APIToken hides its hash from JSON
// (the API must never show it), but the store keeps it.
type storedToken struct {
	APIToken
	Hash []byte `json:"hash"`
}

func (s storedToken) token() APIToken {
	t := s.APIToken
	t.Hash = s.Hash
	return t
}

// CreateAPIToken stores an admin token. t.Hash must be the SHA-256 of the
// secret (32 bytes); CreatedAt defaults to now. ErrExists when the id or
// the hash is already stored.
func (db *DB) CreateAPIToken(t APIToken) error {
	if err := checkToken(t); err != nil {
		return fmt.Errorf("create api token %s: %w", ref(t.ID), err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = db.now()
	}
	err := db.update(func(txn kv.Txn) error {
		for _, key := range [][]byte{tokenKey(t.ID), tokenHashKey(t.Hash)} {
			if ok, err := has(txn, key); err != nil {
				return err
			} else if ok {
				return ErrExists
			}
		}
		if err := setJSON(txn, tokenKey(t.ID), storedToken{APIToken: t, Hash: t.Hash}); err != nil {
			return err
		}
		return txn.Set(tokenHashKey(t.Hash), []byte(t.ID))
	})
	if err != nil {
		return fmt.Errorf("create api token %s: %w", t.ID, err)
	}
	return nil
}

func checkToken(t APIToken) error {
	if err := checkName("token id", t.ID); err != nil {
		return err
	}
	if len(t.Name) > maxLabel || !printable(t.Name) {
		return fmt.Errorf("%w: token name %s: want at most %d printable characters", ErrInvalid, label(t.Name), maxLabel)
	}
	if t.Role != RoleAdmin && t.Role != RoleViewer {
		return fmt.Errorf("%w: role %s: want %q or %q", ErrInvalid, label(string(t.Role)), RoleAdmin, RoleViewer)
	}
	if len(t.Hash) != sha256.Size {
		return fmt.Errorf("%w: token hash is %d bytes, want a %d-byte SHA-256", ErrInvalid, len(t.Hash), sha256.Size)
	}
	return nil
}

// FindAPIToken returns the token whose secret hashes to hash; ErrNotFound
// when there is none.
func (db *DB) FindAPIToken(hash []byte) (APIToken, error) {
	if len(hash) != sha256.Size {
		return APIToken{}, fmt.Errorf("find api token: %w", ErrNotFound)
	}
	var s storedToken
	err := db.kv.View(func(txn kv.Txn) error {
		id, err := getRaw(txn, tokenHashKey(hash))
		if err != nil {
			return err
		}
		return getJSON(txn, tokenKey(string(id)), &s)
	})
	if err != nil {
		return APIToken{}, fmt.Errorf("find api token: %w", err)
	}
	return s.token(), nil
}

// ListAPITokens returns every token sorted by id.
func (db *DB) ListAPITokens() ([]APIToken, error) {
	stored, err := list[storedToken](db, "t/")
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	out := make([]APIToken, len(stored))
	for i, s := range stored {
		out[i] = s.token()
	}
	return out, nil
}

// DeleteAPIToken removes a token and its hash index; ErrNotFound when unknown.
func (db *DB) DeleteAPIToken(id string) error {
	if err := checkName("token id", id); err != nil {
		return fmt.Errorf("delete api token: %w", err)
	}
	err := db.update(func(txn kv.Txn) error {
		var s storedToken
		if err := getJSON(txn, tokenKey(id), &s); err != nil {
			return err
		}
		if err := txn.Delete(tokenKey(id)); err != nil {
			return err
		}
		return txn.Delete(tokenHashKey(s.Hash))
	})
	if err != nil {
		return fmt.Errorf("delete api token %s: %w", id, err)
	}
	return nil
}
