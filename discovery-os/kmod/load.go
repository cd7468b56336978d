package kmod

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Loader loads modules and their dependencies from one module directory.
// Its methods may be called from several goroutines (a hotplug watcher and
// the caller's own loads): loads happen one at a time.
type Loader struct {
	// Dir is the module directory (/lib/modules/<version>).
	Dir string
	// Index is Dir's modules.dep, modules.alias and modules.softdep.
	Index *Index
	// Insert loads one module file into the kernel; an already loaded
	// module must not be an error. Default: finit_module(2), or
	// init_module(2) on the decompressed image for .ko.xz/.ko.zst (with
	// Index.Dict).
	Insert func(path string) error
	// Log receives each module loaded and each failure. Default: silent.
	Log *slog.Logger
	// Now is the clock of Settle. Default time.Now.
	Now func() time.Time

	mu       sync.Mutex
	loaded   map[string]bool
	failed   map[string]bool     // modalias matches that failed once are not retried
	matched  map[string]struct{} // modaliases already matched
	activity time.Time           // last module loaded or device announced
}

func (l *Loader) log() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (l *Loader) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Load loads the named module after its dependencies and its soft
// pre-dependencies, and then its soft post-dependencies. Loading a module
// twice is a no-op; a soft dependency that fails is logged, not returned.
func (l *Loader) Load(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.load(name, nil)
}

func (l *Loader) load(name string, stack []string) error {
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
	stack = append(stack, name)
	soft := func(names []string) {
		for _, s := range names {
			if slices.Contains(stack, s) {
				continue
			}
			if err := l.load(s, stack); err != nil {
				l.log().Warn("soft dependency not loaded", "module", name, "softdep", s, "err", err)
			}
		}
	}
	soft(l.Index.SoftPre[name])
	deps := l.Index.Deps[name]
	for i := len(deps) - 1; i >= 0; i-- {
		if err := l.load(deps[i], stack); err != nil {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	insert := l.Insert
	if insert == nil {
		insert = func(p string) error { return insertModule(p, l.Index.Dict) }
	}
	if err := insert(filepath.Join(l.Dir, rel)); err != nil {
		return fmt.Errorf("load module %s: %w", name, err)
	}
	l.loaded[name] = true
	l.activity = l.now()
	l.log().Info("module loaded", "module", name)
	soft(l.Index.SoftPost[name])
	return nil
}

// Loaded lists the modules loaded so far, sorted.
func (l *Loader) Loaded() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
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
// need drivers of their own. Devices that appear later (a SCSI scan or USB
// enumeration still running) are Watch's. It returns every load failure
// joined; the modules that did load stay loaded.
func (l *Loader) LoadForDevices(sysRoot string) error {
	var errs []error
	for round := 0; round < 8; round++ {
		progress := false
		for _, alias := range Modaliases(sysRoot) {
			n, err := l.LoadFor(alias)
			if err != nil {
				errs = append(errs, err)
			}
			progress = progress || n > 0
		}
		if !progress {
			break
		}
	}
	return errors.Join(errs...)
}

// LoadFor loads the modules matching one device's modalias and returns how
// many it loaded. A modalias seen before, and a module that failed before,
// are not tried again.
func (l *Loader) LoadFor(modalias string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.matched == nil {
		l.matched, l.failed = map[string]struct{}{}, map[string]bool{}
	}
	if _, ok := l.matched[modalias]; ok {
		return 0, nil
	}
	l.matched[modalias] = struct{}{}
	var errs []error
	n := 0
	for _, mod := range l.Index.Match(modalias) {
		if l.loaded[mod] || l.failed[mod] {
			continue
		}
		if err := l.load(mod, nil); err != nil {
			l.failed[mod] = true
			errs = append(errs, err)
			l.log().Warn("module load failed", "module", mod, "modalias", modalias, "err", err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Probe loads what a modprobe request names, as the kernel's
// request_module asks for it: a module name ("mlx4_en") or an alias
// ("mdio:0000…", "crypto-crc32c", "net-pf-17"), every module matching the
// alias. It returns the modules it found (loaded now or before) and an
// error when none is known or one failed.
func (l *Loader) Probe(name string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mods := []string{Normalize(name)}
	if _, ok := l.Index.Paths[mods[0]]; !ok {
		mods = l.Index.Match(name)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("modprobe %s: no module or alias of that name", name)
	}
	var errs []error
	for _, m := range mods {
		if err := l.load(m, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return mods, errors.Join(errs...)
}

// Match returns the modules of the index matching a modalias; unlike
// Index.Match, it may be called while Watch runs.
func (l *Loader) Match(modalias string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Index.Match(modalias)
}

// Quiet returns how long ago the last module was loaded or device
// announced (Watch counts its start as activity); zero before any.
func (l *Loader) Quiet() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.activity.IsZero() {
		return 0
	}
	return l.now().Sub(l.activity)
}

// touch records activity: a device announced by the kernel.
func (l *Loader) touch() {
	l.mu.Lock()
	l.activity = l.now()
	l.mu.Unlock()
}

// Modaliases returns the modalias of every device on every bus under
// sysRoot (normally "/sys"), sorted and without duplicates. A device
// without a modalias file (an MMC card) is read from its uevent's
// MODALIAS line.
func Modaliases(sysRoot string) []string {
	devs, _ := filepath.Glob(filepath.Join(sysRoot, "bus", "*", "devices", "*"))
	var out []string
	for _, d := range devs {
		a := ""
		if b, err := os.ReadFile(filepath.Join(d, "modalias")); err == nil {
			a = strings.TrimSpace(string(b))
		} else if b, err := os.ReadFile(filepath.Join(d, "uevent")); err == nil {
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "MODALIAS="); ok {
					a = v
				}
			}
		}
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}
