package pid1

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CRNGReady reports whether the kernel's random number generator is
// initialised, so that reads from it (crypto/rand, and so the token and the
// DHCP transaction ID) do not block.
func CRNGReady() bool {
	var b [1]byte
	_, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK)
	return !errors.Is(err, unix.EAGAIN)
}

// SeedEntropy credits the kernel's pool with timing jitter the program
// measures itself, as jitterentropy-rngd does, when the CRNG is not yet
// initialised. Early in boot a machine without RDRAND or a virtio-rng
// device (an emulated CPU under QEMU TCG, some old servers) can otherwise
// block every getrandom(2) for minutes. Credit is conservative: one bit per
// 64 timing samples, 256 bits in all.
func SeedEntropy() error {
	if CRNGReady() {
		return nil
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open /dev/urandom: %w", err)
	}
	defer f.Close()
	for round := 0; round < 8 && !CRNGReady(); round++ {
		seed := jitter(32 * 64) // 32 bits of credit per round
		// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
		info := make([]byte, 8+len(seed))
		binary.NativeEndian.PutUint32(info[0:], 32)
		binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
		copy(info[8:], seed)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
		if errno != 0 {
			return fmt.Errorf("RNDADDENTROPY: %w", errno)
		}
	}
	if !CRNGReady() {
		return errors.New("kernel random number generator still not ready")
	}
	return nil
}

// jitter hashes the low bits of n clock readings taken around a short
// memory-bound loop into 32 bytes.
func jitter(n int) []byte {
	h := sha256.New()
	buf := make([]byte, 4096)
	var prev int64
	var b [8]byte
	for i := range n {
		for j := 0; j < len(buf); j += 64 {
			buf[j] += byte(i)
		}
		now := time.Now().UnixNano()
		binary.LittleEndian.PutUint64(b[:], uint64(now-prev))
		h.Write(b[:])
		prev = now
	}
	return h.Sum(nil)
}
