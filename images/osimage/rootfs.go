package osimage

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// cloudCfg limits cloud-init to the seed Foundry writes: without it,
// cloud-init probes a dozen cloud metadata services first, each with its
// own timeout, on a network where none exists.
const cloudCfg = `# Foundry installs this image and writes a NoCloud seed (a FAT file
# system labelled CIDATA) next to it; no other data source exists where it runs.
datasource_list: [ NoCloud, None ]
# The image has no locales package: en_US.UTF-8, cloud-init's default,
# would make its locale module run update-locale, which fails. C.UTF-8 is
# part of libc (and /etc/default/locale already names it, so nothing runs).
locale: C.UTF-8
`

// bootConfig is what the boot loaders and fstab know about the image.
type bootConfig struct {
	// RootUUID is the root file system's UUID.
	RootUUID string
	// ESPSerial is the ESP's FAT volume serial, XXXX-XXXX.
	ESPSerial string
}

// newBootConfig picks fresh identifiers for a build.
func newBootConfig() (bootConfig, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return bootConfig{}, fmt.Errorf("random identifiers: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // UUID version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return bootConfig{
		RootUUID:  fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]),
		ESPSerial: strings.ToUpper(fmt.Sprintf("%x-%x", b[16:18], b[18:20])),
	}, nil
}

// cmdline is the kernel command line of both boot loaders. The serial
// console comes last, so that it is /dev/console: a machine without a
// screen (and a test) reads boot and cloud-init messages there.
func (c bootConfig) cmdline() string {
	return "root=UUID=" + c.RootUUID + " ro console=tty0 console=ttyS0,115200n8"
}

// extlinux is /boot/extlinux/extlinux.conf, read by the BIOS boot path.
func (c bootConfig) extlinux() string {
	return `# BIOS boot: gptmbr.bin chains to extlinux on the partition flagged
# LegacyBIOSBootable. /vmlinuz and /initrd.img follow kernel upgrades.
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
	LINUX /vmlinuz
	INITRD /initrd.img
	APPEND ` + c.cmdline() + "\n"
}

// grubEmbedded is the configuration inside BOOTX64.EFI. It only finds
// the root file system: the real configuration lives there, where the
// installed system can change it. The modules stay in the memdisk.
func (c bootConfig) grubEmbedded() string {
	return `insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root ` + c.RootUUID + `
configfile ($root)/boot/grub/grub.cfg
`
}

// grubCfg is /boot/grub/grub.cfg, read by the UEFI boot path.
func (c bootConfig) grubCfg() string {
	return `# UEFI boot: EFI/BOOT/BOOTX64.EFI on the ESP finds this file by the root
# file system's UUID. /vmlinuz and /initrd.img follow kernel upgrades.
set default=0
set timeout=0
menuentry "Debian GNU/Linux 12" {
	insmod ext2
	linux /vmlinuz ` + c.cmdline() + `
	initrd /initrd.img
}
`
}

// fstab mounts the root and, when it is there, the ESP.
func (c bootConfig) fstab() string {
	return "UUID=" + c.RootUUID + " / ext4 errors=remount-ro 0 1\n" +
		"UUID=" + c.ESPSerial + " /boot/efi vfat umask=0077,nofail 0 0\n"
}

// configure turns the bootstrapped tree at root into an image every
// machine can start from, and returns the kernel release it holds.
func configure(root string, c bootConfig) (string, error) {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", fmt.Errorf("want one kernel in /boot, found %d", len(kernels))
	}
	release := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	for _, link := range []string{"vmlinuz", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(root, link)); err != nil {
			return "", fmt.Errorf("the kernel package left no /%s link: %w", link, err)
		}
	}
	files := map[string]string{
		"etc/cloud/cloud.cfg.d/90_foundry.cfg": cloudCfg,
		"etc/fstab":                            c.fstab(),
		"etc/hostname":                         "debian\n",
		"etc/default/locale":                   "LANG=C.UTF-8\n",
		"boot/extlinux/extlinux.conf":          c.extlinux(),
		"boot/grub/grub.cfg":                   c.grubCfg(),
		// Each machine gets its own identity at first boot (systemd
		// fills an empty machine-id).
		"etc/machine-id": "",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "boot", "efi"), 0o755); err != nil {
		return "", err
	}
	// Host keys made during the build would be shared by every machine
	// installed from the image: cloud-init makes each machine its own.
	var remove []string
	for _, pattern := range []string{"etc/ssh/ssh_host_*", "var/lib/dbus/machine-id", "var/cache/apt/*.bin", "var/log/*.log", "var/log/apt/*"} {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		remove = append(remove, m...)
	}
	for _, p := range remove {
		if err := os.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return release, nil
}

// mmdebstrapArgs bootstraps the suite into root with the packages, no
// recommends, and the dpkg path filters (which stay in the image).
func mmdebstrapArgs(b Builder, root string) []string {
	args := []string{"--variant=minbase", "--mode=root", "--format=directory",
		`--aptopt=APT::Install-Recommends "false"`, "--include=" + strings.Join(b.Packages, ",")}
	for _, p := range b.Excludes {
		args = append(args, "--dpkgopt=path-exclude="+p)
	}
	for _, p := range b.Includes {
		args = append(args, "--dpkgopt=path-include="+p)
	}
	args = append(args, b.Suite, root)
	return append(args, b.Sources...)
}
