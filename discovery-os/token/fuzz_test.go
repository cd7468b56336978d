package token

import (
	"strings"
	"testing"
	"time"
	"unicode"
)

// FuzzNormalize: whatever a person types, Normalize either refuses it or
// returns the canonical form, which it maps to itself, having changed
// nothing but case, separators and the prefix.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"FOUNDRY-AB2C-D3EF-GH45", "foundry ab2c d3ef gh45", "ab2cd3efgh45", "FOUNDRY\tAB2C-D3EF-GH45",
		"FOUNDRY-AB0C-D3EF-GH45", "FOUNDRY-FOUN-DRYA-BCDE", "ſoundry-ab2c-d3ef-gh45", "FOUNDRY-AB2C-D3EF-GH4\u0131"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Normalize(s)
		if err != nil {
			return
		}
		if !tokenRE.MatchString(out) {
			t.Fatalf("Normalize(%q) = %q: not canonical", s, out)
		}
		if again, err := Normalize(out); again != out || err != nil {
			t.Fatalf("Normalize(%q) = %q, %v; want it unchanged", out, again, err)
		}
		// Nothing but separators and case is dropped or changed.
		sig := strings.Map(func(r rune) rune {
			if r == '-' || r == ' ' || r == '\t' {
				return -1
			}
			return unicode.ToUpper(r)
		}, strings.TrimSpace(s))
		if want := strings.ReplaceAll(out, "-", ""); sig != want && sig != want[len("FOUNDRY"):] {
			t.Fatalf("Normalize(%q) = %q: more than case and separators changed", s, out)
		}
	})
}

// FuzzRetype: every token the agent can draw, retyped the ways a person
// does (lower case, spaces for dashes, without the prefix), normalises back
// to itself.
func FuzzRetype(f *testing.F) {
	f.Add(uint64(0), uint8(0))
	f.Add(uint64(0x0123456789abcdef), uint8(7))
	// testdata/fuzz/FuzzRetype/prefix-in-token: a token whose characters
	// start with FOUNDRY, typed without the prefix (Normalize used to trim
	// FOUNDRY from the characters themselves); TestDrawn checks its value.
	f.Fuzz(func(t *testing.T, v uint64, style uint8) {
		var b [8]byte
		for i := range b {
			b[i] = byte(v >> (56 - 8*i))
		}
		tok, err := New(strings.NewReader(string(b[:])), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		typed := tok.Value
		if style&1 != 0 {
			typed = strings.ToLower(typed)
		}
		if style&2 != 0 {
			typed = strings.ReplaceAll(typed, "-", " ")
		}
		if style&4 != 0 {
			typed = typed[len(Prefix):]
		}
		if style&8 != 0 {
			typed = "  " + strings.ReplaceAll(typed, "-", "") + "\t"
		}
		if got, err := Normalize(typed); got != tok.Value || err != nil {
			t.Fatalf("Normalize(%q) = %q, %v; want %q", typed, got, err, tok.Value)
		}
	})
}

// drawn is the random value New turns into the twelve characters raw.
func drawn(raw string) uint64 {
	var v uint64
	for i := len(raw) - 1; i >= 0; i-- {
		v = v<<5 | uint64(strings.IndexByte(alphabet, raw[i]))
	}
	return v
}

func TestDrawn(t *testing.T) {
	v := drawn("FOUNDRYABCDE")
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (56 - 8*i))
	}
	if tok, err := New(strings.NewReader(string(b[:])), time.Time{}); tok.Value != "FOUNDRY-FOUN-DRYA-BCDE" || v != 0x020c41062236d1c5 {
		t.Fatalf("drawn = %#x, New = %q, %v", v, tok.Value, err)
	}
}
