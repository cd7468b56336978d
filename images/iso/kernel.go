package iso

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

// kernel is what unpackKernel found in a linux-image package.
type kernel struct {
	pkg, version, release string
	vmlinuz, moduleDir    string
}

// unpackKernel extracts a linux-image .deb with dpkg-deb and finds the
// kernel image and module directory in it. It does what mkdiscovery does
// for the discovery image, so that both images read one package the same
// way.
func unpackKernel(ctx context.Context, deb, dir string) (kernel, error) {
	var k kernel
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", deb, "Package", "Version").Output()
	if err != nil {
		return k, fmt.Errorf("read %s control fields: %w", deb, cmdErr(err))
	}
	for line := range strings.Lines(string(out)) {
		key, val, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch key {
		case "Package":
			k.pkg = val
		case "Version":
			k.version = val
		}
	}
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput(); err != nil {
		return k, fmt.Errorf("unpack %s: %w: %s", deb, err, bytes.TrimSpace(out))
	}
	images, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(images) != 1 {
		return k, fmt.Errorf("want one boot/vmlinuz-* in %s, found %d", deb, len(images))
	}
	k.vmlinuz = images[0]
	k.release = strings.TrimPrefix(filepath.Base(images[0]), "vmlinuz-")
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		d := filepath.Join(dir, base, k.release)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			k.moduleDir = d
			return k, nil
		}
	}
	return k, fmt.Errorf("no module directory for %s in %s", k.release, deb)
}

func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}
