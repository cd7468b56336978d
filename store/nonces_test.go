package store

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestNonceIssueAndCheck(t *testing.T) {
	db, _, _ := openTest(t)
	n1, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(n1)
	if err != nil || len(raw) != 32 || strings.ContainsAny(n1, "=+/ ") {
		t.Errorf("nonce %q is not 32 bytes of unpadded base64url (%v)", n1, err)
	}
	n2, err := db.IssueNonce(mac(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n1 == n2 {
		t.Fatal("two nonces are equal")
	}
	for _, tt := range []struct{ nonce, mac string }{{n1, mac(1)}, {n2, mac(2)}} {
		if got, err := db.CheckNonce(tt.nonce); err != nil || got != tt.mac {
			t.Errorf("CheckNonce = %q, %v; want %s", got, err, tt.mac)
		}
	}
	// Only the hash is stored: the nonce itself appears in no key or value.
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := it.Item().ValueCopy(nil)
			if strings.Contains(string(it.Item().Key())+string(v), n1) {
				t.Errorf("nonce stored in clear under %s", it.Item().Key())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNonceRevokedByNewer(t *testing.T) {
	db, _, _ := openTest(t)
	old, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := db.IssueNonce(mac(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckNonce(old); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked nonce: %v, want ErrNotFound", err)
	}
	if got, err := db.CheckNonce(cur); err != nil || got != mac(1) {
		t.Errorf("current nonce: %q, %v", got, err)
	}
	if got, err := db.CheckNonce(other); err != nil || got != mac(2) {
		t.Errorf("another MAC's nonce was revoked: %q, %v", got, err)
	}
}

func TestNonceExpiry(t *testing.T) {
	db, clk, _ := openTest(t)
	n, err := db.IssueNonce(mac(1), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute - time.Nanosecond)
	if _, err := db.CheckNonce(n); err != nil {
		t.Fatalf("nonce refused before expiry: %v", err)
	}
	clk.Add(time.Nanosecond)
	if _, err := db.CheckNonce(n); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nonce at expiry: %v, want ErrNotFound", err)
	}
	if swept, err := db.sweepNonces(); err != nil || swept != 1 {
		t.Errorf("sweepNonces = %d, %v; want 1", swept, err)
	}
	// Sweeping removed the MAC's pointer too: a new nonce is issued cleanly.
	if _, err := db.IssueNonce(mac(1), time.Minute); err != nil {
		t.Fatal(err)
	}
	if swept, err := db.sweepNonces(); err != nil || swept != 0 {
		t.Errorf("sweep of a fresh nonce = %d, %v; want 0", swept, err)
	}
}

func TestNonceErrors(t *testing.T) {
	db, _, _ := openTest(t)
	for _, tt := range []struct {
		mac string
		ttl time.Duration
	}{{"", time.Hour}, {"52:54:00:12:34:5g", time.Hour}, {mac(1), 0}, {mac(1), -time.Second}} {
		if _, err := db.IssueNonce(tt.mac, tt.ttl); !errors.Is(err, ErrInvalid) {
			t.Errorf("IssueNonce(%q, %v) = %v, want ErrInvalid", tt.mac, tt.ttl, err)
		}
	}
	for _, n := range []string{"", "unknown", strings.Repeat("x", 10000), "\x00"} {
		if _, err := db.CheckNonce(n); !errors.Is(err, ErrNotFound) {
			t.Errorf("CheckNonce(%.20q) = %v, want ErrNotFound", n, err)
		}
	}
}
