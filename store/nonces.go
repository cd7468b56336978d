package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// maxNonceLen bounds what CheckNonce hashes; issued nonces are 43 bytes.
const maxNonceLen = 256

func nonceKey(hash string) []byte   { return []byte("n/" + hash) }
func nonceMACKey(mac string) []byte { return []byte("nm/" + mac) }

func hashNonce(nonce string) string {
	h := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(h[:])
}

// IssueNonce creates a boot nonce for mac valid for ttl and revokes the
// MAC's previous unused one; a nonce a session has used stays with that
// session, so issuing never ends a live session. The nonce is 32 random bytes in unpadded base64url
// (safe on a kernel command line); only its SHA-256 is stored.
func (db *DB) IssueNonce(mac string, ttl time.Duration) (string, error) {
	if err := checkMAC(mac); err != nil {
		return "", fmt.Errorf("issue nonce: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue nonce for %s: %w: ttl %v is not positive", mac, ErrInvalid, ttl)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("issue nonce for %s: %w", mac, err)
	}
	nonce := base64.RawURLEncoding.EncodeToString(raw[:])
	hash := hashNonce(nonce)
	err := db.update(func(txn *badger.Txn) error {
		// Reading nm/<mac> makes two concurrent issues conflict, so only
		// one nonce per MAC can survive.
		if err := revokeNonce(txn, mac); err != nil {
			return err
		}
		n := Nonce{MAC: mac, ExpiresAt: db.now().Add(ttl)}
		if err := setJSON(txn, nonceKey(hash), n); err != nil {
			return err
		}
		return txn.Set(nonceMACKey(mac), []byte(hash))
	})
	if err != nil {
		return "", fmt.Errorf("issue nonce for %s: %w", mac, err)
	}
	return nonce, nil
}

// revokeNonce deletes the MAC's current nonce, if any, in txn.
func revokeNonce(txn *badger.Txn, mac string) error {
	old, err := getRaw(txn, nonceMACKey(mac))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := txn.Delete(nonceKey(string(old))); err != nil {
		return err
	}
	return txn.Delete(nonceMACKey(mac))
}

// CheckNonce returns the MAC a nonce is bound to, used or not; ErrNotFound
// when the nonce is unknown, revoked or expired.
func (db *DB) CheckNonce(nonce string) (string, error) {
	if nonce == "" || len(nonce) > maxNonceLen {
		return "", fmt.Errorf("check nonce: %w", ErrNotFound)
	}
	var n Nonce
	err := db.bdb.View(func(txn *badger.Txn) error { return getJSON(txn, nonceKey(hashNonce(nonce)), &n) })
	if err != nil {
		return "", fmt.Errorf("check nonce: %w", err)
	}
	if !db.now().Before(n.ExpiresAt) {
		return "", fmt.Errorf("check nonce: expired: %w", ErrNotFound)
	}
	return n.MAC, nil
}

// sweepNonces deletes expired nonces and returns how many it deleted.
func (db *DB) sweepNonces() (int, error) {
	now := db.now()
	type due struct{ hash, mac string }
	var expired []due
	err := db.bdb.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte("n/")
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var n Nonce
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &n) }); err != nil {
				return err
			}
			if !now.Before(n.ExpiresAt) {
				expired = append(expired, due{string(it.Item().Key()[2:]), n.MAC})
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep nonces: %w", err)
	}
	// Small transactions: a boot storm can leave thousands behind.
	const batch = 500
	for start := 0; start < len(expired); start += batch {
		chunk := expired[start:min(start+batch, len(expired))]
		err := db.update(func(txn *badger.Txn) error {
			for _, d := range chunk {
				if err := txn.Delete(nonceKey(d.hash)); err != nil {
					return err
				}
				// Only drop the MAC's pointer if a newer nonce has not replaced it.
				cur, err := getRaw(txn, nonceMACKey(d.mac))
				if err == nil && string(cur) == d.hash {
					err = txn.Delete(nonceMACKey(d.mac))
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return start, fmt.Errorf("sweep nonces: %w", err)
		}
	}
	return len(expired), nil
}
