// Package names holds the rules for the identifiers Foundry takes from the
// outside world and puts into keys, URLs, scripts and packets: host names
// (RFC 1123), MAC addresses (the machines' key), resource names (clusters,
// profiles, API tokens, segments) and the rendering of untrusted text in
// error messages. The configuration, DHCP, iPXE, the API, the store and the
// discovery agent all call these functions, so that a value one layer
// accepts is never refused by the next one.
//
// The package depends on the standard library only. Its errors say what
// is wrong without repeating the value; each caller wraps them in its own
// kind of error (store.ErrInvalid, an API field error) and renders the
// value with Label.
package names

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxName is the longest resource name.
const MaxName = 64

var errName = fmt.Errorf("want 1-%d letters, digits, '-', '_' or '.', starting with a letter or digit", MaxName)

// CheckName accepts the name of a cluster, profile, API token or segment:
// 1-64 ASCII letters, digits, '-', '_' and '.', starting with a letter or
// digit. Names become parts of store keys ('/' separates a segment from a
// MAC in lease keys), URL paths and iPXE scripts, hence the small alphabet;
// a leading letter or digit keeps a name from reading as a command-line
// option or a relative path ("-x", "..").
func CheckName(s string) error {
	if s == "" || len(s) > MaxName || !alnum(s[0]) {
		return errName
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return errName
		}
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// maxLabel is how much of an untrusted value Label shows.
const maxLabel = 64

// Label renders untrusted text for an error or log message: Go-quoted, so
// that control characters and quotes are escaped and it can never forge a
// line, and cut after 64 bytes (at a character boundary, marked with "…"),
// so that it cannot flood one either.
func Label(s string) string {
	if len(s) <= maxLabel {
		return strconv.Quote(s)
	}
	cut := maxLabel
	for cut > maxLabel-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// Ref renders an identifier in error context: as it is when it is short
// and plain (the usual case: a MAC, a name), quoted by Label otherwise.
func Ref(s string) string {
	if s != "" && len(s) <= maxLabel && Printable(s) && !strings.ContainsAny(s, " \"") {
		return s
	}
	return Label(s)
}

// Printable reports whether s is valid UTF-8 made only of printable
// characters (unicode.IsPrint: no controls, no spaces other than ' ').
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// OneLine reports whether s is one line of text: valid UTF-8 without
// control characters but tab (C0, DEL and C1, where NEL is a line break to
// YAML 1.1) and without the noncharacters U+FFFE and U+FFFF. An SSH key
// must be: the agent writes the keys into the cloud-init seed as JSON,
// which escapes C0 controls but not DEL or C1 ones, and cloud-init's YAML
// loader refuses a file holding those or the noncharacters.
func OneLine(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' || r == 0xfffe || r == 0xffff {
			return false
		}
	}
	return true
}
