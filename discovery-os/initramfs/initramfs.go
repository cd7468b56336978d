// Package initramfs assembles the discovery OS initramfs: a gzip-compressed
// newc cpio archive holding the agent as /init, the kernel modules the
// hardware may need with a modules.dep and modules.alias for exactly that
// set, pci.ids, and the directories and device nodes the agent expects.
// The appliance ISO's initramfs is built with it too, adding its own files
// (Spec.Files).
//
// The output is deterministic: entries are sorted, every time stamp is
// Spec.MTime, inode numbers are assigned in order and the gzip header
// carries no name or time, so the same inputs give the same bytes.
package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"
)

// Spec says what goes into the image.
type Spec struct {
	// Init is the path of the agent binary; it becomes /init (mode 0755).
	// Required unless InitLink is set.
	Init string
	// InitLink, instead of Init, makes /init a symbolic link to a program
	// of the image (one of Files, "/usr/bin/foundry"): a multi-call binary
	// that is its own init. Default: none.
	InitLink string
	// ModuleDir is the kernel's module directory (…/lib/modules/<version>).
	// Optional when Modules is empty.
	ModuleDir string
	// KernelVersion names /lib/modules/<KernelVersion> in the image.
	// Default: the base name of ModuleDir.
	KernelVersion string
	// Modules names the modules to include; their dependencies come along.
	// A name that is not a module file (built into the kernel, or absent)
	// is an error unless listed in Optional.
	Modules []string
	// Optional names modules that may be missing from ModuleDir.
	Optional []string
	// PCIIDs is the pci.ids file installed as /usr/share/misc/pci.ids.
	// Default: none.
	PCIIDs string
	// MTime is the time stamp of every entry. Default: the Unix epoch.
	MTime time.Time
	// Level is the gzip level. Default: gzip.BestCompression.
	Level int
	// Files are further files copied into the image, after everything
	// above; a Dst named twice, or naming an entry the image already has
	// (/init, a module, pci.ids, a directory), is an error. Default: none.
	Files []File
}

// File is one file copied from the build host into the image.
type File struct {
	// Src is the file on the build host; a symbolic link is followed.
	Src string
	// Dst is the absolute path in the image ("/sbin/mke2fs"); missing
	// parent directories are created with mode 0755.
	Dst string
	// Mode holds the permission bits in the image. Default (0): those of
	// Src.
	Mode os.FileMode
}

// Build writes the compressed archive for spec to w.
func Build(w io.Writer, spec Spec) error {
	b := &builder{mtime: uint64(max(spec.MTime.Unix(), 0)), files: map[string]cpio.Record{}}
	for _, d := range []string{"dev", "etc", "proc", "run", "sys", "usr/share/misc"} {
		b.dir(d, 0o755)
	}
	b.dir("tmp", 0o1777)
	b.node("dev/console", 0o600, 5, 1) // the kernel opens it for /init's stdio
	b.node("dev/null", 0o666, 1, 3)

	switch {
	case spec.Init != "" && spec.InitLink != "":
		return fmt.Errorf("both Init (%s) and InitLink (%s) given", spec.Init, spec.InitLink)
	case spec.InitLink != "":
		if !path.IsAbs(spec.InitLink) {
			return fmt.Errorf("InitLink %q is not an absolute path", spec.InitLink)
		}
		b.symlink("init", spec.InitLink)
	default:
		agent, err := os.ReadFile(spec.Init)
		if err != nil {
			return fmt.Errorf("read agent: %w", err)
		}
		b.file("init", 0o755, agent)
	}
	if spec.PCIIDs != "" {
		ids, err := os.ReadFile(spec.PCIIDs)
		if err != nil {
			return fmt.Errorf("read pci.ids: %w", err)
		}
		b.file("usr/share/misc/pci.ids", 0o644, ids)
	}
	if len(spec.Modules) > 0 {
		if err := b.modules(spec); err != nil {
			return fmt.Errorf("add kernel modules: %w", err)
		}
	}
	for _, f := range spec.Files {
		if err := b.extra(f); err != nil {
			return fmt.Errorf("add %s: %w", f.Dst, err)
		}
	}
	if spec.InitLink != "" {
		// A dangling /init would only show as a kernel panic at boot.
		r, ok := b.files[strings.TrimPrefix(path.Clean(spec.InitLink), "/")]
		if !ok || r.Mode&cpio.S_IFMT != cpio.S_IFREG || r.Mode&0o111 == 0 {
			return fmt.Errorf("InitLink %s is not an executable file of the image", spec.InitLink)
		}
	}

	level := spec.Level
	if level == 0 {
		level = gzip.BestCompression
	}
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	cw := cpio.Newc.Writer(zw)
	names := make([]string, 0, len(b.files))
	for n := range b.files {
		names = append(names, n)
	}
	slices.Sort(names) // parents sort before their children
	for i, n := range names {
		rec := b.files[n]
		rec.Ino = uint64(i + 1)
		if err := cw.WriteRecord(rec); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip: %w", err)
	}
	return nil
}

