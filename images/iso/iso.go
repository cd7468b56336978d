// Package iso builds the Foundry appliance ISO: one hybrid image that
// boots from a CD and from a USB stick, under BIOS and UEFI, made with
// Debian's grub-mkrescue and xorriso. It holds GRUB, Debian's packaged
// kernel (the same package as the discovery image) as /boot/vmlinuz, and
// one initramfs as /boot/initrd.img with everything the appliance runs —
// nothing is read from the boot medium after GRUB:
//
//	/init                                  a link to /usr/bin/foundry
//	/usr/bin/foundry                       foundry (static): as PID 1, the appliance init
//	/usr/share/foundry/images/discovery/   vmlinuz, initrd, manifest.json
//	/usr/share/foundry/images/ipxe/        the iPXE binaries
//	/lib/modules/<release>/                NIC, disk, ext4, USB, input drivers
//	/sbin/mke2fs, /sbin/e2fsck             the build host's, with their libraries
//	/usr/bin/qemu-img, /usr/bin/ipmitool   likewise (qcow2 imports, IPMI power)
//	/etc/mke2fs.conf, /usr/share/misc/pci.ids
//
// Build writes the ISO and, next to it, <iso>.json: the Result, with each
// part's size, so that the budget can be kept and explained.
package iso

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/debkernel"
	"github.com/foundry-appliance/foundry/discovery-os/initramfs"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/klauspost/compress/gzip"
)

// Spec says what goes into the ISO. KernelDeb, Foundry, DiscoveryDir,
// IPXEDir and Out are required.
type Spec struct {
	// KernelDeb is Debian's linux-image package (.deb) whose kernel and
	// modules the appliance runs; build/kernel/current names the one the
	// discovery image is built from.
	KernelDeb string
	// Foundry is the static foundry binary, installed as /usr/bin/foundry
	// and linked as /init: started as PID 1, foundry is the appliance's
	// init (package appliance), so the init costs no second copy of the
	// libraries it shares with foundry.
	Foundry string
	// DiscoveryDir holds the discovery image (vmlinuz, initrd,
	// manifest.json), installed under /usr/share/foundry/images/discovery/.
	// Its manifest must name the same kernel release as KernelDeb.
	DiscoveryDir string
	// IPXEDir holds the iPXE binaries (undionly.kpxe, ipxe.efi,
	// snponly.efi and any other file in it), installed under
	// /usr/share/foundry/images/ipxe/.
	IPXEDir string
	// PCIIDs is installed as /usr/share/misc/pci.ids.
	// Default: /usr/share/misc/pci.ids.
	PCIIDs string
	// Version names the ISO's volume (VolumeID) and its boot menu entries;
	// letters, digits and . _ + ~ - only. Default: "dev".
	Version string
	// Out is the ISO file to write; <Out>.json receives the Result.
	Out string
	// Budget is the largest ISO in bytes; a bigger one is an error and is
	// not written. Default (0): no limit.
	Budget int64
	// GrubMkrescue is the grub-mkrescue program. Default: grub-mkrescue
	// from PATH.
	GrubMkrescue string
	// Mke2fs, E2fsck and Mke2fsConf are installed as /sbin/mke2fs,
	// /sbin/e2fsck and /etc/mke2fs.conf, with the programs' shared
	// libraries. Default: the build host's /sbin/mke2fs, /sbin/e2fsck and
	// /etc/mke2fs.conf (Debian's e2fsprogs).
	Mke2fs, E2fsck, Mke2fsConf string
	// QemuImg is installed as /usr/bin/qemu-img, with its libraries: the
	// image library converts qcow2 imports with it. Default: the build
	// host's /usr/bin/qemu-img (Debian's qemu-utils).
	QemuImg string
	// IPMITool is installed as /usr/bin/ipmitool, with its libraries:
	// bmclib drives IPMI BMCs through it (power control). Default: the
	// build host's /usr/bin/ipmitool (Debian's ipmitool).
	IPMITool string
	// Cache is a directory where the xz-compressed kernel modules are
	// kept by content between builds (xz is slow; a rebuild then
	// compresses only what changed). Default: none.
	Cache string
	// LibDirs are searched, in order, for the programs' shared libraries.
	// Default: /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu.
	LibDirs []string
	// Log receives progress. Default (nil): silent.
	Log *slog.Logger
}

