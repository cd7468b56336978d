package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// fetch opens rawURL for an import; total is its announced size (-1:
// unknown).
func (l *library) fetch(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	body, total, _, err := l.fetchAt(ctx, l.client, rawURL, 0)
	return body, total, err
}

// fetchAt opens rawURL with client, from byte offset on when offset > 0
// (a Range request, to resume a partial file). start is where the answer
// begins: offset for a 206 whose range starts there, 0 for a 200 (the
// server sent the whole file; the caller starts over). total is the
// length of the answer's body (-1: unknown).
func (l *library) fetchAt(ctx context.Context, client *http.Client, rawURL string, offset int64) (body io.ReadCloser, total, start int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("fetch: %w", err)
	}
	req.Header.Set("User-Agent", "foundry-image-import")
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, 0, 0, cause
		}
		return nil, 0, 0, fmt.Errorf("fetch: %w", err)
	}
	fail := func(err error) (io.ReadCloser, int64, int64, error) {
		resp.Body.Close()
		return nil, 0, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		// "bytes <first>-<last>/<size>": anything but our offset would
		// splice the wrong bytes in.
		var first, last int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/", &first, &last); err != nil || first != offset || last < first {
			return fail(fmt.Errorf("fetch: the server answered the range from %d with %s", offset, names.Label(resp.Header.Get("Content-Range"))))
		}
		start = offset
	default:
		return fail(fmt.Errorf("fetch: the server answered %s", names.Label(resp.Status)))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		return fail(errors.New("fetch: the server answered with an HTML page, not an image"))
	}
	if resp.ContentLength > l.s.imageMaxSize() {
		return fail(fmt.Errorf("%w: the server announces %d bytes, the limit is %d", errTooLarge, resp.ContentLength, l.s.imageMaxSize()))
	}
	return resp.Body, resp.ContentLength, start, nil
}

// Magic numbers of the formats an import recognises.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicQcow2 = []byte{'Q', 'F', 'I', 0xfb}
)

// sniff names the format of a file that starts with head: "qcow2" for a
// qcow2 image, else one of the formats served.
func sniff(head []byte) store.ImageFormat {
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return store.ImageGzip
	case bytes.HasPrefix(head, magicZstd):
		return store.ImageZstd
	case bytes.HasPrefix(head, magicXz):
		return store.ImageXz
	case bytes.HasPrefix(head, magicQcow2):
		return formatQcow2
	}
	return store.ImageRaw
}

// formatQcow2 is never stored: a qcow2 image is converted on import.
const formatQcow2 store.ImageFormat = "qcow2"

// ingest streams src into a temporary file of the library, checks its
// size and checksum, converts a qcow2 image, moves the file into place and
// marks image name ready. On any error it leaves no file behind. total is
// the announced size (-1: unknown); want the expected SHA-256 of src ("":
// none), sumLoc the request field that carried it.
func (l *library) ingest(ctx context.Context, cancel context.CancelCauseFunc, name string, src io.Reader, total int64, want, sumLoc string) (store.Image, error) {
	root, err := l.open()
	if err != nil {
		return store.Image{}, err
	}
	defer root.Close()
	tmp := tempName(name)
	temps := []string{tmp}
	defer func() {
		for _, t := range temps {
			root.Remove(t)
		}
	}()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return store.Image{}, fmt.Errorf("create temporary file: %w", err)
	}
	defer f.Close()

	prog := newProgress(cancel)
	defer prog.stop()
	defer l.report(prog, func(n int64) {
		if err := l.s.Store.ImageProgress(name, n, max(total, 0)); err != nil {
			l.log.Debug("image progress", "image", name, "err", err)
		}
	})()
	br := bufio.NewReaderSize(ctxReader{ctx, src}, 1<<20)
	head, _ := br.Peek(8) // a short file is shorter than every magic number
	format := sniff(head)
	h := sha256.New()
	n, err := l.stream(ctx, cancel, f, br, h, prog, l.s.imageMaxSize())
	switch {
	case err != nil:
		return store.Image{}, err
	case n == 0:
		return store.Image{}, &badImage{loc: "body", msg: "the image is empty"}
	case total >= 0 && n != total:
		return store.Image{}, fmt.Errorf("%w: got %d of the %d bytes announced", errReceive, n, total)
	}
	prog.stop() // conversion and checks below send no data
	if err := f.Sync(); err != nil {
		return store.Image{}, fmt.Errorf("write image: %w", diskFull(err))
	}
	if err := f.Close(); err != nil {
		return store.Image{}, fmt.Errorf("write image: %w", diskFull(err))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return store.Image{}, &badImage{loc: sumLoc, msg: fmt.Sprintf("checksum mismatch: the image's SHA-256 is %s, not %s", sum, want)}
	}
	size, sourceSum := n, sum
	if format == formatQcow2 {
		out := tmp + ".raw.zst"
		temps = append(temps, out)
		if size, sum, err = l.convert(ctx, root, tmp, out); err != nil {
			return store.Image{}, err
		}
		tmp, format = out, store.ImageZstd
	}
	return l.finish(root, name, tmp, store.Image{Format: format, Size: size, SHA256: sum, SourceSHA256: sourceSum, BytesDone: n})
}

