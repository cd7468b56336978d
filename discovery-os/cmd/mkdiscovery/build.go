package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/debkernel"
	"github.com/foundry-appliance/foundry/discovery-os/drivers"
	"github.com/foundry-appliance/foundry/discovery-os/initramfs"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

type options struct {
	KernelDeb, Agent, PCIIDs, Out string
	// FirmwareDir holds Debian firmware packages (.deb); "" = no firmware.
	FirmwareDir string
	// Cache keeps compressed modules and firmware between builds.
	Cache string
	// Compression is the archive's: "xz", "zstd" or "gzip"; ModuleCompression
	// the modules': "zstd" (with a dictionary) or "xz"; FirmwareCompression
	// the firmware's: "" (in the archive) or "xz" (each file on its own).
	Compression, ModuleCompression, FirmwareCompression string
	Budget                                              int64
}

// Manifest is images/discovery/manifest.json.
type Manifest struct {
	KernelPackage string `json:"kernel_package"`
	KernelVersion string `json:"kernel_version"` // the package version
	KernelRelease string `json:"kernel_release"` // uname -r, the module directory name
	// Files maps "vmlinuz" and "initrd" to their size and checksum.
	Files       map[string]FileInfo `json:"files"`
	TotalBytes  int64               `json:"total_bytes"`
	ModuleCount int                 `json:"module_count"`
	Modules     []string            `json:"modules"`
	// Compression says how the initrd is packed.
	Compression string   `json:"compression"`
	Coverage    Coverage `json:"coverage"`
}

// FileInfo describes one output file.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Coverage is what the image covers, by the rules of package drivers.
type Coverage struct {
	Classes []ClassCoverage `json:"classes"`
	// Dependencies are the modules that come only as dependencies.
	Dependencies      int                    `json:"dependencies"`
	DependencyBytes   int64                  `json:"dependency_bytes"`
	Excluded          []drivers.Exclusion    `json:"excluded"`
	FirmwarePackages  []PackageCoverage      `json:"firmware_packages"`
	Firmware          []FirmwareCoverage     `json:"firmware"`
	FirmwareSkipped   []drivers.FirmwareSkip `json:"firmware_skipped"`
	FirmwareBytes     int64                  `json:"firmware_bytes"`
	FirmwareRawBytes  int64                  `json:"firmware_raw_bytes"`
	ModuleBytes       int64                  `json:"module_bytes"`
	CompressedArchive int64                  `json:"compressed_archive_bytes"`
}

// ClassCoverage counts the drivers of one class.
type ClassCoverage struct {
	Class   string `json:"class"`
	Drivers int    `json:"drivers"`
	// Bytes is what they take in the image (compressed).
	Bytes int64 `json:"bytes"`
}

// PackageCoverage counts the firmware taken from one package.
type PackageCoverage struct {
	Package string `json:"package"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`     // in the image
	Raw     int64  `json:"raw_bytes"` // as the package has them
}

// FirmwareCoverage is one firmware file of the image.
type FirmwareCoverage struct {
	Name    string   `json:"name"`
	Package string   `json:"package"`
	Bytes   int64    `json:"bytes"`
	Raw     int64    `json:"raw_bytes"`
	Modules []string `json:"modules"`
}

