package store

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits. Values come from the network (DHCP, the agent, the API), so
// each one is bounded before it reaches a key or a record.
const (
	maxName     = 64   // cluster, profile, token id, segment
	maxLabel    = 128  // audit actor and action, token name
	maxDetail   = 4096 // audit detail; longer text is truncated
	maxHostname = 253
	maxText     = 4096 // descriptions and agent messages
)

// checkMAC accepts only the canonical lower-case colon form of an EUI-48
// address, the one form used in keys, so that one machine has one key.
func checkMAC(mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 || hw.String() != mac {
		return fmt.Errorf("%w: MAC %s is not in canonical form like 52:54:00:12:34:56", ErrInvalid, label(mac))
	}
	return nil
}

// checkName validates a cluster, profile or API token name: it becomes part
// of a key and of URLs, so only a conservative alphabet is accepted.
func checkName(kind, name string) error {
	ok := len(name) > 0 && len(name) <= maxName && isAlnum(name[0])
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isAlnum(c) || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("%w: %s name %s: want 1-%d letters, digits, '-', '_' or '.', starting with a letter or digit",
			ErrInvalid, kind, label(name), maxName)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkSegment validates a segment name. Segments are named in the
// configuration, so any printable text is allowed except '/', which
// separates the segment from the MAC in lease keys.
func checkSegment(s string) error {
	if s == "" || len(s) > maxName || strings.ContainsRune(s, '/') || !printable(s) {
		return fmt.Errorf("%w: segment name %s: want 1-%d printable characters without '/'", ErrInvalid, label(s), maxName)
	}
	return nil
}

// checkText bounds a free-text field.
func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrInvalid, field, len(s), limit)
	}
	return nil
}

func printable(s string) bool {
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

// checkAudit validates a, fills in defaultAction when a.Action is empty and
// truncates a long detail (an audit record must not fail the change it
// describes because its free text is long).
func checkAudit(a *Audit, defaultAction string) error {
	if a.Action == "" {
		a.Action = defaultAction
	}
	if a.Actor == "" {
		return fmt.Errorf("%w: audit actor is required", ErrInvalid)
	}
	if len(a.Actor) > maxLabel || !printable(a.Actor) {
		return fmt.Errorf("%w: audit actor %s: want 1-%d printable characters", ErrInvalid, label(a.Actor), maxLabel)
	}
	if len(a.Action) > maxLabel || !printable(a.Action) {
		return fmt.Errorf("%w: audit action %s: want 1-%d printable characters", ErrInvalid, label(a.Action), maxLabel)
	}
	a.Detail = truncate(a.Detail, maxDetail)
	return nil
}

// truncate cuts s to at most limit bytes of valid UTF-8, marking the cut.
func truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const mark = "…"
	s = strings.ToValidUTF8(s[:limit], "\uFFFD") // may grow: cut again below
	cut := min(limit-len(mark), len(s))
	for cut > 0 && cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// label renders untrusted input for an error message: short and quoted so
// that a hostile value can neither flood a log nor forge a line in it.
func label(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

// ref renders an identifier in error context: as is when it is short and
// plain (the usual case), quoted by label otherwise.
func ref(s string) string {
	if s != "" && len(s) <= 64 && printable(s) && !strings.ContainsAny(s, " \"") {
		return s
	}
	return label(s)
}
