package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Values in table and text output come from machines (vendor, serial,
// agent messages) as well as from administrators. A terminal acts on the
// control characters in them: ESC starts sequences that retitle the
// window, clear the screen or set the clipboard (OSC 52), C1 codes such as
// U+009B (CSI) do the same on terminals that honour them, and bidi
// overrides reorder what is shown. printable is the one place that makes
// such characters visible; table, fields and textf pass every value
// through it. JSON output (-o json) stays exact: the encoder escapes
// control characters itself.

// printable returns s with every control character (C0 including tab and
// newline, DEL, C1), bidi control (U+061C, U+200E/F, U+202A–E, U+2066–9),
// line or paragraph separator (U+2028/9) and byte that is not UTF-8
// written as a Go escape (\x1b, \u202e). Anything else is unchanged, so a
// clean value prints as it is.
func printable(s string) string {
	i := strings.IndexFunc(s, unsafeRune)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !unsafeRune(r):
			b.WriteString(s[:size])
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		s = s[size:]
	}
	return b.String()
}

// unsafeRune reports whether a terminal may act on r instead of showing it.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// printableLines is printable for multi-line text (a boot script): each
// line on its own, newlines kept.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// textf is fmt.Fprintf for text output: every string, error and Stringer
// argument goes through printable first, so the format (ours) keeps its
// newlines and the values (anyone's) cannot act on the terminal.
func textf(w io.Writer, format string, args ...any) (int, error) {
	safe := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			safe[i] = printable(v)
		case error:
			safe[i] = printable(v.Error())
		case fmt.Stringer:
			safe[i] = printable(v.String())
		default:
			// Named string types (a state, a kind) are text too.
			if rv := reflect.ValueOf(a); rv.Kind() == reflect.String {
				safe[i] = printable(rv.String())
			} else {
				safe[i] = a
			}
		}
	}
	return fmt.Fprintf(w, format, safe...)
}
