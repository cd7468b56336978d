package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/foundry-appliance/foundry/discovery-os/debkernel"
	"github.com/foundry-appliance/foundry/discovery-os/drivers"
	"github.com/foundry-appliance/foundry/discovery-os/initramfs"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

type options struct {
	KernelDeb, Agent, PCIIDs, Out string
	Budget                        int64
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
}

// FileInfo describes one output file.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func build(ctx context.Context, o options) (Manifest, error) {
	tmp, err := os.MkdirTemp("", "mkdiscovery-")
	if err != nil {
		return Manifest{}, fmt.Errorf("create work directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	k, err := debkernel.Unpack(ctx, o.KernelDeb, tmp)
	if err != nil {
		return Manifest{}, fmt.Errorf("kernel package %s: %w", o.KernelDeb, err)
	}
	tree, err := kmod.OpenTree(k.ModuleDir)
	if err != nil {
		return Manifest{}, fmt.Errorf("open module tree of %s: %w", k.Release, err)
	}
	names, err := drivers.Select(tree)
	if err != nil {
		return Manifest{}, fmt.Errorf("select modules of %s: %w", k.Release, err)
	}
	mods, _, err := tree.Closure(names)
	if err != nil {
		return Manifest{}, fmt.Errorf("resolve module dependencies of %s: %w", k.Release, err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return Manifest{}, fmt.Errorf("create output directory: %w", err)
	}
	var initrd bytes.Buffer
	err = initramfs.Build(&initrd, initramfs.Spec{
		Init: o.Agent, ModuleDir: k.ModuleDir, KernelVersion: k.Release,
		Modules: names, PCIIDs: o.PCIIDs,
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("build initramfs: %w", err)
	}
	vmlinuz, err := os.ReadFile(k.Vmlinuz)
	if err != nil {
		return Manifest{}, fmt.Errorf("read kernel image: %w", err)
	}
	m := Manifest{KernelPackage: k.Package, KernelVersion: k.Version, KernelRelease: k.Release,
		Files: map[string]FileInfo{}, ModuleCount: len(mods)}
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
