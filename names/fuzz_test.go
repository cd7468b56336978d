package names

import (
	"bytes"
	"encoding/binary"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Each target checks the rule against an independent statement of it (a
// regular expression, the standard library's MAC parser), plus the
// properties every caller relies on: a normalised value passes the check
// again unchanged, and nothing rendered for a message spans two lines.

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func FuzzHostname(f *testing.F) {
	for _, s := range []string{"node-01", "Node-01.Lab", "a..b", "-x", "x_y", "a.", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Hostname(s)
		lower := strings.ToLower(s)
		// ToLower can change non-ASCII bytes; the rule is ASCII-only, so
		// compare with the oracle only on ASCII input.
		if isASCII(s) {
			want := len(s) <= MaxHostname && hostnameRE.MatchString(lower)
			if (err == nil) != want {
				t.Fatalf("Hostname(%q) error %v, regexp says valid=%t", s, err, want)
			}
		}
		if err != nil {
			if got != "" {
				t.Fatalf("Hostname(%q) = %q with error %v", s, got, err)
			}
			return
		}
		if got != lower {
			t.Fatalf("Hostname(%q) = %q, want %q", s, got, lower)
		}
		if again, err := Hostname(got); err != nil || again != got {
			t.Fatalf("Hostname(%q) = %q, %v: not stable", got, again, err)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56", "52-54-00-AB-CD-EF", "5254.0012.3456", "525400123456", "52:54:00-12:34:56", "52:54:00:12:34:56:78:9a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseMAC(s)
		// net.ParseMAC knows the separated notations; a six-byte result
		// there must be ours too, and the other way round.
		if len(s) != 12 {
			hw, nerr := net.ParseMAC(s)
			want := nerr == nil && len(hw) == 6
			if (err == nil) != want {
				t.Fatalf("ParseMAC(%q) = %q, %v; net.ParseMAC says %v, %v", s, got, err, hw, nerr)
			}
			if want && got != hw.String() {
				t.Fatalf("ParseMAC(%q) = %q, net.ParseMAC %q", s, got, hw.String())
			}
		}
		if err != nil {
			return
		}
		if cerr := CheckMAC(got); cerr != nil {
			t.Fatalf("ParseMAC(%q) = %q, which CheckMAC refuses: %v", s, got, cerr)
		}
		if again, err := ParseMAC(got); err != nil || again != got {
			t.Fatalf("ParseMAC(%q) = %q, %v: not stable", got, again, err)
		}
		if d := DiscoveredHostname(s); d != "discovered-"+strings.ReplaceAll(got[9:], ":", "") {
			t.Fatalf("DiscoveredHostname(%q) = %q", s, d)
		} else if _, err := Hostname(d); err != nil {
			t.Fatalf("DiscoveredHostname(%q) = %q: %v", s, d, err)
		}
		if d := DiscoveredHostnameFull(s); d != "discovered-"+strings.ReplaceAll(got, ":", "") {
			t.Fatalf("DiscoveredHostnameFull(%q) = %q", s, d)
		} else if _, err := Hostname(d); err != nil {
			t.Fatalf("DiscoveredHostnameFull(%q) = %q: %v", s, d, err)
		}
	})
}

func FuzzCheckMAC(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56", "52:54:00:AB:CD:EF", "5254.0012.3456", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Canonical means: ParseMAC leaves it as it is.
		got, err := ParseMAC(s)
		want := err == nil && got == s
		if cerr := CheckMAC(s); (cerr == nil) != want {
			t.Fatalf("CheckMAC(%q) = %v, but ParseMAC gives %q, %v", s, cerr, got, err)
		}
		// The number is the address's six bytes.
		n, ok := MACNumber(s)
		if ok != want {
			t.Fatalf("MACNumber(%q) ok %v, but ParseMAC gives %q, %v", s, ok, got, err)
		}
		if ok {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], n)
			if hw, _ := net.ParseMAC(s); !bytes.Equal(b[2:], hw) || b[0] != 0 || b[1] != 0 {
				t.Fatalf("MACNumber(%q) = %#x, net.ParseMAC %v", s, n, hw)
			}
		}
	})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"lab", "Prod_1.v2", "-x", "a/b", "a b", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckName(s); (err == nil) != nameRE.MatchString(s) {
			t.Fatalf("CheckName(%q) = %v, regexp says %t", s, err, nameRE.MatchString(s))
		}
	})
}

func FuzzLabel(f *testing.F) {
	for _, s := range []string{"lab", "a\nb", `"quoted"`, "\xff\xfe", strings.Repeat("€", 30), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := Label(s)
		quoted := strings.TrimSuffix(l, "…")
		shown, err := strconv.Unquote(quoted)
		if err != nil {
			t.Fatalf("Label(%q) = %s: not one quoted string: %v", s, l, err)
		}
		cut := quoted != l
		switch {
		case !strings.HasPrefix(s, shown):
			t.Fatalf("Label(%q) shows %q, not a prefix", s, shown)
		case cut != (len(s) > maxLabel), len(shown) > maxLabel, cut && len(shown) < maxLabel-utf8.UTFMax:
			t.Fatalf("Label(%q) = %s: wrong cut", s, l)
		}
		for _, r := range Ref(s) + l {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("Label or Ref of %q has control character %q", s, r)
			}
		}
		if r := Ref(s); r != s && r != l {
			t.Fatalf("Ref(%q) = %s, neither the value nor its label", s, r)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
