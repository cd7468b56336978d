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
}

// ReadIndex reads modules.dep and modules.alias from a module directory.
// A missing modules.alias only disables modalias matching.
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
	return ix, nil
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
	var out []string
	for _, a := range ix.Aliases {
		if Glob(a.Pattern, modalias) && !slices.Contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	return out
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
