package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// maxNonceLen bounds what CheckNonce hashes; issued nonces are 43 bytes.
const maxNonceLen = 256

// MaxUnusedNonces is how many unused boot nonces one MAC may hold. Each
// DHCP exchange that boots the machine into discovery issues one, and a
// host that spoofs the MAC can make such exchanges too: keeping a few means
// that a spoofer's exchange does not revoke the nonce of the genuine
// machine still booting its discovery OS, while the oldest beyond the
// bound is revoked so that the database cannot grow.
const MaxUnusedNonces = 4

func nonceKey(hash string) []byte            { return []byte("n/" + hash) }
func nonceLockKey(mac string) []byte         { return []byte("nl/" + mac) }
func unusedNonceKey(mac, hash string) []byte { return []byte("nu/" + mac + "/" + hash) }
func unusedNoncePrefix(mac string) []byte    { return []byte("nu/" + mac + "/") }

func hashNonce(nonce string) string {
	h := sha256.Sum256([]byte(nonce))
	return hex.EncodeToString(h[:])
}

// IssueNonce creates a boot nonce for mac valid for ttl. The MAC keeps at
// most MaxUnusedNonces unused ones (the oldest is revoked); a nonce a
// session has used stays with that session, so issuing never ends a live
// session. The nonce is 32 random bytes in unpadded base64url (safe on a
// kernel command line); only its SHA-256 is stored.
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
	err := db.update(func(txn kv.Txn) error {
		// Reading and writing the MAC's lock key makes concurrent issues
		// for one MAC conflict (Badger retries one), so the bound holds.
		if err := touchLock(txn, nonceLockKey(mac)); err != nil {
			return err
		}
		unused, err := unusedNonces(txn, mac)
		if err != nil {
			return err
		}
		for len(unused) >= MaxUnusedNonces {
			if err := dropUnused(txn, mac, unused[0].hash); err != nil {
				return err
			}
			unused = unused[1:]
		}
		now := db.now()
		if err := setJSON(txn, nonceKey(hash), Nonce{MAC: mac, ExpiresAt: now.Add(ttl)}); err != nil {
			return err
		}
		return txn.Set(unusedNonceKey(mac, hash), []byte(strconv.FormatInt(now.UnixNano(), 10)))
	})
	if err != nil {
		return "", fmt.Errorf("issue nonce for %s: %w", mac, err)
	}
	return nonce, nil
}

// touchLock reads and rewrites key, so that two transactions touching it
// conflict.
func touchLock(txn kv.Txn, key []byte) error {
	if _, err := getRaw(txn, key); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return txn.Set(key, nil)
}

type unusedNonce struct {
	hash   string
	issued int64
}

// unusedNonces lists the MAC's unused nonces, oldest first.
func unusedNonces(txn kv.Txn, mac string) ([]unusedNonce, error) {
	opt := kv.IterOptions{}
	opt.Prefix = unusedNoncePrefix(mac)
	it := txn.NewIterator(opt)
	defer it.Close()
	var out []unusedNonce
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := kv.ValueCopy(it)
		if err != nil {
			return nil, err
		}
		issued, _ := strconv.ParseInt(string(v), 10, 64)
		out = append(out, unusedNonce{hash: string(bytes.TrimPrefix(it.Key(), opt.Prefix)), issued: issued})
	}
	slices.SortFunc(out, func(a, b unusedNonce) int { return cmp.Compare(a.issued, b.issued) })
	return out, nil
}

// dropUnused revokes one unused nonce of the MAC.
func dropUnused(txn kv.Txn, mac, hash string) error {
	if err := txn.Delete(nonceKey(hash)); err != nil {
		return err
	}
	return txn.Delete(unusedNonceKey(mac, hash))
}

// revokeNonces revokes every unused nonce of the MAC, in txn.
func revokeNonces(txn kv.Txn, mac string) error {
	unused, err := unusedNonces(txn, mac)
	if err != nil {
		return err
	}
	for _, u := range unused {
		if err := dropUnused(txn, mac, u.hash); err != nil {
			return err
		}
	}
	return nil
}

// CheckNonce returns the MAC a nonce is bound to, used or not; ErrNotFound
// when the nonce is unknown, revoked or expired.
func (db *DB) CheckNonce(nonce string) (string, error) {
	if nonce == "" || len(nonce) > maxNonceLen {
		return "", fmt.Errorf("check nonce: %w", ErrNotFound)
	}
	var n Nonce
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, nonceKey(hashNonce(nonce)), &n) })
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
	err := db.kv.View(func(txn kv.Txn) error {
		opt := kv.IterOptions{}
		opt.Prefix = []byte("n/")
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var n Nonce
			if err := it.Value(func(b []byte) error { return json.Unmarshal(b, &n) }); err != nil {
				return err
			}
			if !now.Before(n.ExpiresAt) {
				expired = append(expired, due{string(it.Key()[2:]), n.MAC})
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep nonces: %w", err)
	}
	// Small transactions: a boot storm can leave thousands behind.
	batch := db.txnItems(2, 500)
	for start := 0; start < len(expired); start += batch {
		chunk := expired[start:min(start+batch, len(expired))]
		err := db.update(func(txn kv.Txn) error {
			for _, d := range chunk {
				if err := txn.Delete(nonceKey(d.hash)); err != nil {
					return err
				}
				if err := txn.Delete(unusedNonceKey(d.mac, d.hash)); err != nil {
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
