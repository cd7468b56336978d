package console

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The page mixes text from the kernel (interface names, disk models), from
// the API (event texts, machine states) and from the operator; all of it
// reaches a terminal, so nothing may carry a control sequence, and widths are
// counted in terminal cells, not bytes.

// clean makes s safe to print on a terminal: control characters (escape
// sequences, line breaks) and invalid UTF-8 become '?', a tab a space.
func clean(s string) string {
	ok := true
	for _, r := range s {
		if r == utf8.RuneError || r == '\t' || !unicode.IsPrint(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r == utf8.RuneError || !unicode.IsPrint(r):
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// runeCells is how many terminal cells r takes: 0 for combining marks, 2 for
// East Asian wide and fullwidth characters (the common blocks), 1 otherwise.
func runeCells(r rune) int {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me):
		return 0
	case r >= 0x1100 && r <= 0x115f, r >= 0x2e80 && r <= 0xa4cf && r != 0x303f,
		r >= 0xac00 && r <= 0xd7a3, r >= 0xf900 && r <= 0xfaff,
		r >= 0xfe30 && r <= 0xfe4f, r >= 0xff00 && r <= 0xff60,
		r >= 0xffe0 && r <= 0xffe6, r >= 0x1f300 && r <= 0x1f64f,
		r >= 0x1f900 && r <= 0x1f9ff, r >= 0x20000 && r <= 0x3fffd:
		return 2
	}
	return 1
}

// cells is the width of s on a terminal.
func cells(s string) int {
	n := 0
	for _, r := range s {
		n += runeCells(r)
	}
	return n
}

// prefixCells returns the longest prefix of s that fits in w cells.
func prefixCells(s string, w int) string {
	n := 0
	for i, r := range s {
		c := runeCells(r)
		if n+c > w {
			return s[:i]
		}
		n += c
	}
	return s
}

// cut shortens s to w cells, ending in "…" when something was cut.
func cut(s string, w int) string {
	if cells(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	return prefixCells(s, w-1) + "…"
}

// wrap breaks s into lines of at most w cells at spaces; a word longer than
// a line is broken hard rather than cut, so that a URL or a path stays
// readable in full.
func wrap(s string, w int) []string {
	if w < 1 {
		w = 1
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		switch {
		case line == "":
		case cells(line)+1+cells(word) <= w:
			line += " " + word
			continue
		default:
			lines = append(lines, line)
		}
		for cells(word) > w {
			head := prefixCells(word, w)
			if head == "" { // a wide rune in a one-cell column
				_, size := utf8.DecodeRuneInString(word)
				head = word[:size]
			}
			lines = append(lines, head)
			word = word[len(head):]
		}
		line = word
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// pack lays out parts separated by sep on lines of w cells: the first line
// starts with first, the others with cont. A part is never split; one wider
// than a whole line is cut.
func pack(first, cont, sep string, parts []string, w int) []string {
	var lines []string
	line, empty := first, true
	for _, p := range parts {
		if p == "" {
			continue
		}
		switch {
		case empty:
		case cells(line)+cells(sep)+cells(p) <= w:
			line += sep + p
			continue
		default:
			lines = append(lines, line)
			line = cont
		}
		line += cut(p, w-cells(line))
		empty = false
	}
	return append(lines, line)
}

// sizeText renders a byte count in binary units: "8.0 GiB".
func sizeText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB", "PiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
