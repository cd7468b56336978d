// Package initramfs assembles the discovery OS initramfs: a compressed
// newc cpio archive holding the agent as /init, the kernel modules the
// hardware may need with a modules.dep, modules.alias and modules.softdep
// for exactly that set, the firmware those modules ask for, pci.ids, and
// the directories and device nodes the agent expects. The appliance ISO's
// initramfs is built with it too, adding its own files (Spec.Files).
//
// With Spec.Compress set, every module is compressed on its own (zstd with
// a dictionary, or xz as Debian's later kernels ship them), and with
// Spec.FirmwareCompress every firmware file (xz): only what the hardware
// present uses is ever decompressed, by the agent's module loader and the
// kernel's firmware loader. Those files go into a first, uncompressed cpio
// archive and everything else into a second, compressed one; the kernel
// unpacks the concatenation (as it does early microcode), and nothing is
// compressed twice.
//
// The output is deterministic: entries are sorted, every time stamp is
// Spec.MTime, inode numbers are assigned in order and the compressed
// streams carry no name or time, so the same inputs give the same bytes.
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
	// Compression is the archive's compression: Gzip, XZ or Zstd.
	// Default (None): gzip.
	Compression Compression
	// Level is the gzip level. Default: gzip.BestCompression.
	Level int
	// Compress compresses each module on its own. XZ: modules become
	// .ko.xz. Zstd: modules become .ko.zst, compressed with a dictionary
	// trained on the set (kmod.DictFile next to the index), which makes
	// them about as small as xz and many times faster to decompress.
	// Default None: modules are stored as the kernel package has them.
	Compress Compression
	// FirmwareCompress, when XZ, compresses each firmware file on its own
	// (<name>.xz, which the kernel reads directly, after logging that the
	// uncompressed name failed). Default None: firmware goes into the
	// archive as it is.
	FirmwareCompress Compression
	// Cache is a directory where compressed modules and firmware are kept
	// by content, so that a rebuild compresses only what changed.
	// Default: none.
	Cache string
	// Firmware are files installed under /lib/firmware. Default: none.
	Firmware []Firmware
	// Links are symbolic links made in the image (the agent as
	// /sbin/modprobe). Default: none.
	Links []Link
	// Files are further files copied into the image, after everything
	// above; a Dst named twice, or naming an entry the image already has
	// (/init, a module, pci.ids, a directory), is an error. Default: none.
	Files []File
}

// Firmware is one firmware file for /lib/firmware.
type Firmware struct {
	// Name is the path under /lib/firmware that a driver asks for
	// ("rtl_nic/rtl8168e-3.fw").
	Name string
	// Src is the file on the build host; a symbolic link is followed.
	Src string
}

// Link is a symbolic link in the image.
type Link struct {
	// Path is where the link is ("/sbin/modprobe").
	Path string
	// Target is what it points to ("/init").
	Target string
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
	_, err := BuildReport(w, spec)
	return err
}

// Report says what an image holds.
type Report struct {
	// Sizes maps each regular file of the image ("lib/firmware/
	// tigon/tg3.bin.xz") to its size in the archive, compressed for the
	// files compressed one by one.
	Sizes map[string]int64
	// Stored is the size of the archive of files compressed one by one,
	// Compressed that of the compressed archive of everything else.
	Stored, Compressed int64
}

