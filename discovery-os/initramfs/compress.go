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
	"slices"
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
	// Zstd decompresses fastest; the kernel reads it for the archive, the
	// agent for modules (with a dictionary).
	Zstd
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case XZ:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

// xzRun compresses data with the xz program (xz-utils): its encoder packs
// kernel modules a quarter smaller than Go's, and its output for given
// options is fixed. One thread, so that the output does not depend on the
// machine; CRC32, the only check the kernel's decoder knows.
func xzRun(data []byte, opts ...string) ([]byte, error) {
	args := append([]string{"--compress", "--stdout", "--threads=1", "--check=crc32", "--quiet"}, opts...)
	return run("xz", "xz-utils", args, data)
}

// zstdRun compresses data with the zstd program (Debian package zstd),
// with a dictionary when dict is not nil. Its output for given options is
// fixed; one thread, like xzRun.
func zstdRun(data, dict []byte, opts ...string) ([]byte, error) {
	args := append([]string{"--compress", "--stdout", "--quiet", "--threads=1"}, opts...)
	if dict != nil {
		f, err := os.CreateTemp("", "initramfs-dict-")
		if err != nil {
			return nil, fmt.Errorf("zstd dictionary: %w", err)
		}
		defer os.Remove(f.Name())
		_, werr := f.Write(dict)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("zstd dictionary: %w", werr)
		}
		args = append(args, "-D", f.Name())
	}
	return run("zstd", "zstd", args, data)
}

func run(prog, pkg string, args []string, stdin []byte) ([]byte, error) {
	cmd := exec.Command(prog, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s not found (Debian package %s): %w", prog, pkg, err)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// dictSize is the zstd dictionary trained on a module set: measured on
// Debian's 6.1 kernel, 512 KiB gave the smallest modules plus dictionary
// (1 MiB did worse).
const dictSize = 512 << 10

// xzCache compresses with xzRun and zstdRun, keeping results in dir by the
// SHA-256 of the input and options (no dir: no cache). Several goroutines
// may use it.
type xzCache struct {
	dir string
}

// cached returns the result of make for a key, from the cache directory
// when it has it.
func (c *xzCache) cached(key []byte, ext string, make func() ([]byte, error)) ([]byte, error) {
	if c.dir == "" {
		return make()
	}
	p := filepath.Join(c.dir, hex.EncodeToString(key)+ext)
	if b, err := os.ReadFile(p); err == nil {
		return b, nil
	}
	z, err := make()
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

func (c *xzCache) compress(data []byte, opts ...string) ([]byte, error) {
	h := sha256.New()
	h.Write([]byte("xz\x00" + strings.Join(opts, "\x00") + "\x00"))
	h.Write(data)
	return c.cached(h.Sum(nil), ".xz", func() ([]byte, error) { return xzRun(data, opts...) })
}

// zstd compresses one module at level 19 with the set's dictionary.
func (c *xzCache) zstd(data, dict []byte) ([]byte, error) {
	h := sha256.New()
	d := sha256.Sum256(dict)
	h.Write([]byte("zstd-19\x00"))
	h.Write(d[:])
	h.Write(data)
	return c.cached(h.Sum(nil), ".zst", func() ([]byte, error) { return zstdRun(data, dict, "-19") })
}

// trainDict trains a zstd dictionary on the samples (sorted first, so the
// result depends only on the set). A set too small to train on (fewer than
// 16 samples, or under four dictionaries' worth of bytes) gets no
// dictionary (nil): its modules are compressed on their own.
func (c *xzCache) trainDict(samples [][]byte) ([]byte, error) {
	total := 0
	for _, s := range samples {
		total += len(s)
	}
	if len(samples) < 16 || total < 4*dictSize {
		return nil, nil
	}
	sorted := slices.Clone(samples)
	slices.SortFunc(sorted, bytes.Compare)
	h := sha256.New()
	h.Write([]byte(fmt.Sprintf("zstd-dict-%d\x00", dictSize)))
	for _, s := range sorted {
		sum := sha256.Sum256(s)
		h.Write(sum[:])
	}
	return c.cached(h.Sum(nil), ".dict", func() ([]byte, error) {
		dir, err := os.MkdirTemp("", "initramfs-samples-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		args := []string{"--train", "--quiet", "--threads=1", fmt.Sprintf("--maxdict=%d", dictSize), "-o", filepath.Join(dir, "dict")}
		for i, s := range sorted {
			p := filepath.Join(dir, fmt.Sprintf("%05d", i))
			if err := os.WriteFile(p, s, 0o644); err != nil {
				return nil, err
			}
			args = append(args, p)
		}
		if _, err := run("zstd", "zstd", args, nil); err != nil {
			return nil, err
		}
		return os.ReadFile(filepath.Join(dir, "dict"))
	})
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
