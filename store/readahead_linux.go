package store

import (
	"os"
	"syscall"
)

// canAdvise: mappings are advised on Linux (readahead.go).
const canAdvise = true

// adviseRandom advises MADV_RANDOM on a mapped range of this process.
func adviseRandom(start, length uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, length, syscall.MADV_RANDOM); errno != 0 {
		return errno
	}
	return nil
}

func readSelfMaps() ([]byte, error) { return os.ReadFile("/proc/self/maps") }
