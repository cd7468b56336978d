// Package token implements the registration token that the discovery agent
// shows on a machine's console and the appliance checks at approval.
//
// The token is FOUNDRY-XXXX-XXXX-XXXX: twelve characters of the RFC 4648
// base32 alphabet (60 bits from a cryptographic RNG). The appliance only ever
// receives a salted PBKDF2-SHA256 hash of it, so whoever approves a machine
// must have read the token off that machine's console.
//
// The iteration count travels with the hash (Iterations, LegacyIterations)
// and is what an observed hash costs to invert. It is not a password's count:
// the token is 60 random bits, not a word a person chose, and it is worth
// something only for its hour (after it, or after its machine is approved,
// it approves nothing). At Iterations a search of half the token space is
// 2^59 × 10,000 × 2 SHA-256 blocks, 1.2e22: at 2.2e10 blocks a second (a
// 2024 GPU) about 150 million GPUs busy for the hour. The count is kept
// low enough that the appliance's check of a typed token, run at every
// approval and once per registration the machine has, stays a few
// milliseconds (docs/security.md).
package token

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

const (
	// Prefix starts every token.
	Prefix = "FOUNDRY-"
	// Lifetime is how long a token is valid after it is generated.
	Lifetime = time.Hour
	// Iterations is the PBKDF2 iteration count of Hash: the count an agent
	// sends with its hash.
	Iterations = 10000
	// LegacyIterations is the count of a hash that came without one: agents
	// and stored registrations from before the count was sent.
	LegacyIterations = 100000
	// MinIterations and MaxIterations bound the count the appliance accepts
	// from an agent: below, a hash is too cheap to invert; above, every
	// approval of that machine would pay for the agent's choice.
	MinIterations = Iterations
	MaxIterations = LegacyIterations
	// HashLen is the length in bytes of Hash's output.
	HashLen = 32
	// SaltLen is the salt length the agent uses (NewSalt).
	SaltLen = 16

	// alphabet is RFC 4648 base32 without padding.
	alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	groups   = 3
	groupLen = 4
	chars    = groups * groupLen // 12 characters × 5 bits = 60 bits
)

// ErrFormat is wrapped by every Normalize error.
var ErrFormat = errors.New("not a registration token")

// Token is one registration token and the moment it stops being valid.
type Token struct {
	Value     string    // canonical form, FOUNDRY-XXXX-XXXX-XXXX
	ExpiresAt time.Time // Value is refused after this instant
}

// Expired reports whether the token is no longer valid at now.
func (t Token) Expired(now time.Time) bool { return !now.Before(t.ExpiresAt) }

// Remaining is the validity left at now (never negative).
func (t Token) Remaining(now time.Time) time.Duration {
	if d := t.ExpiresAt.Sub(now); d > 0 {
		return d
	}
	return 0
}

// New draws a token from rand (crypto/rand.Reader in production) that
// expires Lifetime after now.
func New(rand io.Reader, now time.Time) (Token, error) {
	var b [8]byte // 60 bits used of 64
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return Token{}, fmt.Errorf("read random bytes: %w", err)
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	raw := make([]byte, chars)
	for i := range raw {
		raw[i] = alphabet[v&31]
		v >>= 5
	}
	return Token{Value: format(string(raw)), ExpiresAt: now.Add(Lifetime)}, nil
}

// NewSalt reads a SaltLen-byte salt from rand.
func NewSalt(rand io.Reader) ([]byte, error) {
	salt := make([]byte, SaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("read salt: %w", err)
	}
	return salt, nil
}

// format inserts the prefix and dashes into 12 canonical characters.
func format(raw string) string {
	var sb strings.Builder
	sb.WriteString(Prefix)
	for g := range groups {
		if g > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(raw[g*groupLen : (g+1)*groupLen])
	}
	return sb.String()
}

// Normalize turns what a person typed into the canonical token form. It
// accepts lower case, spaces or dashes anywhere, and a missing "FOUNDRY"
// prefix; it rejects anything that is not exactly twelve base32 characters.
// Digits 0, 1, 8 and 9 are not in the alphabet and are rejected rather than
// guessed at (O/I/B/g), so that a typo never approves by accident.
func Normalize(s string) (string, error) {
	up := strings.ToUpper(strings.TrimSpace(s))
	compact := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, up)
	// The prefix is only dropped from a token typed with it: the twelve
	// characters may themselves start with FOUNDRY (all base32 letters).
	if p := strings.TrimSuffix(Prefix, "-"); len(compact) == len(p)+chars {
		compact = strings.TrimPrefix(compact, p)
	}
	if len(compact) != chars {
		return "", fmt.Errorf("%w: want %d characters after %q, got %d", ErrFormat, chars, Prefix, len(compact))
	}
	for i := 0; i < len(compact); i++ {
		if strings.IndexByte(alphabet, compact[i]) < 0 {
			return "", fmt.Errorf("%w: character %q is not in A–Z, 2–7", ErrFormat, compact[i])
		}
	}
	return format(compact), nil
}

// ErrIterations is wrapped by every CheckIterations error.
var ErrIterations = errors.New("PBKDF2 iteration count out of range")

// Hash is Derive(token, salt, Iterations): what an agent sends.
func Hash(token string, salt []byte) []byte { return Derive(token, salt, Iterations) }

// Derive is PBKDF2-SHA256(token, salt, iterations, HashLen); an iterations
// of 0 means LegacyIterations (a hash that came without a count). token
// must be in canonical form (see Normalize); both sides hash the canonical
// form. It returns nil for a count outside CheckIterations's range, and when
// PBKDF2 refuses its input (only in FIPS-only mode, for a salt shorter than
// 16 bytes), which callers treat as no match.
func Derive(token string, salt []byte, iterations int) []byte {
	if CheckIterations(iterations) != nil {
		return nil
	}
	if iterations == 0 {
		iterations = LegacyIterations
	}
	h, err := pbkdf2.Key(sha256.New, token, salt, iterations, HashLen)
	if err != nil {
		return nil
	}
	return h
}

// CheckIterations reports whether the appliance accepts a hash made with
// iterations: 0 (LegacyIterations) or MinIterations to MaxIterations.
func CheckIterations(iterations int) error {
	if iterations != 0 && (iterations < MinIterations || iterations > MaxIterations) {
		return fmt.Errorf("%w: %d, want %d to %d", ErrIterations, iterations, MinIterations, MaxIterations)
	}
	return nil
}

// Verify normalises typed, derives it with salt and iterations and compares
// the result with hash in constant time. Input that is not a token never
// matches.
func Verify(typed string, salt, hash []byte, iterations int) bool {
	canon, err := Normalize(typed)
	if err != nil {
		return false
	}
	h := Derive(canon, salt, iterations)
	return h != nil && subtle.ConstantTimeCompare(h, hash) == 1
}
