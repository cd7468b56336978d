package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/foundry-appliance/foundry/store"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "QEMU Standard PC (i440FX + PIIX, 1996)", "QEMU Standard PC (i440FX + PIIX, 1996)"},
		{"empty", "", ""},
		{"non-ASCII letters stay", "Straße 日本 ü", "Straße 日本 ü"},
		{"a real U+FFFD stays", "a\uFFFDb", "a\uFFFDb"},
		{"backslash stays", `C:\x1b`, `C:\x1b`},
		{"OSC 52 clipboard", "\x1b]52;c;ZWNobyBwd25lZA==\x07", `\x1b]52;c;ZWNobyBwd25lZA==\x07`},
		{"clear screen", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"window title, ST-terminated", "\x1b]0;pwned\x1b\\", `\x1b]0;pwned\x1b\`},
		{"C1 CSI as a code point", "a\u009b2Jb", `a\u009b2Jb`},
		{"C1 CSI as a raw byte", "a\x9b2Jb", `a\x9b2Jb`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"NUL", "a\x00b", `a\x00b`},
		{"newline and tab", "a\nb\tc\r", `a\x0ab\x09c\x0d`},
		{"right-to-left override", "abc\u202Etxt.exe", `abc\u202etxt.exe`},
		{"isolates and marks", "\u2066\u2067\u2068\u2069\u200e\u200f\u061c", `\u2066\u2067\u2068\u2069\u200e\u200f\u061c`},
		{"line and paragraph separators", "a\u2028b\u2029", `a\u2028b\u2029`},
		{"truncated UTF-8", "ab\xe2\x80", `ab\xe2\x80`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := printable(tc.in); got != tc.want {
				t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTextfAndLines(t *testing.T) {
	type state string
	var b bytes.Buffer
	textf(&b, "%s %s %v %d\n", "\x1b[2J", state("in\x1b]0;x\x07"), errors.New("e\x9b"), 7)
	if got, want := b.String(), `\x1b[2J in\x1b]0;x\x07 e\x9b 7`+"\n"; got != want {
		t.Errorf("textf: %q, want %q", got, want)
	}
	if got, want := printableLines("#!ipxe\nkernel a\x1bb\n"), "#!ipxe\nkernel a\\x1bb\n"; got != want {
		t.Errorf("printableLines: %q, want %q", got, want)
	}
}

// FuzzPrintable: the output is valid UTF-8 with nothing a terminal acts
// on, and a value with nothing to escape prints unchanged.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "QEMU", "\x1b]52;c;AAAA\x07", "\x9b2J", "\u202e", "a\xffb", "日本\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := printable(s)
		if !utf8.ValidString(out) {
			t.Fatalf("printable(%q) = %q: not UTF-8", s, out)
		}
		if i := strings.IndexFunc(out, unsafeRune); i >= 0 {
			t.Fatalf("printable(%q) = %q: %U at %d", s, out, []rune(out[i:])[0], i)
		}
		clean := utf8.ValidString(s) && strings.IndexFunc(s, unsafeRune) < 0
		if clean != (out == s) {
			t.Fatalf("printable(%q) = %q: clean input %t, unchanged %t", s, out, clean, out == s)
		}
	})
}

// TestCLIOutputHasNoControls runs the table and text commands against a
// machine whose agent-supplied strings carry terminal escapes: none
// reaches the output raw, and -o json returns them exactly.
func TestCLIOutputHasNoControls(t *testing.T) {
	e := newCLIEnv(t)
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)
	const (
		mac     = "52:54:00:ee:00:01"
		osc52   = "\x1b]52;c;cm0gLXJmIH4K\x07"
		clear   = "\x1b[2J"
		vendor  = "Evil" + osc52 + clear
		serial  = "SN\u009b2J\u202e1" // C1 CSI and a right-to-left override
		message = "disk failed" + clear + "\x1b]0;owned\x07"
	)
	inv, _ := json.Marshal(map[string]any{"schema_version": 1, "system": map[string]string{"vendor": vendor, "product": "\x1b[31mred", "serial": serial}})
	if _, err := e.db.CreateMachine(store.Machine{MAC: mac, State: store.StateFailed, Hostname: "node-01", Segment: "lab",
		Inventory: inv, Message: message}, store.Audit{Actor: "system", Detail: "seeded " + clear}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, args := range [][]string{{"machines", "ls"}, {"machines", "show", mac}, {"audit"}} {
		out, errOut, code := e.run(ctx, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, errOut)
		}
		raw := func(r rune) bool { return r != '\n' && unsafeRune(r) }
		if i := strings.IndexFunc(out+errOut, raw); i >= 0 || !utf8.ValidString(out+errOut) {
			t.Errorf("%v prints a control character raw:\n%q", args, out+errOut)
		}
		if !strings.Contains(out, `\x1b`) {
			t.Errorf("%v does not show the escape made visible:\n%s", args, out)
		}
	}
	out, _, code := e.run(ctx, "machines", "show", mac, "-o", "json")
	var m struct {
		Message string `json:"message"`
		Summary struct{ Vendor, Serial string }
	}
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil {
		t.Fatalf("show -o json: exit %d, %v\n%s", code, err, out)
	}
	if m.Message != message || m.Summary.Vendor != vendor || m.Summary.Serial != serial {
		t.Errorf("-o json changed the values: %+v", m)
	}
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("-o json carries a raw ESC:\n%q", out)
	}
}
