package ipxe

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// What iPXE does with a script line, and therefore what a value placed in
// one must never contain (src/core/exec.c, script.c, settings.c):
//
//   - A script is split into lines at '\n'; a line starting with ':' is a
//     label. So no value may contain a line break (or any control byte).
//   - A line is split into tokens at whitespace (isspace: space, \t, \n,
//     \v, \f, \r). So a single-token value (a URL, a nonce) must contain no
//     whitespace, and a multi-token value (a kernel command line) only
//     plain spaces.
//   - A token that is exactly "||", "&&" or ";" ends the command and starts
//     another one; a token starting with '#' ends the line (comment). These
//     are the only ways to inject a command into a line, and they only work
//     as whole tokens: "a||b" or "x;y" is harmless. Values that can hold
//     several tokens are checked token by token.
//   - Every token then has "${name}" expanded from iPXE settings, with no
//     escape syntax, and the result is scanned again. A value with "$"
//     could read settings (or, through a crafted setting, more); '$' is
//     refused outright in every value, which also rules out a '$' from one
//     value meeting a '{' from the next.
//
// Values are validated, not escaped: iPXE has no quoting, so anything that
// cannot be written safely is refused with an error.

// ErrUnsafe wraps every refusal of a value that cannot be placed in a
// script.
var ErrUnsafe = errors.New("unsafe value for an iPXE script")

func unsafe(kind, v, why string) error {
	return fmt.Errorf("%w: %s %s: %s", ErrUnsafe, kind, quote(v), why)
}

// quote renders an untrusted value for an error message (names.Label):
// short, and with control bytes escaped so it cannot forge a log line.
func quote(s string) string { return names.Label(s) }

// Length limits. The kernel's own limit on x86 is 2048 bytes for the whole
// command line.
const (
	maxURL     = 2048
	maxCmdline = 2048
	maxNonce   = 256
)

// checkURL accepts an absolute http, https or tftp URL made only of the
// characters RFC 3986 allows, minus '$' (iPXE expansion) and '#' (a
// fragment is never fetched, and a leading '#' starts a comment).
func checkURL(kind, s string) error {
	if s == "" || len(s) > maxURL {
		return unsafe(kind, s, fmt.Sprintf("want 1-%d characters", maxURL))
	}
	for i := 0; i < len(s); i++ {
		if !urlByte(s[i]) {
			return unsafe(kind, s, fmt.Sprintf("character %q is not allowed in a URL", s[i]))
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return unsafe(kind, s, err.Error())
	}
	if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tftp" {
		return unsafe(kind, s, "want an http, https or tftp URL")
	}
	if u.Host == "" || u.Opaque != "" || u.User != nil {
		return unsafe(kind, s, "want scheme://host/path without user information")
	}
	return nil
}

func urlByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	// RFC 3986 unreserved, gen-delims and sub-delims, and '%' for escapes;
	// without '$' and '#'.
	return strings.IndexByte("-._~:/?[]@!&'()*+,;=%", c) >= 0
}

// checkBaseURL validates the appliance's advertised URL and returns it
// without a trailing slash, ready for paths to be appended.
func checkBaseURL(s string) (string, error) {
	if err := checkURL("base URL", s); err != nil {
		return "", err
	}
	u, _ := url.Parse(s)
	if u.Scheme == "tftp" || u.RawQuery != "" || u.ForceQuery {
		return "", unsafe("base URL", s, "want an http or https URL without a query")
	}
	return strings.TrimRight(s, "/"), nil
}

// CheckBaseURL refuses an appliance URL (http.advertise) that no script
// can carry: the configuration checks it with the rule Render applies.
func CheckBaseURL(s string) error {
	_, err := checkBaseURL(s)
	return err
}

// resolve turns a reference to a boot file into a URL: a path starting
// with '/' is on the appliance (base + path), anything else must be an
// absolute URL.
func resolve(kind, ref, base string) (string, error) {
	u := ref
	if strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		u = base + ref
	}
	if err := checkURL(kind, u); err != nil {
		return "", err
	}
	return u, nil
}

