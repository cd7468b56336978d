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
	m := Module{Name: name, Path: rel, Depends: mi.Depends, Aliases: mi.Aliases,
		SoftPre: mi.SoftPre, SoftPost: mi.SoftPost, Firmware: mi.Firmware}
	t.info[name] = m
	return m, nil
}

// Names lists the module files of the tree by name, sorted.
func (t *Tree) Names() []string {
	out := make([]string, 0, len(t.paths))
	for n := range t.paths {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Path returns a module's file relative to Dir ("kernel/drivers/net/
// virtio_net.ko"), or "" when the tree has no such module file.
func (t *Tree) Path(name string) string { return t.paths[Normalize(name)] }

// Resolve returns the modules a softdep word names: the module of that
// name, or else every module with an alias matching it ("crc32c" →
// crc32c_generic, crc32c_intel), as modprobe resolves it. Matching an
// alias reads every module of the tree once.
func (t *Tree) Resolve(word string) ([]string, error) {
	if t.Has(word) {
		return []string{Normalize(word)}, nil
	}
	var out []string
	for _, n := range t.Names() {
		m, err := t.Module(n)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(m.Aliases, func(a string) bool { return Glob(a, word) }) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Closure returns the named modules and everything they depend on, each
// once, dependencies before the modules that need them. Soft dependencies
// come along too, resolved to module names (a softdep that names nothing
// in the tree is dropped: it is soft). Names that are not module files are
// reported in missing (the caller decides whether a built-in or absent
// driver matters).
func (t *Tree) Closure(names []string) (mods []Module, missing []string, err error) {
	seen := map[string]bool{}
	var visit func(name string, stack []string, soft bool) error
	resolve := func(words []string, stack []string) ([]string, error) {
		var out []string
		for _, w := range words {
			rs, err := t.Resolve(w)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if slices.Contains(out, r) {
					continue
				}
				out = append(out, r)
				if slices.Contains(stack, r) {
					continue // a soft cycle is not an error: the loader breaks it too
				}
				if err := visit(r, stack, true); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	}
	visit = func(name string, stack []string, soft bool) error {
		name = Normalize(name)
		if seen[name] {
			return nil
		}
		if slices.Contains(stack, name) {
			return fmt.Errorf("dependency cycle: %v → %s", stack, name)
		}
		if !t.Has(name) {
			if !soft {
				missing = append(missing, name)
			}
			seen[name] = true
			return nil
		}
		m, err := t.Module(name)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		stack = append(stack, name)
		for _, d := range m.Depends {
			if err := visit(d, stack, false); err != nil {
				return err
			}
		}
		if m.SoftPre, err = resolve(m.SoftPre, stack); err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		seen[name] = true
		mods = append(mods, m)
		// Post-softdeps are recorded on the module in mods; the slice
		// element is updated once they are resolved.
		i := len(mods) - 1
		post, err := resolve(m.SoftPost, stack)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		mods[i].SoftPost = post
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil, false); err != nil {
			return nil, nil, err
		}
	}
	return mods, missing, nil
}

// ReadModuleFile returns the module file's bytes as stored (compressed or not).
func (t *Tree) ReadModuleFile(m Module) ([]byte, error) {
	return os.ReadFile(filepath.Join(t.Dir, m.Path))
}