// modules adds the selected modules, their dependencies and the index files.
func (b *builder) modules(spec Spec) error {
	tree, err := kmod.OpenTree(spec.ModuleDir)
	if err != nil {
		return fmt.Errorf("open module tree %s: %w", spec.ModuleDir, err)
	}
	mods, missing, err := tree.Closure(spec.Modules)
	if err != nil {
		return fmt.Errorf("select modules: %w", err)
	}
	for _, m := range missing {
		if !slices.Contains(spec.Optional, m) {
			return fmt.Errorf("select modules: %s is not a module file in %s", m, spec.ModuleDir)
		}
	}
	version := spec.KernelVersion
	if version == "" {
		version = filepath.Base(spec.ModuleDir)
	}
	base := "lib/modules/" + version
	for _, m := range mods {
		data, err := tree.ReadModuleFile(m)
		if err != nil {
			return fmt.Errorf("read module %s: %w", m.Name, err)
		}
		b.file(base+"/"+m.Path, 0o644, data)
	}
	var dep, alias bytes.Buffer
	if err := kmod.WriteDep(&dep, mods); err != nil {
		return fmt.Errorf("write %s/modules.dep: %w", base, err)
	}
	if err := kmod.WriteAlias(&alias, mods); err != nil {
		return fmt.Errorf("write %s/modules.alias: %w", base, err)
	}
	b.file(base+"/modules.dep", 0o644, dep.Bytes())
	b.file(base+"/modules.alias", 0o644, alias.Bytes())
	return nil
}

// extra adds one of Spec.Files. Unlike the builder's own entries, which
// are known not to collide, these come from the caller and are checked.
func (b *builder) extra(f File) error {
	if !path.IsAbs(f.Dst) {
		return fmt.Errorf("destination %q is not an absolute path", f.Dst)
	}
	name := strings.TrimPrefix(path.Clean(f.Dst), "/")
	if name == "" {
		return fmt.Errorf("destination %q is the root directory", f.Dst)
	}
	if _, dup := b.files[name]; dup {
		return fmt.Errorf("the image already has /%s", name)
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if r, ok := b.files[d]; ok && r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			return fmt.Errorf("parent /%s is not a directory in the image", d)
		}
	}
	st, err := os.Stat(f.Src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("source %s is not a regular file", f.Src)
	}
	data, err := os.ReadFile(f.Src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	perm := f.Mode.Perm()
	if f.Mode == 0 {
		perm = st.Mode().Perm()
	}
	b.file(name, uint64(perm), data)
	return nil
}

// builder collects records by name; parent directories are added as needed.
type builder struct {
	mtime uint64
	files map[string]cpio.Record
}

func (b *builder) dir(name string, perm uint64) {
	if name == "." || name == "" {
		return
	}
	if _, ok := b.files[name]; ok {
		return
	}
	b.dir(path.Dir(name), 0o755)
	b.files[name] = cpio.Record{ReaderAt: bytes.NewReader(nil), Info: cpio.Info{
		Name: name, Mode: cpio.S_IFDIR | perm, NLink: 2, MTime: b.mtime}}
}

func (b *builder) file(name string, perm uint64, data []byte) {
	b.dir(path.Dir(name), 0o755)
	b.files[name] = cpio.Record{ReaderAt: bytes.NewReader(data), Info: cpio.Info{
		Name: name, Mode: cpio.S_IFREG | perm, NLink: 1, MTime: b.mtime, FileSize: uint64(len(data))}}
}

func (b *builder) symlink(name, target string) {
	b.dir(path.Dir(name), 0o755)
	r := cpio.Symlink(name, target)
	r.MTime = b.mtime
	b.files[name] = r
}

func (b *builder) node(name string, perm uint64, major, minor uint64) {
	b.dir(path.Dir(name), 0o755)
	b.files[name] = cpio.Record{ReaderAt: bytes.NewReader(nil), Info: cpio.Info{
		Name: name, Mode: cpio.S_IFCHR | perm, NLink: 1, MTime: b.mtime, Rmajor: major, Rminor: minor}}
}