// stream copies src into w, hashing what it writes into h and counting it
// into prog, until src ends: at most limit bytes, more is errTooLarge. w's
// writes first check the data disk (spaceWriter, watchSpace). A read that
// fails is errReceive; a stop (ctx's cause: a delete, a stall, a full
// disk, a shutdown) is returned as itself.
func (l *library) stream(ctx context.Context, cancel context.CancelCauseFunc, w io.Writer, src io.Reader, h hash.Hash, prog *progress, limit int64) (int64, error) {
	defer l.s.watchSpace(ctx, cancel)()
	out := &spaceWriter{w: w, check: l.s.importSpace, cancel: cancel}
	n, err := io.CopyBuffer(io.MultiWriter(out, h, prog), io.LimitReader(ctxReader{ctx, src}, limit+1), make([]byte, 1<<20))
	if cause := context.Cause(ctx); cause != nil {
		return n, cause
	}
	switch {
	case err != nil:
		return n, fmt.Errorf("%w: %w", errReceive, err)
	case n > limit:
		return n, fmt.Errorf("%w of %d bytes", errTooLarge, limit)
	}
	return n, nil
}

// finish moves tmp into place as image name's file and marks the record
// ready with the fields of got.
func (l *library) finish(root *os.Root, name, tmp string, got store.Image) (store.Image, error) {
	l.files.Lock()
	defer l.files.Unlock()
	file := store.ImageFile(name, got.Format)
	if err := root.Rename(tmp, file); err != nil {
		return store.Image{}, fmt.Errorf("move image into place: %w", err)
	}
	img, err := l.s.Store.UpdateImage(name, store.Audit{Actor: "system", Action: "image-ready",
		Detail: fmt.Sprintf("image %s: %s, %d bytes, sha256 %s", name, got.Format, got.Size, got.SHA256)},
		func(i *store.Image) error {
			if i.State != store.ImageImporting {
				return fmt.Errorf("%w: image %s is %s, no longer importing", store.ErrInvalid, name, i.State)
			}
			i.State, i.Format, i.File, i.Size, i.SHA256, i.BytesDone = store.ImageReady, got.Format, file, got.Size, got.SHA256, got.BytesDone
			i.SourceSHA256, i.Error = got.SourceSHA256, ""
			return nil
		})
	if err != nil {
		root.Remove(file)
		return store.Image{}, fmt.Errorf("mark image ready: %w", err)
	}
	// The file was hashed as it arrived: this appliance's copy is verified.
	l.placed(root, img)
	l.log.Info("image ready", "image", name, "format", got.Format, "size", got.Size, "sha256", got.SHA256)
	return img, nil
}

func tempName(name string) string {
	var b [8]byte
	rand.Read(b[:])
	return store.ImageDir + "/" + tempPrefix + name + "-" + hex.EncodeToString(b[:])
}

// ctxReader stops reading once ctx ends, so that a deleted or shut-down
// import stops at its next read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progress counts the bytes an import has received and keeps its stall
// timer from firing.
type progress struct {
	done  atomic.Int64
	stall *time.Timer
}

// newProgress starts the stall timer, which stops the transfer with
// errStalled when importStall passes without a byte.
func newProgress(cancel context.CancelCauseFunc) *progress {
	return &progress{stall: time.AfterFunc(importStall, func() { cancel(errStalled) })}
}

func (p *progress) Write(b []byte) (int, error) {
	p.done.Add(int64(len(b)))
	p.stall.Reset(importStall)
	return len(b), nil
}

// stop ends the stall timer: what follows the transfer sends no data.
func (p *progress) stop() { p.stall.Stop() }

// report calls write with p's count every progressEvery while it changes,
// until the returned stop is called: from a ticker, so that the record is
// right even while the source sends nothing.
func (l *library) report(p *progress, write func(n int64)) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		var last int64
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			if n := p.done.Load(); n != last {
				last = n
				write(n)
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// hashWriter counts and hashes what is written through it.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *hashWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.h.Write(b[:n])
	c.n += int64(n)
	return n, err
}