// Result describes a built ISO; it is also written as <Out>.json.
type Result struct {
	Version  string `json:"version"`
	ISO      string `json:"iso"`
	VolumeID string `json:"volume_id"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	// Budget is Spec.Budget (0: none).
	Budget        int64  `json:"budget"`
	KernelPackage string `json:"kernel_package"`
	KernelVersion string `json:"kernel_version"` // the package version
	KernelRelease string `json:"kernel_release"` // uname -r
	// Kernel and Initrd are the sizes of /boot/vmlinuz and
	// /boot/initrd.img; GRUB is the rest of the ISO: GRUB's BIOS and EFI
	// images and modules, and the file systems around them.
	Kernel int64 `json:"kernel_bytes"`
	Initrd int64 `json:"initrd_bytes"`
	GRUB   int64 `json:"grub_bytes"`
	// Parts break the initramfs down.
	Parts []Part `json:"initramfs_parts"`
	// Modules are the kernel modules in the initramfs, dependencies
	// included, dependencies first.
	Modules      []string `json:"modules"`
	BuildSeconds float64  `json:"build_seconds"`
}

// Part is one component of the initramfs.
type Part struct {
	Name  string `json:"name"`
	Files int    `json:"files"`
	// Bytes is its files' size in the image; Compressed is what they
	// compress to on their own at the initramfs's gzip level (the parts'
	// sum is close to the initrd's size).
	Bytes      int64 `json:"bytes"`
	Compressed int64 `json:"compressed"`
}

// Image paths of the appliance's files, which the init (package
// appliance, foundry as PID 1) relies on.
const (
	FoundryPath   = "/usr/bin/foundry"
	DiscoveryPath = "/usr/share/foundry/images/discovery"
	IPXEPath      = "/usr/share/foundry/images/ipxe"
)

// initrdLevel is the initramfs's gzip level. The default level, not the
// best: on the foundry binary and the largest modules the best one saves
// 2.3% (10.66 → 10.41 MB) and takes fourteen times as long (0.3 → 4.2 s).
const initrdLevel = gzip.DefaultCompression

var versionRE = regexp.MustCompile(`^[A-Za-z0-9._+~-]{1,64}$`)

func (s Spec) withDefaults() (Spec, error) {
	for _, req := range []struct{ name, val string }{
		{"KernelDeb", s.KernelDeb}, {"Foundry", s.Foundry},
		{"DiscoveryDir", s.DiscoveryDir}, {"IPXEDir", s.IPXEDir}, {"Out", s.Out},
	} {
		if req.val == "" {
			return s, fmt.Errorf("spec: %s is required", req.name)
		}
	}
	if s.Version == "" {
		s.Version = "dev"
	}
	if !versionRE.MatchString(s.Version) {
		return s, fmt.Errorf("spec: version %q: want 1-64 of letters, digits and . _ + ~ -", s.Version)
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&s.PCIIDs, "/usr/share/misc/pci.ids")
	def(&s.GrubMkrescue, "grub-mkrescue")
	def(&s.Mke2fs, "/sbin/mke2fs")
	def(&s.E2fsck, "/sbin/e2fsck")
	def(&s.Mke2fsConf, "/etc/mke2fs.conf")
	def(&s.QemuImg, "/usr/bin/qemu-img")
	def(&s.IPMITool, "/usr/bin/ipmitool")
	if len(s.LibDirs) == 0 {
		s.LibDirs = hostLibDirs
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Build writes the ISO for spec to spec.Out and its Result to
// spec.Out+".json".
func Build(ctx context.Context, spec Spec) (Result, error) {
	start := time.Now()
	s, err := spec.withDefaults()
	if err != nil {
		return Result{}, err
	}
	r := Result{Version: s.Version, ISO: s.Out, VolumeID: VolumeID(s.Version), Budget: s.Budget}
	work, err := os.MkdirTemp("", "mkiso-")
	if err != nil {
		return r, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(work)

	k, err := debkernel.Unpack(ctx, s.KernelDeb, filepath.Join(work, "kernel"))
	if err != nil {
		return r, fmt.Errorf("kernel package %s: %w", s.KernelDeb, err)
	}
	r.KernelPackage, r.KernelVersion, r.KernelRelease = k.Package, k.Version, k.Release
	tree, err := kmod.OpenTree(k.ModuleDir)
	if err != nil {
		return r, fmt.Errorf("open module tree of %s: %w", k.Release, err)
	}
	names, err := selectModules(tree)
	if err != nil {
		return r, fmt.Errorf("select modules of %s: %w", k.Release, err)
	}
	mods, _, err := tree.Closure(names)
	if err != nil {
		return r, fmt.Errorf("resolve module dependencies of %s: %w", k.Release, err)
	}
	for _, m := range mods {
		r.Modules = append(r.Modules, m.Name)
	}
	parts, err := s.parts(k, tree, mods)
	if err != nil {
		return r, err
	}
	var files []initramfs.File
	for _, p := range parts {
		files = append(files, p.files...)
	}

	root := filepath.Join(work, "iso")
	if err := os.MkdirAll(filepath.Join(root, "boot", "grub"), 0o755); err != nil {
		return r, fmt.Errorf("create ISO tree: %w", err)
	}
	s.Log.Info("building initramfs", "modules", len(mods), "files", len(files))
	initrd := filepath.Join(root, "boot", "initrd.img")
	if r.Initrd, err = writeInitrd(initrd, initramfs.Spec{
		InitLink: FoundryPath, Compress: initramfs.XZ, Cache: s.Cache, ModuleDir: k.ModuleDir, KernelVersion: k.Release,
		Modules: names, PCIIDs: s.PCIIDs, Files: files, Level: initrdLevel,
	}); err != nil {
		return r, fmt.Errorf("build initramfs: %w", err)
	}
	if r.Kernel, err = copyFile(k.Vmlinuz, filepath.Join(root, "boot", "vmlinuz")); err != nil {
		return r, fmt.Errorf("copy kernel: %w", err)
	}
	cfg := filepath.Join(root, "boot", "grub", "grub.cfg")
	if err := os.WriteFile(cfg, []byte(grubConfig(s.Version)), 0o644); err != nil {
		return r, fmt.Errorf("write grub.cfg: %w", err)
	}
	s.Log.Info("measuring initramfs parts")
	for _, p := range parts {
		if err := p.measure(ctx); err != nil {
			return r, fmt.Errorf("measure initramfs part %s: %w", p.Name, err)
		}
		r.Parts = append(r.Parts, p.Part)
	}

	s.Log.Info("running grub-mkrescue", "volid", r.VolumeID)
	tmp := s.Out + ".tmp"
	defer os.Remove(tmp)
	if err := mkrescue(ctx, s.GrubMkrescue, tmp, root, r.VolumeID); err != nil {
		return r, fmt.Errorf("make ISO: %w", err)
	}
	if r.Bytes, r.SHA256, err = hashFile(tmp); err != nil {
		return r, fmt.Errorf("read back ISO: %w", err)
	}
	r.GRUB = r.Bytes - r.Kernel - r.Initrd
	r.BuildSeconds = time.Since(start).Seconds()
	if s.Budget > 0 && r.Bytes > s.Budget {
		return r, fmt.Errorf("the ISO is %d bytes, over the budget of %d (kernel %d, initrd %d, GRUB %d)",
			r.Bytes, s.Budget, r.Kernel, r.Initrd, r.GRUB)
	}
	if err := os.Rename(tmp, s.Out); err != nil {
		return r, fmt.Errorf("rename ISO into place: %w", err)
	}
	manifest, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return r, fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(s.Out+".json", append(manifest, '\n'), 0o644); err != nil {
		return r, fmt.Errorf("write manifest: %w", err)
	}
	return r, nil
}

func writeInitrd(path string, spec initramfs.Spec) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := initramfs.Build(f, spec); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), f.Close()
}

func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	n, err := io.Copy(out, in)
	if err != nil {
		return n, err
	}
	return n, out.Close()
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
