package kmod

// Glob reports whether name matches the shell pattern used in
// modules.alias: '*' matches any run of characters (including '/', unlike
// path.Match), '?' any one character, and '[…]' a set with ranges and '!'
// or '^' negation. A malformed set matches nothing.
func Glob(pattern, name string) bool {
	p, n := 0, 0
	// Backtracking point of the last '*': where it was and how far into
	// name it has consumed.
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if end, ok := matchSet(pattern, p, name[n]); end > 0 {
					if ok {
						p = end
						n++
						continue
					}
				} else {
					return false
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchSet matches c against the set starting at pattern[i] == '['. It
// returns the index after the closing ']' (0 when the set is unterminated)
// and whether c is in the set.
func matchSet(pattern string, i int, c byte) (int, bool) {
	i++
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	in := false
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return i + 1, in != negate
		}
		first = false
		lo := pattern[i]
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			i += 2
		}
		if lo <= c && c <= hi {
			in = true
		}
		i++
	}
	return 0, false
}
