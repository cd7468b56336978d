package names

import (
	"errors"
	"strings"
)

const hexDigits = "0123456789abcdef"

// ParseMAC reads an EUI-48 MAC address in any common notation — six pairs
// of hex digits separated by ':' or '-' (52:54:00:12:34:56,
// 52-54-00-12-34-56), three groups of four separated by '.'
// (5254.0012.3456), or twelve hex digits in a row (525400123456), in
// either case — and returns its canonical form: lower case, separated by
// colons, the machines' key. Longer hardware addresses (EUI-64,
// InfiniBand) are refused: no machine is keyed by one.
func ParseMAC(s string) (string, error) {
	var digits [12]byte
	n := 0
	take := func(c byte) bool {
		if c >= 'A' && c <= 'F' {
			c += 'a' - 'A'
		}
		if strings.IndexByte(hexDigits, c) < 0 || n == len(digits) {
			return false
		}
		digits[n] = c
		n++
		return true
	}
	var group int // hex digits between separators
	var sep byte  // the separator, the same throughout
	switch len(s) {
	case 17:
		group, sep = 2, s[2]
		if sep != ':' && sep != '-' {
			return "", errMAC
		}
	case 14:
		group, sep = 4, '.'
	case 12:
		group = 12
	default:
		return "", errMAC
	}
	for i := 0; i < len(s); i++ {
		if (i+1)%(group+1) == 0 {
			if s[i] != sep {
				return "", errMAC
			}
		} else if !take(s[i]) {
			return "", errMAC
		}
	}
	return canonical(digits), nil
}

var errMAC = errors.New("not a MAC address like 52:54:00:12:34:56")

func canonical(d [12]byte) string {
	var b [17]byte
	for i, j := 0, 0; i < len(d); i += 2 {
		if i > 0 {
			b[j] = ':'
			j++
		}
		b[j], b[j+1] = d[i], d[i+1]
		j += 2
	}
	return string(b[:])
}

// CheckMAC accepts only the canonical form ParseMAC returns
// (52:54:00:12:34:56): the form of every key, so one machine has one key.
func CheckMAC(s string) error {
	if _, ok := MACNumber(s); !ok {
		return errCanonical
	}
	return nil
}

// MACNumber returns the 48-bit number of a MAC in canonical form (the
// first pair of digits the highest byte); ok is false for any other text.
// Canonical MACs order as their numbers do, and a number is a map key
// the garbage collector need not follow, as a string is.
func MACNumber(s string) (n uint64, ok bool) {
	if len(s) != 17 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != ':' {
				return 0, false
			}
			continue
		}
		d := strings.IndexByte(hexDigits, s[i])
		if d < 0 {
			return 0, false
		}
		n = n<<4 | uint64(d)
	}
	return n, true
}

var errCanonical = errors.New("not a MAC address in canonical form like 52:54:00:12:34:56")
