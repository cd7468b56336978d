// Package debkernel unpacks Debian's packaged kernel (a linux-image .deb)
// and finds what an image builder needs in it: the kernel image, the
// module directory and the versions. The discovery image and the appliance
// ISO both read the same package through it.
package debkernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is what Unpack found.
type Kernel struct {
	// Package and Version are the .deb's control fields
	// ("linux-image-6.1.0-57-amd64", "6.1.192-3").
	Package, Version string
	// Release is the kernel's uname -r, the module directory's name.
	Release string
	// Vmlinuz is the unpacked kernel image; ModuleDir its module directory
	// (lib/modules/<release> or, on newer Debian, usr/lib/modules/…).
	Vmlinuz, ModuleDir string
}

// Unpack extracts deb into dir with dpkg-deb (present on every Debian
// system) and finds the kernel in it.
func Unpack(ctx context.Context, deb, dir string) (Kernel, error) {
	var k Kernel
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Package", "Version").Output()
	if err != nil {
		return k, fmt.Errorf("read %s control fields: %w", deb, cmdErr(err))
	}
	for line := range strings.Lines(string(out)) {
		key, val, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch key {
		case "Package":
			k.Package = val
		case "Version":
			k.Version = val
		}
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		return k, fmt.Errorf("unpack %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	return Find(k, dir)
}

// Find locates boot/vmlinuz-<release> and its module directory in an
// unpacked package, filling k's Release, Vmlinuz and ModuleDir.
func Find(k Kernel, dir string) (Kernel, error) {
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return k, fmt.Errorf("want one boot/vmlinuz-* in the package, found %d", len(images))
	}
	k.Vmlinuz = images[0]
	k.Release = strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		d := filepath.Join(dir, base, k.Release)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			k.ModuleDir = d
			return k, nil
		}
	}
	return k, fmt.Errorf("no module directory for %s in the package", k.Release)
}

func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}
