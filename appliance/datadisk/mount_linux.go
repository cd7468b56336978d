package datadisk

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// MountOptions are the file-system options Mount passes: a metadata error
// turns the disk read-only instead of letting the appliance write on.
const MountOptions = "errors=remount-ro"

// Mount mounts d's ext2/3/4 file system (the ext4 driver mounts all
// three) at dir, made first when missing, with noatime (the database reads
// much and access times are of no use), nosuid and nodev (the disk holds
// data, and a disk moved from elsewhere must not bring device nodes or
// set-user-ID programs with it).
func Mount(d Device, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s: make %s: %w", d.Path, dir, err)
	}
	if err := unix.Mount(d.Path, dir, "ext4", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV, MountOptions); err != nil {
		return fmt.Errorf("mount %s (ext4) on %s: %w", d.Path, dir, err)
	}
	return nil
}

// Unmount flushes everything to disk and unmounts dir. A file system
// still busy (EBUSY: a process closing its files while the appliance
// stops) is retried for about two seconds; dir not being mounted, or not
// existing, is no error.
func Unmount(dir string) error {
	unix.Sync()
	var err error
	for try := 0; try < 10; try++ {
		err = unix.Unmount(dir, 0)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("unmount %s: still busy after 2 s: %w", dir, err)
}
