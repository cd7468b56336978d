package store

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/foundry-appliance/foundry/names"
)

// Input limits. Values come from the network (DHCP, the agent, the API), so
// each one is bounded before it reaches a key or a record.
const (
	maxName     = names.MaxName // cluster, profile, token id, segment
	maxLabel    = 128           // audit actor and action, token name
	maxDetail   = 4096          // audit detail; longer text is truncated
	maxHostname = names.MaxHostname
	maxText     = 4096 // descriptions and agent messages
)

// checkMAC accepts only the canonical lower-case colon form of an EUI-48
// address (names.CheckMAC), the one form used in keys, so that one machine
// has one key.
func checkMAC(mac string) error {
	if names.CheckMAC(mac) != nil {
		return fmt.Errorf("%w: MAC %s is not in canonical form like 52:54:00:12:34:56", ErrInvalid, label(mac))
	}
	return nil
}

// checkName validates a cluster, profile or API token name: it becomes part
// of a key and of URLs, so only the small alphabet of names.CheckName is
// accepted.
func checkName(kind, name string) error {
	if err := names.CheckName(name); err != nil {
		return fmt.Errorf("%w: %s name %s: %v", ErrInvalid, kind, label(name), err)
	}
	return nil
}

// checkSegment validates a segment name. Segments are named in the
// configuration by the same rule as every other name (names.CheckName),
// which also keeps '/' out: it separates the segment from the MAC in lease
// keys.
func checkSegment(s string) error {
	return checkName("segment", s)
}

// checkText bounds a free-text field.
func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrInvalid, field, len(s), limit)
	}
	return nil
}

func printable(s string) bool { return names.Printable(s) }

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

// label renders untrusted input for an error message (names.Label): short
// and quoted so that a hostile value can neither flood a log nor forge a
// line in it.
func label(s string) string { return names.Label(s) }

// ref renders an identifier in error context (names.Ref): as is when it is
// short and plain (the usual case), quoted by label otherwise.
func ref(s string) string { return names.Ref(s) }
