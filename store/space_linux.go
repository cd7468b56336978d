package store

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// freeSpace is the space an unprivileged writer may still use on the file
// system holding dir (statfs f_bavail). The appliance runs as root, which
// may also use the blocks ext4 reserves for root: those stay a margin.
func freeSpace(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	bs := st.Frsize
	if bs == 0 {
		bs = st.Bsize
	}
	return int64(st.Bavail) * bs, nil
}

// allocatedSize is the space a file takes on disk (a sparse file less than
// its size).
func allocatedSize(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// preallocate gives f size bytes of allocated blocks.
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return writeZeros(f, size)
	}
	return err
}
