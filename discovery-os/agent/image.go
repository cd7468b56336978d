package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrChecksum is returned when the downloaded image does not match the
// published sha256.
var ErrChecksum = errors.New("image checksum mismatch")

// Disk is a block device opened for writing.
type Disk interface {
	io.WriterAt
	io.Writer
	Sync() error
	Close() error
}

// OpenDisk opens a block device for writing.
func OpenDisk(path string) (Disk, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_EXCL, 0)
}

// Doer sends HTTP requests (an *http.Client).
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// ResolveDisk maps the decision's disk to a device path on this machine,
// as this boot's inventory found it: a /dev/disk/by-path/ name matches
// only the disk at that place on this machine's buses; anything else
// matches a disk's device path, kernel name, by-path name, WWN or serial.
// A name that matches no disk, or more than one, is refused, and so is a
// read-only disk: a name the approval chose on other hardware (or a typo)
// must fail the installation, never select some other disk.
func ResolveDisk(disk string, inv inventory.Inventory) (string, error) {
	if disk == "" {
		return "", errors.New("the decision names no target disk")
	}
	var found *inventory.Disk
	for i := range inv.Disks {
		d := &inv.Disks[i]
		if !identifies(*d, disk) {
			continue
		}
		if found != nil && found.Path != d.Path {
			return "", fmt.Errorf("disk %q names more than one of this machine's disks (%s and %s)", printable(disk), found.Path, d.Path)
		}
		found = d
	}
	if found == nil {
		return "", fmt.Errorf("disk %q is not one of this machine's disks", printable(disk))
	}
	if found.ReadOnly {
		return "", fmt.Errorf("disk %s is read-only", found.Path)
	}
	return found.Path, nil
}

// identifies reports whether name names d.
func identifies(d inventory.Disk, name string) bool {
	if rest, ok := strings.CutPrefix(name, "/dev/disk/by-path/"); ok {
		// A place on the buses: a device node or serial that happens to
		// read the same is not that place.
		return rest != "" && rest == d.ByPath
	}
	for _, id := range []string{d.Path, d.Name, d.ByPath, d.WWN, d.Serial} {
		if id != "" && id == name {
			return true
		}
	}
	return false
}

// Compression formats recognised by suffix or magic number.
var magics = []struct {
	suffix string
	magic  []byte
}{
	{".gz", []byte{0x1f, 0x8b}},
	{".zst", []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{".xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// WriteImage streams the image at img.URL onto dst, decompressing .gz,
// .zst and .xz (chosen by the URL's suffix, else by magic number; anything
// else is raw). The sha256 is checked over the bytes as downloaded — the
// file as published, which is what a checksum next to an image on a web
// server describes. progress is called with the share of the download
// done, in percent, whenever it grows. On a checksum mismatch the start of
// the disk is zeroed so the machine cannot boot a corrupt image.
func WriteImage(ctx context.Context, hc Doer, imgURL, sum string, dst Disk, progress func(percent int)) (written int64, err error) {
	want, err := hex.DecodeString(strings.TrimSpace(sum))
	if err != nil || len(want) != sha256.Size {
		return 0, fmt.Errorf("image sha256 %q is not 64 hex digits", printable(sum))
	}
	u, err := url.Parse(imgURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, fmt.Errorf("image URL %q is not http(s)", printable(imgURL))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, imgURL, nil)
	if err != nil {
		return 0, fmt.Errorf("image request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download image: %s answered %s", u.Host, resp.Status)
	}
	h := sha256.New()
	counted := &progressReader{r: io.TeeReader(resp.Body, h), total: resp.ContentLength, report: progress}
	br := bufio.NewReaderSize(counted, 1<<20)
	src, closeSrc, err := decompressor(path.Ext(u.Path), br)
	if err != nil {
		return 0, err
	}
	defer closeSrc()
	written, err = io.CopyBuffer(dst, src, make([]byte, 1<<20))
	if err != nil {
		return written, fmt.Errorf("write image: %w", err)
	}
	// Trailing bytes after the compressed stream are still part of the file.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return written, fmt.Errorf("download image: %w", err)
	}
	if err := dst.Sync(); err != nil {
		return written, fmt.Errorf("sync disk: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		wipe(dst)
		return written, fmt.Errorf("%w: got %x, want %x", ErrChecksum, got, want)
	}
	if progress != nil {
		progress(100)
	}
	return written, nil
}

// wipe zeroes the first MiB (partition table and boot code).
func wipe(d Disk) {
	d.WriteAt(make([]byte, 1<<20), 0)
	d.Sync()
}

// decompressor picks the decoder by suffix, then by magic number.
func decompressor(ext string, br *bufio.Reader) (io.Reader, func(), error) {
	kind := ""
	for _, m := range magics {
		if ext == m.suffix {
			kind = m.suffix
		}
	}
	if kind == "" {
		for _, m := range magics {
			if head, _ := br.Peek(len(m.magic)); bytes.Equal(head, m.magic) {
				kind = m.suffix
			}
		}
	}
	switch kind {
	case ".gz":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("image is not gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case ".zst":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("image is not zstd: %w", err)
		}
		return zr, zr.Close, nil
	case ".xz":
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("image is not xz: %w", err)
		}
		return zr, func() {}, nil
	}
	return br, func() {}, nil
}

// progressReader counts bytes and reports whole percentages.
type progressReader struct {
	r      io.Reader
	n      int64
	total  int64
	last   int
	report func(int)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.report != nil && p.total > 0 {
		if pct := int(p.n * 100 / p.total); pct > p.last && pct < 100 {
			p.last = pct
			p.report(pct)
		}
	}
	return n, err
}
