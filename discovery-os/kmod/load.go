package kmod

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Loader loads modules and their dependencies from one module directory.
type Loader struct {
	// Dir is the module directory (/lib/modules/<version>).
	Dir string
	// Index is Dir's modules.dep and modules.alias.
	Index *Index
	// Insert loads one module file into the kernel; an already loaded
	// module must not be an error. Default: finit_module(2), or
	// init_module(2) on the decompressed image for .ko.xz/.ko.zst.
	Insert func(path string) error
	// Log receives each module loaded and each failure. Default: silent.
	Log *slog.Logger

	loaded map[string]bool
}

func (l *Loader) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Load loads the named module after its dependencies. Loading a module
// twice is a no-op.
func (l *Loader) Load(name string) error {
	name = Normalize(name)
	if l.loaded == nil {
		l.loaded = map[string]bool{}
	}
	if l.loaded[name] {
		return nil
	}
	rel, ok := l.Index.Paths[name]
	if !ok {
		return fmt.Errorf("load module %s: not in modules.dep", name)
	}
	deps := l.Index.Deps[name]
	for i := len(deps) - 1; i >= 0; i-- {
		if err := l.Load(deps[i]); err != nil {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	insert := l.Insert
	if insert == nil {
		insert = insertModule
	}
	if err := insert(filepath.Join(l.Dir, rel)); err != nil {
		return fmt.Errorf("load module %s: %w", name, err)
	}
	l.loaded[name] = true
	l.log().Info("module loaded", "module", name)
	return nil
}

// Loaded lists the modules loaded so far, sorted.
func (l *Loader) Loaded() []string {
	var out []string
	for n := range l.loaded {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// LoadForDevices loads the modules whose aliases match the modalias of any
// device under sysRoot/bus/*/devices, repeating while new modules appear,
// because a loaded bus driver (virtio_pci, a SCSI HBA) creates devices that
// need drivers of their own. It returns every load failure joined; the
// modules that did load stay loaded.
func (l *Loader) LoadForDevices(sysRoot string) error {
	var errs []error
	failed := map[string]bool{}
	for round := 0; round < 8; round++ {
		progress := false
		for _, alias := range Modaliases(sysRoot) {
			for _, mod := range l.Index.Match(alias) {
				if l.loaded[mod] || failed[mod] {
					continue
				}
				if err := l.Load(mod); err != nil {
					failed[mod] = true
					errs = append(errs, err)
					l.log().Warn("module load failed", "module", mod, "modalias", alias, "err", err)
					continue
				}
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	return errors.Join(errs...)
}

// Modaliases returns the modalias of every device on every bus under
// sysRoot (normally "/sys"), sorted and without duplicates.
func Modaliases(sysRoot string) []string {
	files, _ := filepath.Glob(filepath.Join(sysRoot, "bus", "*", "devices", "*", "modalias"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if a := strings.TrimSpace(string(b)); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}
