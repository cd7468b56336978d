// Package kmodtest builds fake kernel module trees for tests: minimal ELF
// relocatable files whose only content is a .modinfo section, laid out as a
// Debian kernel package unpacks them.
package kmodtest

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Module describes one fake module file.
type Module struct {
	// Path relative to the module directory ("kernel/drivers/net/e1000.ko").
	Path    string
	Depends []string
	Aliases []string
	// Softdep is the module's softdep entry ("pre: realtek"); Firmware its
	// firmware entries. Default none.
	Softdep  string
	Firmware []string
}

// ELF returns a minimal x86-64 ELF relocatable whose .modinfo section holds
// name, depends and alias entries, as the kernel build writes them.
func ELF(name string, depends, aliases []string) []byte {
	return Module{Depends: depends, Aliases: aliases}.elf(name)
}

func (m Module) elf(name string) []byte {
	var mi bytes.Buffer
	for _, f := range m.Firmware {
		mi.WriteString("firmware=" + f + "\x00")
	}
	if m.Softdep != "" {
		mi.WriteString("softdep=" + m.Softdep + "\x00")
	}
	for _, a := range m.Aliases {
		mi.WriteString("alias=" + a + "\x00")
	}
	mi.WriteString("depends=" + strings.Join(m.Depends, ",") + "\x00")
	mi.WriteString("name=" + name + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")

	const ehsize, shentsize = 64, 64
	miOff := uint64(ehsize)
	strOff := miOff + uint64(mi.Len())
	shOff := strOff + uint64(len(shstr))
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	secs := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: miOff, Size: uint64(mi.Len()), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, h)
	out.Write(mi.Bytes())
	out.Write(shstr)
	binary.Write(&out, binary.LittleEndian, secs)
	return out.Bytes()
}

// Tree writes the modules under dir and returns dir.
func Tree(t testing.TB, dir string, mods []Module) string {
	t.Helper()
	for _, m := range mods {
		p := filepath.Join(dir, m.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(m.Path), ".ko")
		if err := os.WriteFile(p, m.elf(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Debian is a small tree with the shape of Debian's amd64 kernel: NIC and
// disk drivers with their real dependency chains and a few real aliases,
// plus unrelated modules that a selection must leave out.
var Debian = []Module{
	{Path: "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
		Aliases: []string{"pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Fsv*sd*bc*sc*i*"}},
	{Path: "kernel/drivers/net/virtio_net.ko", Depends: []string{"net_failover"},
		Aliases: []string{"virtio:d00000001v*"}},
	{Path: "kernel/drivers/net/net_failover.ko", Depends: []string{"failover"}},
	{Path: "kernel/net/core/failover.ko"},
	{Path: "kernel/drivers/virtio/virtio_pci.ko", Depends: []string{"virtio_pci_modern_dev", "virtio_pci_legacy_dev"},
		Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}},
	{Path: "kernel/drivers/virtio/virtio_pci_modern_dev.ko"},
	{Path: "kernel/drivers/virtio/virtio_pci_legacy_dev.ko"},
	{Path: "kernel/drivers/block/virtio_blk.ko", Aliases: []string{"virtio:d00000002v*"}},
	{Path: "kernel/drivers/ata/ata_piix.ko", Depends: []string{"libata"},
		Aliases: []string{"pci:v00008086d00007010sv*sd*bc*sc*i*"}},
	{Path: "kernel/drivers/ata/libata.ko", Depends: []string{"scsi_mod"}},
	{Path: "kernel/drivers/scsi/scsi_mod.ko", Depends: []string{"scsi_common"}},
	{Path: "kernel/drivers/scsi/scsi_common.ko"},
	{Path: "kernel/drivers/scsi/sd_mod.ko", Depends: []string{"scsi_mod", "scsi_common"},
		Aliases: []string{"scsi:t-0x00*", "scsi:t-0x07*", "scsi:t-0x0e*"}},
	{Path: "kernel/drivers/nvme/host/nvme.ko", Depends: []string{"nvme_core"},
		Aliases: []string{"pci:v*d*sv*sd*bc01sc08i02*"}},
	{Path: "kernel/drivers/nvme/host/nvme-core.ko"},
	{Path: "kernel/sound/core/snd.ko"},
	{Path: "kernel/drivers/gpu/drm/amd/amdgpu/amdgpu.ko", Aliases: []string{"pci:v00001002d*sv*sd*bc03sc*i*"}},
}
