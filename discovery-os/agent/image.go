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
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

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

// OpenDisk opens a block device for writing, and reading: a release's
// wipe reads the partition table before it zeroes it.
func OpenDisk(path string) (Disk, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_EXCL, 0)
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

// Phases of an image install, as Transfer.Phase and the progress reports
// name them.
const (
	PhaseDownloading = "downloading" // the request is sent; nothing written yet
	PhaseWriting     = "writing"     // the file streams onto the disk
	PhaseVerifying   = "verifying"   // flushing the disk and checking the sha256
	PhaseSeed        = "seed"        // writing the cloud-init seed
	phaseDone        = "done"        // the install's last report
)

// Transfer is how far an image download has come.
type Transfer struct {
	// Phase is PhaseDownloading, PhaseWriting or PhaseVerifying.
	Phase string
	// Done counts the bytes of the file received (compressed, as
	// published), Total its size: 0 while unknown.
	Done, Total int64
	// Resumes counts the requests after the first: a connection that broke
	// off, and the download went on from where it stopped.
	Resumes int
}

// ImageWriter streams an image file onto a disk; a download that breaks
// off resumes where it stopped (resume.go). The zero value is ready to use.
type ImageWriter struct {
	// HTTP fetches the image. Default: http.DefaultClient.
	HTTP Doer
	// Progress is told how far the download has come: at the start, after
	// every read, and when verification starts. It runs in the download's
	// path and must return quickly. Default: none.
	Progress func(Transfer)
	// Attempts is how many requests in a row may fail, no byte arriving
	// between them, before the download fails. Default 6.
	Attempts int
	// MaxResumes bounds how often one download is resumed. Default 100.
	MaxResumes int
	// Backoff is the pause before the second attempt in a row; it doubles
	// with each further one, up to 30 s. The first resume after bytes
	// arrived is immediate. Default 1 s.
	Backoff time.Duration
	// Sleep waits between attempts. Default: Pause.
	Sleep func(ctx context.Context, d time.Duration) error
	// Log receives the breaks and resumes. Default: silent.
	Log *slog.Logger
}

// WriteImage writes with an ImageWriter using hc and tells progress the
// share of the download done, in percent, whenever it grows, and 100 once
// the image is verified.
func WriteImage(ctx context.Context, hc Doer, imgURL, sum string, dst Disk, progress func(percent int)) (int64, error) {
	w := ImageWriter{HTTP: hc}
	if progress != nil {
		last := 0
		w.Progress = func(t Transfer) {
			if t.Phase != PhaseWriting || t.Total <= 0 {
				return
			}
			if pct := int(t.Done * 100 / t.Total); pct > last && pct < 100 {
				last = pct
				progress(pct)
			}
		}
	}
	n, err := w.Write(ctx, imgURL, sum, dst)
	if err == nil && progress != nil {
		progress(100)
	}
	return n, err
}

// Write streams the image at imgURL onto dst, decompressing .gz, .zst and
// .xz (chosen by the URL's suffix, else by magic number; anything else is
// raw). The sha256 is checked over the bytes as downloaded — the file as
// published, which is what a checksum next to an image on a web server
// describes — across every resume. When the install fails after writing
// (a checksum mismatch, a download that broke off for good), the start of
// the disk is zeroed so the machine cannot boot a corrupt image.
func (w *ImageWriter) Write(ctx context.Context, imgURL, sum string, dst Disk) (written int64, err error) {
	want, err := hex.DecodeString(strings.TrimSpace(sum))
	if err != nil || len(want) != sha256.Size {
		return 0, fmt.Errorf("image sha256 %q is not 64 hex digits", printable(sum))
	}
	u, err := url.Parse(imgURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, fmt.Errorf("image URL %q is not http(s)", printable(imgURL))
	}
	w.report(Transfer{Phase: PhaseDownloading})
	body, err := w.openDownload(ctx, imgURL)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	defer func() {
		// A failed install leaves no half image to boot (a checksum
		// mismatch has wiped already).
		if err != nil && written > 0 && !errors.Is(err, ErrChecksum) {
			wipe(dst)
		}
	}()
	h := sha256.New()
	counted := &countingReader{body: body, hash: h, report: w.report}
	br := bufio.NewReaderSize(counted, 1<<20)
	src, closeSrc, err := decompressor(path.Ext(u.Path), br)
	if err != nil {
		if counted.err != nil {
			return 0, counted.err
		}
		return 0, err
	}
	defer closeSrc()
	written, err = io.CopyBuffer(dst, src, make([]byte, 1<<20))
	if err == nil {
		// Trailing bytes after the compressed stream are still part of
		// the file.
		_, err = io.Copy(io.Discard, br)
	}
	if counted.err != nil {
		return written, counted.err // the download's own failure
	}
	if err != nil {
		return written, fmt.Errorf("write image: %w", err)
	}
	w.report(Transfer{Phase: PhaseVerifying, Done: body.off, Total: max(body.size, 0), Resumes: body.resumes})
	if err := dst.Sync(); err != nil {
		return written, fmt.Errorf("sync disk: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		wipe(dst)
		return written, fmt.Errorf("%w: got %x, want %x", ErrChecksum, got, want)
	}
	return written, nil
}

func (w *ImageWriter) report(t Transfer) {
	if w.Progress != nil {
		w.Progress(t)
	}
}

// countingReader hashes what the download delivers, reports how far it
// has come, and keeps the download's error apart from the disk's.
type countingReader struct {
	body   *resumingBody
	hash   hash.Hash
	report func(Transfer)
	err    error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	c.hash.Write(p[:n])
	if err != nil && err != io.EOF {
		c.err = err
	}
	if n > 0 {
		c.report(Transfer{Phase: PhaseWriting, Done: c.body.off, Total: max(c.body.size, 0), Resumes: c.body.resumes})
	}
	return n, err
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
