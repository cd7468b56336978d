package names

import (
	"errors"
	"fmt"
	"strings"
)

// Host name limits (RFC 1123 §2.1, RFC 1035 §2.3.4).
const (
	MaxHostname  = 253
	MaxHostLabel = 63
)

// The fixed verdicts of Hostname are made once: the DHCP server asks about
// every packet's option 12, and most carry none.
var (
	errEmptyHostname = errors.New("not an RFC 1123 host name: empty")
	errHyphenEnds    = errors.New("not an RFC 1123 host name: a label cannot start or end with '-'")
)

// Hostname checks that s is an RFC 1123 host name and returns it in the
// one form Foundry stores: lower case (DNS names are case-insensitive).
// A host name is one or more dot-separated labels of 1-63 ASCII letters,
// digits and '-', none starting or ending with '-', 253 characters in all.
// Nothing else is accepted: no surrounding space, no trailing dot, no
// underscore. The error says what is wrong.
//
// Text a machine offers as its name (DHCP option 12) goes through the same
// rule: a name that passes is kept lower-cased, anything else is dropped
// rather than repaired, since a repaired name is one the machine never had.
func Hostname(s string) (string, error) {
	if s == "" {
		return "", errEmptyHostname
	}
	if len(s) > MaxHostname {
		return "", fmt.Errorf("not an RFC 1123 host name: longer than %d characters", MaxHostname)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > MaxHostLabel {
			return "", fmt.Errorf("not an RFC 1123 host name: each dot-separated label needs 1-%d characters", MaxHostLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", errHyphenEnds
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !alnum(c) && c != '-' {
				return "", fmt.Errorf("not an RFC 1123 host name: character %q is not a letter, digit or '-'", c)
			}
		}
	}
	return strings.ToLower(s), nil
}

// DiscoveredHostname is the host name of a discovered machine's temporary
// record (docs/spec.md §1): "discovered-" and the last six hex digits of its MAC,
// e.g. "discovered-123456" for 52:54:00:12:34:56. mac may be in any
// notation ParseMAC accepts; the result is "" when it is not a MAC.
func DiscoveredHostname(mac string) string {
	c, err := ParseMAC(mac)
	if err != nil {
		return ""
	}
	return "discovered-" + c[9:11] + c[12:14] + c[15:17]
}

// DiscoveredHostnameFull is the fallback when DiscoveredHostname is taken
// (two MACs sharing their last three bytes under different vendor
// prefixes): "discovered-" and all twelve hex digits, unique per MAC.
func DiscoveredHostnameFull(mac string) string {
	c, err := ParseMAC(mac)
	if err != nil {
		return ""
	}
	return "discovered-" + strings.ReplaceAll(c, ":", "")
}
