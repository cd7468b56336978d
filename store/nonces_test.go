package store

import (
	"encoding/base64"
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"strings"
	"sync"
	"testing"
	"time"
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
	err = db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, _ := kv.ValueCopy(it)
			if strings.Contains(string(it.Key())+string(v), n1) {
				t.Errorf("nonce stored in clear under %s", it.Key())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A MAC keeps its last MaxUnusedNonces unused nonces: a spoofer's DHCP
// exchange does not revoke the nonce of the machine still booting, and
// the oldest beyond the bound is revoked. Used nonces do not count.
func TestNonceUnusedBound(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	used, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	openWith(t, db, mac(1), used, testSession(1, clk), `{}`)
	other, err := db.IssueNonce(mac(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var issued []string
	for range MaxUnusedNonces + 1 {
		clk.Add(time.Millisecond)
		n, err := db.IssueNonce(mac(1), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, n)
	}
	if _, err := db.CheckNonce(issued[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("the oldest unused nonce beyond the bound: %v, want ErrNotFound", err)
	}
	for _, n := range append(issued[1:], used) {
		if got, err := db.CheckNonce(n); err != nil || got != mac(1) {
			t.Errorf("nonce revoked too early: %q, %v", got, err)
		}
	}
	if _, err := db.GetSession(testSession(1, clk).ID); err != nil {
		t.Errorf("issuing nonces ended a session: %v", err)
	}
	if got, err := db.CheckNonce(other); err != nil || got != mac(2) {
		t.Errorf("another MAC's nonce was revoked: %q, %v", got, err)
	}
	// Deleting the machine revokes them all.
	if err := db.DeleteMachine(mac(1), admin); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(issued[1:], used) {
		if _, err := db.CheckNonce(n); !errors.Is(err, ErrNotFound) {
			t.Errorf("nonce of a deleted machine: %v", err)
		}
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
	// Sweeping removed its index entry too: a new nonce is issued cleanly.
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

// Concurrent issues for one MAC conflict on its lock key, so the bound on
// unused nonces holds however many DHCP exchanges arrive at once.
func TestNonceUnusedBoundConcurrent(t *testing.T) {
	db, _, _ := openTest(t)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.IssueNonce(mac(1), time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	err := db.kv.View(func(txn kv.Txn) error {
		unused, err := unusedNonces(txn, mac(1))
		if len(unused) != MaxUnusedNonces {
			t.Errorf("%d unused nonces, want %d", len(unused), MaxUnusedNonces)
		}
		n := 0
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("n/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		if n != MaxUnusedNonces {
			t.Errorf("%d nonce records, want %d", n, MaxUnusedNonces)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
