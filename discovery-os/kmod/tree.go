package kmod

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Tree is a kernel module directory (/lib/modules/<version>) as unpacked
// from a kernel package. Module metadata is read lazily, so selecting a few
// dozen drivers from thousands of modules reads only those.
type Tree struct {
	Dir   string
	paths map[string]string // name → path relative to Dir
	info  map[string]Module
}

// OpenTree indexes the module files under dir by name.
func OpenTree(dir string) (*Tree, error) {
	t := &Tree{Dir: dir, paths: map[string]string{}, info: map[string]Module{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walk %s: %w", p, err)
		}
		if d.IsDir() || !IsModuleFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return fmt.Errorf("name %s under %s: %w", p, dir, err)
		}
		name := NameOf(rel)
		if prev, dup := t.paths[name]; dup {
			return fmt.Errorf("module %s found twice: %s and %s", name, prev, rel)
		}
		t.paths[name] = filepath.ToSlash(rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	return t, nil
}

// Has reports whether the tree holds the module as a file (built-in
// modules are not files).
func (t *Tree) Has(name string) bool {
	_, ok := t.paths[Normalize(name)]
	return ok
}

// Module reads one module's metadata.
func (t *Tree) Module(name string) (Module, error) {
	name = Normalize(name)
	if m, ok := t.info[name]; ok {
		return m, nil
	}
	rel, ok := t.paths[name]
	if !ok {
		return Module{}, fmt.Errorf("module %s: not in %s", name, t.Dir)
	}
	img, err := ReadFile(filepath.Join(t.Dir, rel))
	if err != nil {
		return Module{}, fmt.Errorf("module %s: %w", name, err)
	}
	mi, err := ParseModinfo(img)
	if err != nil {
		return Module{}, fmt.Errorf("module %s (%s): %w", name, rel, err)
	}
	m := Module{Name: name, Path: rel, Depends: mi.Depends, Aliases: mi.Aliases}
	t.info[name] = m
	return m, nil
}

// Closure returns the named modules and everything they depend on, each
// once, dependencies before the modules that need them. Names that are not
// module files are reported in missing (the caller decides whether a
// built-in or absent driver matters).
func (t *Tree) Closure(names []string) (mods []Module, missing []string, err error) {
	seen := map[string]bool{}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		name = Normalize(name)
		if seen[name] {
			return nil
		}
		if slices.Contains(stack, name) {
			return fmt.Errorf("dependency cycle: %v → %s", stack, name)
		}
		if !t.Has(name) {
			missing = append(missing, name)
			seen[name] = true
			return nil
		}
		m, err := t.Module(name)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		for _, d := range m.Depends {
			if err := visit(d, append(stack, name)); err != nil {
				return err
			}
		}
		seen[name] = true
		mods = append(mods, m)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, nil, err
		}
	}
	return mods, missing, nil
}

// ReadModuleFile returns the module file's bytes as stored (compressed or not).
func (t *Tree) ReadModuleFile(m Module) ([]byte, error) {
	return os.ReadFile(filepath.Join(t.Dir, m.Path))
}
