// Package seal keeps small secrets (a machine's BMC password) encrypted at
// rest: AES-256-GCM under a key that lives in its own file in the data
// directory, made on first start with mode 0600. The database then holds
// only ciphertext, so a copy of the database alone (a backup, a GitOps
// export, a support bundle) reveals no credential.
//
// Every sealed value is bound to a context string (the machine's MAC): a
// ciphertext moved to another machine's record does not open there.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the length of the key file: an AES-256 key.
const KeySize = 32

// version is the first byte of every sealed value, so that a later
// algorithm can be told apart from this one.
const version = 1

// ErrOpen is returned when a sealed value does not open: a wrong key, a
// wrong context, or a damaged value.
var ErrOpen = errors.New("sealed value does not open with this key")

// Box seals and opens values with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New makes a Box from a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("seal key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreate reads the key file at path, or, when there is none, makes
// one from crypto/rand with mode 0600 (never overwriting a file that
// appears meanwhile). A key file that others may read is refused: the
// key is the only thing between the database and the credentials.
func LoadOrCreate(path string) (*Box, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = create(path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat seal key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("seal key %s has mode %v: others may read it (want 0600)", path, fi.Mode().Perm())
	}
	b, err := New(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func create(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("draw seal key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create seal key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process made it first: use its key.
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create seal key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write seal key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sync seal key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close seal key: %w", err)
	}
	return key, nil
}

// Seal encrypts plain, bound to context: version byte, random nonce,
// ciphertext and tag.
func (b *Box) Seal(plain []byte, context string) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	out := append([]byte{version}, nonce...)
	return b.aead.Seal(out, nonce, plain, aad(context)), nil
}

// Open decrypts a value Seal made with the same key and context; ErrOpen
// otherwise.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad(context))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

func aad(context string) []byte { return []byte("foundry-seal-v1\x00" + context) }