// checkCmdline accepts a kernel command line of printable ASCII words
// separated by spaces, none of which iPXE would treat as a command
// separator or comment, and no '$'.
func checkCmdline(kind, s string) error {
	if len(s) > maxCmdline {
		return unsafe(kind, s, fmt.Sprintf("longer than %d bytes", maxCmdline))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return unsafe(kind, s, fmt.Sprintf("byte %#02x is not printable ASCII", c))
		}
	}
	if strings.Contains(s, "$") {
		return unsafe(kind, s, `"$" would be expanded by iPXE`)
	}
	for _, tok := range strings.Fields(s) {
		switch {
		case tok == "||" || tok == "&&" || tok == ";":
			return unsafe(kind, s, fmt.Sprintf("the word %q separates iPXE commands", tok))
		case tok[0] == '#':
			return unsafe(kind, s, fmt.Sprintf("the word %q starts an iPXE comment", tok))
		}
	}
	return nil
}

// checkToken accepts a value that stays one plain word: the nonce.
func checkToken(kind, s string) error {
	if s == "" || len(s) > maxNonce {
		return unsafe(kind, s, fmt.Sprintf("want 1-%d characters", maxNonce))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return unsafe(kind, s, "want letters, digits and -._~ only")
		}
	}
	return nil
}

// checkHostname accepts an RFC 1123 host name (names.Hostname, in any
// case: a script does not care) or an empty one.
func checkHostname(s string) error {
	if s == "" {
		return nil
	}
	if _, err := names.Hostname(s); err != nil {
		return unsafe("hostname", s, err.Error())
	}
	return nil
}

// checkName accepts a cluster or profile name as the store does
// (names.CheckName); empty is allowed where the field is optional.
func checkName(kind, s string) error {
	if s == "" {
		return nil
	}
	if err := names.CheckName(s); err != nil {
		return unsafe(kind, s, err.Error())
	}
	return nil
}

// checkIP accepts an IP address in its canonical text form (or empty).
func checkIP(s string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.String() != s {
		return unsafe("ip", s, "not an IP address in canonical form")
	}
	return nil
}

// checkMAC accepts only the canonical lower-case colon form of an EUI-48
// address (names.CheckMAC), the key form of the store.
func checkMAC(s string) error {
	if names.CheckMAC(s) != nil {
		return unsafe("MAC", s, "want the canonical form like 52:54:00:12:34:56")
	}
	return nil
}

// ParseMAC parses a MAC address from a URL in any notation names.ParseMAC
// knows (colons, hyphens, dots, bare hex, either case) and returns the
// canonical lower-case colon form. Only EUI-48 addresses are accepted: they
// are the machines' keys.
func ParseMAC(s string) (string, error) {
	mac, err := names.ParseMAC(s)
	if err != nil {
		return "", fmt.Errorf("invalid MAC %s", quote(s))
	}
	return mac, nil
}

// text makes free text safe for an echo, menu or item line by replacing
// every character outside a small set with '_' and bounding its length. It
// never fails: it is for display only, where refusing would stop a boot
// over a cosmetic value.
func text(s string) string {
	const limit = 80
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < limit; i++ {
		c := s[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(" .,:/()_@+=-", c) >= 0
		// A word starting with '-' could be taken for an option of the
		// command (echo -n).
		if c == '-' && (i == 0 || s[i-1] == ' ') {
			ok = false
		}
		if ok {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// ValidateProfile checks that a profile's boot fields can be placed in a
// script: the kernel and initrd references (appliance paths or absolute
// URLs), the command line, and the script template (parsed, checked to be
// only text and field substitutions — see template.go — and rendered
// against sample data). The API calls it before storing a profile, so that
// a bad one is refused when it is written rather than when a machine boots.
func ValidateProfile(p store.Profile) error {
	if err := checkName("profile", p.Name); err != nil {
		return err
	}
	if p.Kind != store.ProfileNetboot {
		return nil // image profiles are not placed in scripts
	}
	if p.Script != "" {
		sample := TemplateData{MAC: "52:54:00:12:34:56", Hostname: "host.example", IP: "192.0.2.1",
			Cluster: "cluster", Profile: p.Name, BaseURL: "http://192.0.2.1:8080"}
		_, err := runTemplate(p.Name, p.Script, sample)
		return err
	}
	if p.Kernel == "" {
		return fmt.Errorf("%w: netboot profile %s has neither kernel nor script", ErrNoProfile, quote(p.Name))
	}
	const base = "http://192.0.2.1:8080"
	if _, err := resolve("kernel", p.Kernel, base); err != nil {
		return err
	}
	if p.Initrd != "" {
		if _, err := resolve("initrd", p.Initrd, base); err != nil {
			return err
		}
	}
	return checkCmdline("cmdline", p.Cmdline)
}
