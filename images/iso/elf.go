package iso

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/initramfs"
)

// hostLibDirs are where Debian's amd64 dynamic linker looks for libraries
// when there is no ld.so.cache (the image has none): its built-in
// multiarch directories.
var hostLibDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}

// libraries returns what the dynamically linked programs need to run in
// the image: their ELF interpreter (PT_INTERP) at the path the programs
// name, and every shared library in the closure of their DT_NEEDED entries,
// found in the first of dirs that has it and installed under that same
// path. It does the dynamic linker's search without running anything of
// the programs (no ldd), so it works for programs of another root too.
func libraries(progs []string, dirs []string) ([]initramfs.File, error) {
	var files []initramfs.File
	have := map[string]bool{} // sonames resolved, and the interpreter's base name
	var visit func(file string) error
	visit = func(file string) error {
		f, err := elf.Open(file)
		if err != nil {
			return fmt.Errorf("read ELF: %w", err)
		}
		defer f.Close()
		// A run path would change where the linker looks; none of the
		// programs we copy has one, and guessing would copy the wrong file.
		for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
			if rp, _ := f.DynString(tag); len(rp) > 0 {
				return fmt.Errorf("%s has %v %v, which this resolver does not follow", file, tag, rp)
			}
		}
		interp, err := interpreter(f)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		// The interpreter is loaded once, by the kernel; its soname
		// (libc's DT_NEEDED names it too) needs no second copy.
		if interp != "" && !have[path.Base(interp)] {
			have[path.Base(interp)] = true
			files = append(files, initramfs.File{Src: interp, Dst: interp})
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: read DT_NEEDED: %w", file, err)
		}
		for _, soname := range needed {
			if have[soname] {
				continue
			}
			have[soname] = true
			lib, err := findLibrary(soname, dirs)
			if err != nil {
				return fmt.Errorf("%s needs %s: %w", file, soname, err)
			}
			files = append(files, initramfs.File{Src: lib, Dst: lib})
			if err := visit(lib); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range progs {
		if err := visit(p); err != nil {
			return nil, fmt.Errorf("libraries of %s: %w", p, err)
		}
	}
	return files, nil
}

// interpreter returns the program's PT_INTERP path, "" for a static one.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read PT_INTERP: %w", err)
		}
		s := strings.TrimRight(string(b), "\x00")
		if !path.IsAbs(s) {
			return "", fmt.Errorf("PT_INTERP %q is not an absolute path", s)
		}
		return s, nil
	}
	return "", nil
}

func findLibrary(soname string, dirs []string) (string, error) {
	if strings.Contains(soname, "/") {
		return "", fmt.Errorf("DT_NEEDED %q holds a path", soname)
	}
	for _, d := range dirs {
		p := filepath.Join(d, soname)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("look in %s: %w", d, err)
		}
	}
	return "", fmt.Errorf("not found in %v", dirs)
}

// checkStatic refuses a program that needs a dynamic linker: /init and
// foundry run before, and without, any library in the image, and a
// dynamically linked one would fail at boot with only "not found".
func checkStatic(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	interp, err := interpreter(f)
	if err != nil {
		return err
	}
	if interp != "" {
		return fmt.Errorf("dynamically linked (interpreter %s): build it with CGO_ENABLED=0", interp)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN || f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("not an x86-64 executable (%v, %v)", f.Type, f.Machine)
	}
	return nil
}
