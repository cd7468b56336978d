package initramfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Compression names a compression format.
type Compression int

const (
	// None stores files as they are (for Spec.Compress).
	None Compression = iota
	// Gzip is the archive default: the fastest for the kernel to unpack.
	Gzip
	// XZ is the smallest; the kernel reads it for the archive (CRC32
	// checks only) and for firmware, the agent for modules.
	XZ
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case XZ:
		return "xz"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// xzRun compresses data with the xz program (xz-utils): its encoder packs
// kernel modules a quarter smaller than Go's, and its output for given
// options is fixed. One thread, so that the output does not depend on the
// machine; CRC32, the only check the kernel's decoder knows.
func xzRun(data []byte, opts ...string) ([]byte, error) {
	args := append([]string{"--compress", "--stdout", "--threads=1", "--check=crc32", "--quiet"}, opts...)
	cmd := exec.Command("xz", args...)
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("xz not found (Debian package xz-utils): %w", err)
		}
		return nil, fmt.Errorf("xz %s: %w: %s", strings.Join(opts, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// xzCache compresses with xzRun, keeping results in dir by the SHA-256 of
// the input and options (no dir: no cache). Several goroutines may use it.
type xzCache struct {
	dir string
}

func (c *xzCache) compress(data []byte, opts ...string) ([]byte, error) {
	if c.dir == "" {
		return xzRun(data, opts...)
	}
	h := sha256.New()
	h.Write([]byte(strings.Join(opts, "\x00") + "\x00"))
	h.Write(data)
	p := filepath.Join(c.dir, hex.EncodeToString(h.Sum(nil))+".xz")
	if b, err := os.ReadFile(p); err == nil {
		return b, nil
	}
	z, err := xzRun(data, opts...)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("compression cache: %w", err)
	}
	// Renamed into place: a build stopped halfway leaves no truncated entry.
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("compression cache: %w", err)
	}
	_, werr := tmp.Write(z)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), p)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("compression cache: %w", werr)
	}
	return z, nil
}

// each runs fn for every index on as many goroutines as there are CPUs and
// returns the first error.
func (c *xzCache) each(idx []int, fn func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range max(1, min(runtime.NumCPU(), len(idx))) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, i := range idx {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
