//go:build !linux

package datadisk

import (
	"errors"
	"fmt"
)

// MountOptions are the file-system options Mount passes on Linux.
const MountOptions = "errors=remount-ro"

// Mount is only implemented on Linux, where the appliance runs.
func Mount(d Device, dir string) error {
	return fmt.Errorf("mount %s on %s: %w", d.Path, dir, errors.ErrUnsupported)
}

// Unmount is only implemented on Linux, where the appliance runs.
func Unmount(dir string) error {
	return fmt.Errorf("unmount %s: %w", dir, errors.ErrUnsupported)
}