// BuildReport is Build, returning what went into the image.
func BuildReport(w io.Writer, spec Spec) (Report, error) {
	b := &builder{mtime: uint64(max(spec.MTime.Unix(), 0)), files: map[string]cpio.Record{},
		stored: map[string]bool{}, xz: &xzCache{dir: spec.Cache}}
	for _, d := range []string{"dev", "etc", "proc", "run", "sys", "usr/share/misc"} {
		b.dir(d, 0o755)
	}
	b.dir("tmp", 0o1777)
	b.node("dev/console", 0o600, 5, 1) // the kernel opens it for /init's stdio
	b.node("dev/null", 0o666, 1, 3)
	if spec.Compress != None && spec.Compress != XZ && spec.Compress != Zstd {
		return Report{}, fmt.Errorf("per-file compression %v: the loaders read back xz and zstd only", spec.Compress)
	}
	if spec.FirmwareCompress != None && spec.FirmwareCompress != XZ {
		return Report{}, fmt.Errorf("firmware compression %v: the kernel reads back xz only", spec.FirmwareCompress)
	}

	switch {
	case spec.Init != "" && spec.InitLink != "":
		return Report{}, fmt.Errorf("both Init (%s) and InitLink (%s) given", spec.Init, spec.InitLink)
	case spec.InitLink != "":
		if !path.IsAbs(spec.InitLink) {
			return Report{}, fmt.Errorf("InitLink %q is not an absolute path", spec.InitLink)
		}
		b.symlink("init", spec.InitLink)
	default:
		agent, err := os.ReadFile(spec.Init)
		if err != nil {
			return Report{}, fmt.Errorf("read agent: %w", err)
		}
		b.file("init", 0o755, agent)
	}
	if spec.PCIIDs != "" {
		ids, err := os.ReadFile(spec.PCIIDs)
		if err != nil {
			return Report{}, fmt.Errorf("read pci.ids: %w", err)
		}
		b.file("usr/share/misc/pci.ids", 0o644, ids)
	}
	if len(spec.Modules) > 0 {
		if err := b.modules(spec); err != nil {
			return Report{}, fmt.Errorf("add kernel modules: %w", err)
		}
	}
	if err := b.firmware(spec); err != nil {
		return Report{}, fmt.Errorf("add firmware: %w", err)
	}
	for _, f := range spec.Files {
		if err := b.extra(f); err != nil {
			return Report{}, fmt.Errorf("add %s: %w", f.Dst, err)
		}
	}
	for _, l := range spec.Links {
		name := strings.TrimPrefix(path.Clean(l.Path), "/")
		if !path.IsAbs(l.Path) || name == "" || l.Target == "" {
			return Report{}, fmt.Errorf("link %q → %q: want an absolute path and a target", l.Path, l.Target)
		}
		if _, dup := b.files[name]; dup {
			return Report{}, fmt.Errorf("link %s: the image already has /%s", l.Path, name)
		}
		b.symlink(name, l.Target)
	}
	if spec.InitLink != "" {
		// A dangling /init would only show as a kernel panic at boot.
		r, ok := b.files[strings.TrimPrefix(path.Clean(spec.InitLink), "/")]
		if !ok || r.Mode&cpio.S_IFMT != cpio.S_IFREG || r.Mode&0o111 == 0 {
			return Report{}, fmt.Errorf("InitLink %s is not an executable file of the image", spec.InitLink)
		}
	}
	return b.write(w, spec)
}

// write emits the archive: the files compressed one by one first, in an
// uncompressed cpio with their directories, then everything else in a
// compressed one.
func (b *builder) write(w io.Writer, spec Spec) (Report, error) {
	rep := Report{Sizes: map[string]int64{}}
	for n, r := range b.files {
		if r.Mode&cpio.S_IFMT == cpio.S_IFREG {
			rep.Sizes[n] = int64(r.FileSize)
		}
	}
	var stored, rest []string
	for n := range b.files {
		if b.stored[n] {
			stored = append(stored, n)
		} else {
			rest = append(rest, n)
		}
	}
	ino := uint64(0)
	if len(stored) > 0 {
		for _, n := range stored {
			for d := path.Dir(n); d != "."; d = path.Dir(d) {
				if !slices.Contains(stored, d) {
					stored = append(stored, d)
				}
			}
		}
		cw := &countingWriter{w: w}
		if err := b.writeCPIO(cw, stored, &ino); err != nil {
			return Report{}, err
		}
		// The kernel looks for the next archive at a 4-byte boundary;
		// 512 is what dracut pads early microcode to.
		if pad := (512 - cw.n%512) % 512; pad > 0 {
			if _, err := cw.Write(make([]byte, pad)); err != nil {
				return Report{}, fmt.Errorf("pad the stored archive: %w", err)
			}
		}
		rep.Stored = cw.n
	}
	out := &countingWriter{w: w}
	w = out
	switch spec.Compression {
	case None, Gzip:
		level := spec.Level
		if level == 0 {
			level = gzip.BestCompression
		}
		zw, err := gzip.NewWriterLevel(w, level)
		if err != nil {
			return Report{}, fmt.Errorf("gzip: %w", err)
		}
		if err := b.writeCPIO(zw, rest, &ino); err != nil {
			return Report{}, err
		}
		if err := zw.Close(); err != nil {
			return Report{}, fmt.Errorf("gzip: %w", err)
		}
	case XZ:
		var raw bytes.Buffer
		if err := b.writeCPIO(&raw, rest, &ino); err != nil {
			return Report{}, err
		}
		// The kernel's decoder handles the x86 branch filter (the agent is
		// most of this archive) and CRC32 checks only.
		z, err := xzRun(raw.Bytes(), "--x86", "--lzma2=preset=9")
		if err != nil {
			return Report{}, fmt.Errorf("compress the archive: %w", err)
		}
		if _, err := w.Write(z); err != nil {
			return Report{}, fmt.Errorf("write the archive: %w", err)
		}
	case Zstd:
		var raw bytes.Buffer
		if err := b.writeCPIO(&raw, rest, &ino); err != nil {
			return Report{}, err
		}
		z, err := zstdRun(raw.Bytes(), nil, "-19")
		if err != nil {
			return Report{}, fmt.Errorf("compress the archive: %w", err)
		}
		if _, err := w.Write(z); err != nil {
			return Report{}, fmt.Errorf("write the archive: %w", err)
		}
	default:
		return Report{}, fmt.Errorf("archive compression %v: want gzip, xz or zstd", spec.Compression)
	}
	rep.Compressed = out.n
	return rep, nil
}

