package iso

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// KernelArgs start every entry's kernel line. The serial console comes
// last, so that /dev/console — what the init and its status page write
// to — is the serial port, and the screen shows the kernel's messages too.
// panic=10 reboots a machine whose init died instead of leaving it hung.
const KernelArgs = "console=tty0 console=ttyS0,115200 panic=10"

// entry is one line of the GRUB menu: the title's suffix after "Foundry
// <version>", the kernel arguments it adds and its hotkey. A hotkey boots
// its entry at once: one plain key works the same on a screen and over a
// serial line, where arrow keys are escape sequences that a GRUB still
// redrawing its menu can lose (seen under QEMU: the default entry booted).
type entry struct{ suffix, args, key string }

// entries are the boot menu; the first is the default. The arguments are
// the init's (package appliance reads them from /proc/cmdline). Titles are
// ASCII: GRUB's text console and its serial terminal, without a font,
// print an em dash as "?" (seen under QEMU, BIOS, GRUB 2.06).
var entries = []entry{
	{"", "", ""},
	{" - format a blank data disk", "foundry.format=yes", "f"},
	{" - run from RAM, ignore data disks", "foundry.data=ram", "r"},
	{" - run the setup again", "foundry.setup=yes", "s"},
}

// grubConfig returns /boot/grub/grub.cfg: the menu on the screen and on
// the first serial port (a server's serial-over-LAN), three seconds to
// choose, then the default entry.
func grubConfig(version string) string {
	var b strings.Builder
	b.WriteString(`# Foundry appliance boot menu, written by images/iso.
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=3
set default=0
`)
	for _, e := range entries {
		args := KernelArgs
		if e.args != "" {
			args += " " + e.args
		}
		title, hotkey := "Foundry "+version+e.suffix, ""
		if e.key != "" {
			title += " (key " + e.key + ")"
			hotkey = " --hotkey=" + e.key
		}
		fmt.Fprintf(&b, "\nmenuentry '%s'%s {\n\tlinux /boot/vmlinuz %s\n\tinitrd /boot/initrd.img\n}\n",
			title, hotkey, args)
	}
	return b.String()
}

// grubModules are the only GRUB modules copied into the ISO (with what
// they depend on): the menu, the serial terminal, the Linux loader and
// what the core images need to find the ISO's file system on a CD or on a
// USB stick. grub-mkrescue would otherwise copy every module of both
// platforms, fonts, themes and locales: 28.5 MB of ISO instead of 12.8 MB
// for the same kernel (measured with GRUB 2.06-13+deb12u2).
var grubModules = []string{
	"linux", "normal", "iso9660", "part_msdos", "part_gpt", "serial", "terminal",
	"search", "echo", "test", "gzio",
}

// mkrescue runs grub-mkrescue: El Torito for BIOS (i386-pc) and UEFI
// (x86_64-efi's efi.img), with an MBR and a GPT, so that the same file
// boots from a CD and written to a USB stick.
func mkrescue(ctx context.Context, tool, out, dir, volid string) error {
	args := []string{
		"--locales=", "--fonts=", "--themes=",
		"--install-modules=" + strings.Join(grubModules, " "),
		"-o", out, dir, "--", "-volid", volid,
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, b)
	}
	return nil
}

// VolumeID is the ISO 9660 volume identifier for a version: FOUNDRY_ and
// the version in ISO 9660's d-characters (A–Z, 0–9, _), at most 32 of
// them. "1.2.3-rc1" → "FOUNDRY_1_2_3_RC1".
func VolumeID(version string) string {
	id := []byte("FOUNDRY_" + strings.ToUpper(version))
	for i, c := range id {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			id[i] = '_'
		}
	}
	return string(id[:min(len(id), 32)])
}
