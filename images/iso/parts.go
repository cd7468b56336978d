package iso

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/foundry-appliance/foundry/discovery-os/debkernel"
	"github.com/foundry-appliance/foundry/discovery-os/initramfs"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/klauspost/compress/gzip"
)

// part is one component of the initramfs: the files it adds through
// initramfs.Spec.Files, and every host file it puts in the image (those
// too that the initramfs package adds itself: /init, modules, pci.ids),
// to measure it.
type part struct {
	Part
	files   []initramfs.File
	sources []string
}

// ipxeRequired are the iPXE binaries foundry serves by these names (see
// docs/architecture.md, TFTP file names).
var ipxeRequired = []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"}

// parts checks the inputs and lays out where each goes in the image.
func (s Spec) parts(k debkernel.Kernel, tree *kmod.Tree, mods []kmod.Module) ([]*part, error) {
	if err := checkStatic(s.Foundry); err != nil {
		return nil, fmt.Errorf("foundry %s: %w", s.Foundry, err)
	}
	foundry := &part{Part: Part{Name: "foundry"}, files: []initramfs.File{{Src: s.Foundry, Dst: FoundryPath, Mode: 0o755}}}

	if err := checkDiscovery(s.DiscoveryDir, k.Release); err != nil {
		return nil, fmt.Errorf("discovery image %s: %w", s.DiscoveryDir, err)
	}
	discovery := &part{Part: Part{Name: "discovery image"}}
	for _, name := range []string{"vmlinuz", "initrd", "manifest.json"} {
		discovery.files = append(discovery.files, initramfs.File{
			Src: filepath.Join(s.DiscoveryDir, name), Dst: path.Join(DiscoveryPath, name), Mode: 0o644})
	}

	ipxe := &part{Part: Part{Name: "ipxe"}}
	ents, err := os.ReadDir(s.IPXEDir)
	if err != nil {
		return nil, fmt.Errorf("iPXE binaries: %w", err)
	}
	var have []string
	for _, e := range ents { // sorted by name
		if e.Type().IsRegular() {
			have = append(have, e.Name())
			ipxe.files = append(ipxe.files, initramfs.File{
				Src: filepath.Join(s.IPXEDir, e.Name()), Dst: path.Join(IPXEPath, e.Name()), Mode: 0o644})
		}
	}
	for _, want := range ipxeRequired {
		if !slices.Contains(have, want) {
			return nil, fmt.Errorf("iPXE binaries: %s has no %s", s.IPXEDir, want)
		}
	}

	modules := &part{Part: Part{Name: "kernel modules"}}
	for _, m := range mods {
		modules.sources = append(modules.sources, filepath.Join(tree.Dir, m.Path))
	}

	// The host's programs share their libraries (libc at least): one
	// part, each library once.
	tools := &part{Part: Part{Name: "e2fsprogs, qemu-img, ipmitool"}, files: []initramfs.File{
		{Src: s.Mke2fs, Dst: "/sbin/mke2fs", Mode: 0o755},
		{Src: s.E2fsck, Dst: "/sbin/e2fsck", Mode: 0o755},
		{Src: s.Mke2fsConf, Dst: "/etc/mke2fs.conf", Mode: 0o644},
		{Src: s.QemuImg, Dst: "/usr/bin/qemu-img", Mode: 0o755},
		{Src: s.IPMITool, Dst: "/usr/bin/ipmitool", Mode: 0o755},
	}}
	libs, err := libraries([]string{s.Mke2fs, s.E2fsck, s.QemuImg, s.IPMITool}, s.LibDirs)
	if err != nil {
		return nil, fmt.Errorf("host tools: %w", err)
	}
	tools.files = append(tools.files, libs...)

	pciids := &part{Part: Part{Name: "pci.ids"}, sources: []string{s.PCIIDs}}
	all := []*part{foundry, discovery, ipxe, modules, tools, pciids}
	for _, p := range all {
		for _, f := range p.files {
			p.sources = append(p.sources, f.Src)
		}
	}
	return all, nil
}

// checkDiscovery makes sure the discovery image is there and was built
// from the ISO's kernel package: the team keeps one kernel for both, and a
// stale image left from another kernel is a build mistake (make images
// rebuilds it).
func checkDiscovery(dir, release string) error {
	for _, name := range []string{"vmlinuz", "initrd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	var m struct {
		KernelRelease string `json:"kernel_release"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if m.KernelRelease != release {
		return fmt.Errorf("built from kernel %q, the ISO's is %q (make images rebuilds it)", m.KernelRelease, release)
	}
	return nil
}

// measure fills in the part's sizes; the compressed one by compressing its
// files as the initramfs does.
func (p *part) measure(ctx context.Context) error {
	var n countWriter
	zw, err := gzip.NewWriterLevel(&n, initrdLevel)
	if err != nil {
		return err
	}
	for _, src := range p.sources {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		c, err := io.Copy(zw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: %w", src, err)
		}
		p.Bytes += c
		p.Files++
	}
	if err := zw.Close(); err != nil {
		return err
	}
	p.Compressed = int64(n)
	return nil
}

type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) {
	*c += countWriter(len(b))
	return len(b), nil
}