// writeCPIO writes the named records sorted (parents before children) and
// a trailer.
func (b *builder) writeCPIO(w io.Writer, names []string, ino *uint64) error {
	slices.Sort(names)
	cw := cpio.Newc.Writer(w)
	for _, n := range names {
		rec := b.files[n]
		*ino++
		rec.Ino = *ino
		if err := cw.WriteRecord(rec); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
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
	data := make([][]byte, len(mods))
	for i, m := range mods {
		if data[i], err = tree.ReadModuleFile(m); err != nil {
			return fmt.Errorf("read module %s: %w", m.Name, err)
		}
	}
	var todo []int
	for i, m := range mods {
		if strings.HasSuffix(m.Path, ".ko") {
			todo = append(todo, i)
		}
	}
	switch spec.Compress {
	case XZ:
		// Small dictionaries: no module is near 8 MiB, and the agent's
		// decoder allocates what the header asks for.
		if err := b.xz.each(todo, func(i int) (err error) {
			data[i], err = b.xz.compress(data[i], "--lzma2=preset=9,dict=8MiB")
			return err
		}); err != nil {
			return fmt.Errorf("compress modules: %w", err)
		}
		for _, i := range todo {
			mods[i].Path += ".xz"
		}
	case Zstd:
		samples := make([][]byte, len(todo))
		for j, i := range todo {
			samples[j] = data[i]
		}
		dict, err := b.xz.trainDict(samples)
		if err != nil {
			return fmt.Errorf("train the modules' zstd dictionary: %w", err)
		}
		if err := b.xz.each(todo, func(i int) (err error) {
			data[i], err = b.xz.zstd(data[i], dict)
			return err
		}); err != nil {
			return fmt.Errorf("compress modules: %w", err)
		}
		for _, i := range todo {
			mods[i].Path += ".zst"
		}
		if dict != nil {
			b.file(base+"/"+kmod.DictFile, 0o644, dict)
		}
	}
	for i, m := range mods {
		b.file(base+"/"+m.Path, 0o644, data[i])
		b.stored[base+"/"+m.Path] = !strings.HasSuffix(m.Path, ".ko")
	}
	var dep, alias, soft bytes.Buffer
	if err := kmod.WriteDep(&dep, mods); err != nil {
		return fmt.Errorf("write %s/modules.dep: %w", base, err)
	}
	if err := kmod.WriteAlias(&alias, mods); err != nil {
		return fmt.Errorf("write %s/modules.alias: %w", base, err)
	}
	if err := kmod.WriteSoftdep(&soft, mods); err != nil {
		return fmt.Errorf("write %s/modules.softdep: %w", base, err)
	}
	b.file(base+"/modules.dep", 0o644, dep.Bytes())
	b.file(base+"/modules.alias", 0o644, alias.Bytes())
	b.file(base+"/modules.softdep", 0o644, soft.Bytes())
	return nil
}

// firmware adds Spec.Firmware under lib/firmware, each compressed on its
// own when Spec.FirmwareCompress says so (the kernel's loader tries <name>.xz after
// <name>).
func (b *builder) firmware(spec Spec) error {
	data := make([][]byte, len(spec.Firmware))
	names := make([]string, len(spec.Firmware))
	for i, f := range spec.Firmware {
		clean := path.Clean(f.Name)
		if f.Name == "" || path.IsAbs(f.Name) || clean != f.Name || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("firmware name %q is not a clean relative path", f.Name)
		}
		names[i] = "lib/firmware/" + clean
		if _, dup := b.files[names[i]]; dup || slices.Contains(names[:i], names[i]) {
			return fmt.Errorf("firmware %s named twice", f.Name)
		}
		var err error
		if data[i], err = os.ReadFile(f.Src); err != nil {
			return fmt.Errorf("read %s: %w", f.Name, err)
		}
	}
	if spec.FirmwareCompress == XZ {
		idx := make([]int, len(data))
		for i := range idx {
			idx[i] = i
		}
		if err := b.xz.each(idx, func(i int) (err error) {
			data[i], err = b.xz.compress(data[i], "--lzma2=preset=9")
			return err
		}); err != nil {
			return fmt.Errorf("compress firmware: %w", err)
		}
		for i := range names {
			names[i] += ".xz"
		}
	}
	for i, n := range names {
		b.file(n, 0o644, data[i])
		b.stored[n] = spec.FirmwareCompress == XZ
	}
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
	mtime  uint64
	files  map[string]cpio.Record
	stored map[string]bool // compressed on their own: the stored archive
	xz     *xzCache
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