func build(ctx context.Context, o options) (Manifest, error) {
	tmp, err := os.MkdirTemp("", "mkdiscovery-")
	if err != nil {
		return Manifest{}, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	k, err := debkernel.Unpack(ctx, o.KernelDeb, filepath.Join(tmp, "kernel"))
	if err != nil {
		return Manifest{}, fmt.Errorf("kernel package %s: %w", o.KernelDeb, err)
	}
	tree, err := kmod.OpenTree(k.ModuleDir)
	if err != nil {
		return Manifest{}, fmt.Errorf("open module tree of %s: %w", k.Release, err)
	}
	plan, err := drivers.Decide(tree)
	if err != nil {
		return Manifest{}, fmt.Errorf("select modules of %s: %w", k.Release, err)
	}
	mods, _, err := tree.Closure(plan.Names())
	if err != nil {
		return Manifest{}, fmt.Errorf("resolve module dependencies of %s: %w", k.Release, err)
	}
	pkgs, err := unpackFirmware(ctx, o.FirmwareDir, filepath.Join(tmp, "firmware"))
	if err != nil {
		return Manifest{}, err
	}
	fw, err := drivers.Firmware(mods, pkgs)
	if err != nil {
		return Manifest{}, fmt.Errorf("choose firmware: %w", err)
	}
	spec := initramfs.Spec{
		Init: o.Agent, ModuleDir: k.ModuleDir, KernelVersion: k.Release,
		Modules: plan.Names(), PCIIDs: o.PCIIDs,
		Cache: o.Cache,
		// The agent is also the kernel's modprobe: request_module (a NIC
		// asking for its PHY driver, mlx4_core for mlx4_en) runs it.
		Links: []initramfs.Link{{Path: "/sbin/modprobe", Target: "/init"}},
	}
	switch o.Compression {
	case "zstd", "":
		// Unpacked by the kernel in a quarter of xz's time under an
		// emulator, for 0.4 MB more (measured in README.md).
		spec.Compression = initramfs.Zstd
	case "xz":
		spec.Compression = initramfs.XZ
	case "gzip":
		spec.Compression, spec.Level = initramfs.Gzip, 6
	default:
		return Manifest{}, fmt.Errorf("compression %q: want xz, zstd or gzip", o.Compression)
	}
	switch o.ModuleCompression {
	case "zstd", "":
		spec.Compress = initramfs.Zstd
	case "xz":
		spec.Compress = initramfs.XZ
	default:
		return Manifest{}, fmt.Errorf("module compression %q: want zstd or xz", o.ModuleCompression)
	}
	switch o.FirmwareCompression {
	case "", "none":
	case "xz":
		spec.FirmwareCompress = initramfs.XZ
	default:
		return Manifest{}, fmt.Errorf("firmware compression %q: want none or xz", o.FirmwareCompression)
	}
	for _, f := range fw.Files {
		spec.Firmware = append(spec.Firmware, initramfs.Firmware{Name: f.Name, Src: f.Src})
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Manifest{}, fmt.Errorf("create output directory: %w", err)
	}
	var initrd bytes.Buffer
	rep, err := initramfs.BuildReport(&initrd, spec)
	if err != nil {
		return Manifest{}, fmt.Errorf("build initramfs: %w", err)
	}
	vmlinuz, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return Manifest{}, fmt.Errorf("read kernel image: %w", err)
	}
	m := Manifest{KernelPackage: k.Package, KernelVersion: k.Version, KernelRelease: k.Release,
		Files: map[string]FileInfo{}, ModuleCount: len(mods),
		Compression: "modules: " + spec.Compress.String() + " each; firmware: " +
			map[bool]string{true: "xz each", false: "in the archive"}[spec.FirmwareCompress == initramfs.XZ] +
			"; archive: " + spec.Compression.String(),
		Coverage: coverage(plan, mods, fw, rep, "lib/modules/"+k.Release+"/"),
	}
	for _, mod := range mods {
		m.Modules = append(m.Modules, mod.Name)
	}
	for name, data := range map[string][]byte{"vmlinuz": vmlinuz, "initrd": initrd.Bytes()} {
		sum := sha256.Sum256(data)
		m.Files[name] = FileInfo{Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
		m.TotalBytes += int64(len(data))
	}
	if o.Budget > 0 && m.TotalBytes > o.Budget {
		return m, fmt.Errorf("kernel + initrd are %d bytes, over the budget of %d", m.TotalBytes, o.Budget)
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, fmt.Errorf("encode manifest: %w", err)
	}
	// Written under temporary names and renamed, so that a server reading
	// the directory never serves a half-written image.
	for name, data := range map[string][]byte{"vmlinuz": vmlinuz, "initrd": initrd.Bytes(), "manifest.json": append(manifest, '\n')} {
		if err := writeAtomic(filepath.Join(o.Out, name), data); err != nil {
			return m, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return m, nil
}

// unpackFirmware unpacks every .deb in dir into work, one directory per
// package, in name order (the order firmware names are looked up in).
func unpackFirmware(ctx context.Context, dir, work string) ([]drivers.Package, error) {
	if dir == "" {
		return nil, nil
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) == 0 {
		return nil, fmt.Errorf("no firmware packages (.deb) in %s", dir)
	}
	slices.Sort(debs)
	var pkgs []drivers.Package
	for _, deb := range debs {
		out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Package").Output()
		if err != nil {
			return nil, fmt.Errorf("read the name of %s: %w", deb, err)
		}
		name := strings.TrimSpace(string(out))
		d := filepath.Join(work, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", deb, err)
		}
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, d).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("unpack %s: %w: %s", deb, err, bytes.TrimSpace(out))
		}
		pkgs = append(pkgs, drivers.Package{Name: name, Dir: d})
	}
	return pkgs, nil
}

// coverage counts the image's drivers by class and its firmware by package,
// with the bytes each takes in the image.
func coverage(plan drivers.Plan, mods []kmod.Module, fw drivers.FirmwarePlan, rep initramfs.Report, base string) Coverage {
	c := Coverage{Excluded: plan.Excluded, FirmwareSkipped: fw.Skipped, CompressedArchive: rep.Compressed}
	size := func(m kmod.Module) int64 {
		for _, ext := range []string{"", ".xz", ".zst"} {
			if n, ok := rep.Sizes[base+m.Path+ext]; ok {
				return n
			}
		}
		return 0
	}
	class := map[string]drivers.Class{}
	for _, d := range plan.Drivers {
		class[d.Name] = d.Class
	}
	byClass := map[drivers.Class]*ClassCoverage{}
	for _, m := range mods {
		n := size(m)
		c.ModuleBytes += n
		cl, ok := class[m.Name]
		if !ok {
			c.Dependencies++
			c.DependencyBytes += n
			continue
		}
		cc := byClass[cl]
		if cc == nil {
			cc = &ClassCoverage{Class: cl.String()}
			byClass[cl] = cc
		}
		cc.Drivers++
		cc.Bytes += n
	}
	for _, cl := range drivers.Classes {
		if cc := byClass[cl]; cc != nil {
			c.Classes = append(c.Classes, *cc)
		}
	}
	byPkg := map[string]*PackageCoverage{}
	var order []string
	for _, f := range fw.Files {
		n := rep.Sizes["lib/firmware/"+f.Name+".xz"]
		if n == 0 {
			n = rep.Sizes["lib/firmware/"+f.Name]
		}
		c.Firmware = append(c.Firmware, FirmwareCoverage{Name: f.Name, Package: f.Package, Bytes: n, Raw: f.Size, Modules: f.Modules})
		c.FirmwareBytes += n
		c.FirmwareRawBytes += f.Size
		p := byPkg[f.Package]
		if p == nil {
			p = &PackageCoverage{Package: f.Package}
			byPkg[f.Package] = p
			order = append(order, f.Package)
		}
		p.Files++
		p.Bytes += n
		p.Raw += f.Size
	}
	slices.Sort(order)
	for _, name := range order {
		c.FirmwarePackages = append(c.FirmwarePackages, *byPkg[name])
	}
	return c
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}
