package token

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var tokenRE = regexp.MustCompile(`^FOUNDRY-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`)

func TestNewFormatAndExpiry(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := New(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	if !tokenRE.MatchString(tok.Value) {
		t.Fatalf("token %q does not match %v", tok.Value, tokenRE)
	}
	if want := now.Add(time.Hour); !tok.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want %v", tok.ExpiresAt, want)
	}
	tests := []struct {
		name      string
		at        time.Time
		expired   bool
		remaining time.Duration
	}{
		{"fresh", now, false, time.Hour},
		{"one second before", now.Add(time.Hour - time.Second), false, time.Second},
		{"at expiry", now.Add(time.Hour), true, 0},
		{"long after", now.Add(5 * time.Hour), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.Expired(tt.at); got != tt.expired {
				t.Errorf("Expired = %v, want %v", got, tt.expired)
			}
			if got := tok.Remaining(tt.at); got != tt.remaining {
				t.Errorf("Remaining = %v, want %v", got, tt.remaining)
			}
		})
	}
}

func TestNewDeterministicBits(t *testing.T) {
	// All-zero randomness gives all 'A'; all-ones gives all '7' (60 low bits set).
	tok, err := New(bytes.NewReader(make([]byte, 8)), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value != "FOUNDRY-AAAA-AAAA-AAAA" {
		t.Errorf("zero bits gave %q", tok.Value)
	}
	tok, err = New(bytes.NewReader(bytes.Repeat([]byte{0xff}, 8)), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value != "FOUNDRY-7777-7777-7777" {
		t.Errorf("one bits gave %q", tok.Value)
	}
}

func TestNewRandFailure(t *testing.T) {
	boom := errors.New("boom")
	if _, err := New(iotest.ErrReader(boom), time.Now()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping %v", err, boom)
	}
}

func TestUniqueness(t *testing.T) {
	seen := make(map[string]bool)
	for range 10000 {
		tok, err := New(rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.Value] {
			t.Fatalf("duplicate token %s in 10000 draws", tok.Value)
		}
		seen[tok.Value] = true
	}
}

func TestNormalize(t *testing.T) {
	const canon = "FOUNDRY-AB2C-D3EF-GH45"
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{canon, canon, false},
		{"foundry-ab2c-d3ef-gh45", canon, false},
		{"  FOUNDRY AB2C D3EF GH45 ", canon, false},
		{"FOUNDRYAB2CD3EFGH45", canon, false},
		{"AB2C-D3EF-GH45", canon, false},
		{"ab2cd3efgh45", canon, false},
		{"ab2c d3ef-gh45", canon, false},
		{"", "", true},
		{"FOUNDRY-", "", true},
		{"FOUNDRY-AB2C-D3EF-GH4", "", true},     // too short
		{"FOUNDRY-AB2C-D3EF-GH456", "", true},   // too long
		{"FOUNDRY-AB0C-D3EF-GH45", "", true},    // 0 is not base32
		{"FOUNDRY-AB1C-D3EF-GH45", "", true},    // 1 is not base32
		{"FOUNDRY-AB2C-D3EF-GH4=", "", true},    // padding
		{"FOUNDRY-AB2C-D3EF-GH4É", "", true},    // non-ASCII
		{"XOUNDRY-AB2C-D3EF-GH45", "", true},    // wrong prefix
		{"FOUNDRY-FOUNDRY-AB2C-D3EF", "", true}, // prefix twice
		{"FOUNDRY\x00AB2C-D3EF-GH45", "", true}, // control byte
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrFormat) {
					t.Fatalf("Normalize(%q) = %q, %v; want ErrFormat", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestHashAndVerify(t *testing.T) {
	tok, err := New(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	salt, err := NewSalt(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := Hash(tok.Value, salt)
	if len(h) != HashLen {
		t.Fatalf("hash length %d, want %d", len(h), HashLen)
	}
	other := Hash(tok.Value, append([]byte{1}, salt[1:]...))
	if bytes.Equal(h, other) {
		t.Fatal("different salts gave the same hash")
	}
	lowerSpaced := strings.ReplaceAll(strings.ToLower(tok.Value), "-", " ")
	wrong := []byte(tok.Value)
	// Change the last character to another alphabet character.
	if wrong[len(wrong)-1] == 'A' {
		wrong[len(wrong)-1] = 'B'
	} else {
		wrong[len(wrong)-1] = 'A'
	}
	tests := []struct {
		name  string
		typed string
		salt  []byte
		hash  []byte
		want  bool
	}{
		{"exact", tok.Value, salt, h, true},
		{"as typed by a person", lowerSpaced, salt, h, true},
		{"wrong token", string(wrong), salt, h, false},
		{"wrong salt", tok.Value, salt[:8], h, false},
		{"garbage", "hello", salt, h, false},
		{"truncated hash", tok.Value, salt, h[:16], false},
		{"empty hash", tok.Value, salt, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.typed, tt.salt, tt.hash); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHashKnownVector(t *testing.T) {
	// Pins the parameters (PBKDF2-SHA256, 100000 iterations, 32 bytes) so that
	// the agent and the appliance cannot drift apart; computed independently
	// with Python's hashlib.pbkdf2_hmac.
	got := Hash("FOUNDRY-AAAA-BBBB-CCCC", []byte("0123456789abcdef"))
	const want = "b47b436b48cb2693eb4f1017e5b64f85fe9a359d312fbefc96b845022ab18a50"
	if h := hex.EncodeToString(got); h != want {
		t.Fatalf("hash = %s, want %s", h, want)
	}
}
