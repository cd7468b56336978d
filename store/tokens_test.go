package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"testing"
)

func hashOf(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func TestAPITokens(t *testing.T) {
	db, clk, _ := openTest(t)
	for _, tok := range []APIToken{
		{ID: "b", Name: "ci", Role: RoleViewer, Hash: hashOf("secret-b")},
		{ID: "a", Name: "bootstrap", Role: RoleAdmin, Hash: hashOf("secret-a")},
	} {
		if err := db.CreateAPIToken(tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.FindAPIToken(hashOf("secret-a"))
	if err != nil || got.ID != "a" || got.Role != RoleAdmin || !bytes.Equal(got.Hash, hashOf("secret-a")) || !got.CreatedAt.Equal(clk.Now()) {
		t.Errorf("FindAPIToken = %+v, %v", got, err)
	}
	list, err := db.ListAPITokens()
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || list[1].Hash == nil {
		t.Errorf("ListAPITokens = %+v, %v", list, err)
	}
	if err := db.DeleteAPIToken("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindAPIToken(hashOf("secret-a")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted token still found: %v", err)
	}
	// The hash index went with the token: no th/ key is left for it.
	err = db.kv.View(func(txn kv.Txn) error {
		err := txn.Get(tokenHashKey(hashOf("secret-a")), nil)
		return err
	})
	if !errors.Is(err, kv.ErrNotFound) {
		t.Errorf("hash index left behind: %v", err)
	}
	if _, err := db.FindAPIToken(hashOf("secret-b")); err != nil {
		t.Errorf("other token lost: %v", err)
	}
}

func TestAPITokenErrors(t *testing.T) {
	db, _, _ := openTest(t)
	if err := db.CreateAPIToken(APIToken{ID: "a", Role: RoleAdmin, Hash: hashOf("s")}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		tok  APIToken
		want error
	}{
		{"duplicate id", APIToken{ID: "a", Role: RoleAdmin, Hash: hashOf("other")}, ErrExists},
		{"duplicate hash", APIToken{ID: "b", Role: RoleAdmin, Hash: hashOf("s")}, ErrExists},
		{"empty id", APIToken{Role: RoleAdmin, Hash: hashOf("x")}, ErrInvalid},
		{"bad role", APIToken{ID: "c", Role: "root", Hash: hashOf("x")}, ErrInvalid},
		{"short hash", APIToken{ID: "c", Role: RoleAdmin, Hash: []byte("x")}, ErrInvalid},
		{"control character in name", APIToken{ID: "c", Name: "a\x1b[2J", Role: RoleAdmin, Hash: hashOf("x")}, ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.CreateAPIToken(tt.tok); !errors.Is(err, tt.want) {
				t.Errorf("CreateAPIToken = %v, want %v", err, tt.want)
			}
		})
	}
	if list, _ := db.ListAPITokens(); len(list) != 1 {
		t.Errorf("refused tokens were stored: %+v", list)
	}
	for _, h := range [][]byte{nil, []byte("short"), hashOf("unknown")} {
		if _, err := db.FindAPIToken(h); !errors.Is(err, ErrNotFound) {
			t.Errorf("FindAPIToken(%x) = %v, want ErrNotFound", h, err)
		}
	}
	for id, want := range map[string]error{"zz": ErrNotFound, "": ErrInvalid, "../a": ErrInvalid} {
		if err := db.DeleteAPIToken(id); !errors.Is(err, want) {
			t.Errorf("DeleteAPIToken(%q) = %v, want %v", id, err, want)
		}
	}
}
