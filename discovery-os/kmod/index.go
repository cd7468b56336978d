package kmod

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Alias is one line of modules.alias.
type Alias struct {
	Pattern string
	Module  string
}

// Index is what the agent needs to load modules: module paths, their
// dependencies and their modalias patterns, read from modules.dep and
// modules.alias.
type Index struct {
	// Paths maps a module name to its file, relative to the module directory.
	Paths map[string]string
	// Deps maps a module name to the modules it needs, in depmod's order
	// (the last one is loaded first).
	Deps    map[string][]string
	Aliases []Alias
	// SoftPre and SoftPost map a module name to the modules to load before
	// and after it (modules.softdep), failures allowed.
	SoftPre, SoftPost map[string][]string
	// Dict is the zstd dictionary of the .ko.zst modules (DictFile); nil
	// when there is none.
	Dict []byte

	prefixes []string // literal head of each alias pattern, for Match
}

// ReadIndex reads modules.dep, modules.alias, modules.softdep and the zstd
// dictionary from a module directory. A missing modules.alias only
// disables modalias matching, a missing modules.softdep soft dependencies.
func ReadIndex(dir string) (*Index, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("read module index: %w", err)
	}
	defer f.Close()
	ix, err := ParseDep(f)
	if err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	if ix.Dict, err = os.ReadFile(filepath.Join(dir, DictFile)); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read %s: %w", DictFile, err)
	}
	a, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		if os.IsNotExist(err) {
			return ix, nil
		}
		return nil, fmt.Errorf("read module aliases: %w", err)
	}
	defer a.Close()
	if ix.Aliases, err = ParseAlias(a); err != nil {
		return nil, fmt.Errorf("modules.alias: %w", err)
	}
	sd, err := os.Open(filepath.Join(dir, "modules.softdep"))
	if err != nil {
		if os.IsNotExist(err) {
			return ix, nil
		}
		return nil, fmt.Errorf("read module soft dependencies: %w", err)
	}
	defer sd.Close()
	if ix.SoftPre, ix.SoftPost, err = ParseSoftdepFile(sd); err != nil {
		return nil, fmt.Errorf("modules.softdep: %w", err)
	}
	return ix, nil
}

// ParseSoftdepFile reads the modules.softdep format:
// "softdep module pre: a b post: c".
func ParseSoftdepFile(r io.Reader) (pre, post map[string][]string, err error) {
	pre, post = map[string][]string{}, map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 || f[0] != "softdep" {
			return nil, nil, fmt.Errorf("line %d: not \"softdep module pre: … post: …\"", n)
		}
		name := Normalize(f[1])
		p, q := ParseSoftdep(strings.Join(f[2:], " "))
		pre[name] = append(pre[name], p...)
		post[name] = append(post[name], q...)
	}
	return pre, post, sc.Err()
}

// ParseDep reads the modules.dep format: "path: dep-path dep-path…".
func ParseDep(r io.Reader) (*Index, error) {
	ix := &Index{Paths: map[string]string{}, Deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		path, deps, ok := strings.Cut(line, ":")
		if !ok || !IsModuleFile(path) {
			return nil, fmt.Errorf("line %d: not \"module: dependencies\"", n)
		}
		name := NameOf(path)
		ix.Paths[name] = path
		var names []string
		for _, d := range strings.Fields(deps) {
			if !IsModuleFile(d) {
				return nil, fmt.Errorf("line %d: %q is not a module file", n, d)
			}
			names = append(names, NameOf(d))
		}
		ix.Deps[name] = names
	}
	return ix, sc.Err()
}

// ParseAlias reads the modules.alias format: "alias pattern module".
func ParseAlias(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 3 || f[0] != "alias" {
			return nil, fmt.Errorf("line %d: not \"alias pattern module\"", n)
		}
		out = append(out, Alias{Pattern: f[1], Module: Normalize(f[2])})
	}
	return out, sc.Err()
}

// Match returns the modules whose alias patterns match a device's modalias,
// each once, in modules.alias order.
func (ix *Index) Match(modalias string) []string {
	// Thousands of aliases, matched against every device many times under
	// an emulator at boot: a pattern whose literal head the modalias lacks
	// cannot match, and comparing heads is far cheaper than globbing.
	if len(ix.prefixes) != len(ix.Aliases) {
		ix.prefixes = make([]string, len(ix.Aliases))
		for i, a := range ix.Aliases {
			ix.prefixes[i] = literalPrefix(a.Pattern)
		}
	}
	var out []string
	for i, a := range ix.Aliases {
		if strings.HasPrefix(modalias, ix.prefixes[i]) && Glob(a.Pattern, modalias) && !slices.Contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	return out
}

// literalPrefix is the part of a pattern before its first wildcard.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, "*?["); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// WriteDep writes modules.dep for mods, which must be closed under
// dependencies (Tree.Closure's result). Each line lists the module's
// transitive dependencies as depmod does: the last is loaded first.
func WriteDep(w io.Writer, mods []Module) error {
	byName := map[string]Module{}
	for _, m := range mods {
		byName[m.Name] = m
	}
	bw := bufio.NewWriter(w)
	for _, m := range mods {
		var order []string // load order, dependencies first
		seen := map[string]bool{}
		var visit func(string)
		visit = func(n string) {
			if seen[n] {
				return
			}
			seen[n] = true
			for _, d := range byName[n].Depends {
				visit(d)
			}
			if n != m.Name {
				order = append(order, n)
			}
		}
		visit(m.Name)
		fmt.Fprintf(bw, "%s:", m.Path)
		for i := len(order) - 1; i >= 0; i-- {
			d, ok := byName[order[i]]
			if !ok {
				return fmt.Errorf("module %s needs %s, which is not in the set", m.Name, order[i])
			}
			fmt.Fprintf(bw, " %s", d.Path)
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}

// WriteAlias writes modules.alias for mods.
func WriteAlias(w io.Writer, mods []Module) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("# Aliases extracted from modules themselves.\n")
	for _, m := range mods {
		for _, a := range m.Aliases {
			fmt.Fprintf(bw, "alias %s %s\n", a, m.Name)
		}
	}
	return bw.Flush()
}

// WriteSoftdep writes modules.softdep for the modules of mods that have
// soft dependencies (Tree.Closure's result, whose softdeps are module
// names).
func WriteSoftdep(w io.Writer, mods []Module) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("# Soft dependencies extracted from modules themselves.\n")
	for _, m := range mods {
		if len(m.SoftPre) == 0 && len(m.SoftPost) == 0 {
			continue
		}
		fmt.Fprintf(bw, "softdep %s", m.Name)
		if len(m.SoftPre) > 0 {
			fmt.Fprintf(bw, " pre: %s", strings.Join(m.SoftPre, " "))
		}
		if len(m.SoftPost) > 0 {
			fmt.Fprintf(bw, " post: %s", strings.Join(m.SoftPost, " "))
		}
		bw.WriteString("\n")
	}
	return bw.Flush()
}
