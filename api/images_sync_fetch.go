package api

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// source is one place a copy can be fetched from.
type source struct {
	url  string
	peer bool // another appliance's /images/ (else the image's own source)
}

func shuffle(s []source) { rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] }) }

func urls(srcs []source) []string {
	out := make([]string, len(srcs))
	for i, s := range srcs {
		out[i] = s.url
	}
	return out
}

// peerClient fetches from other appliances. It does not check their TLS
// certificates: an appliance's certificate is often its own self-signed
// one, which no peer could verify, and nothing a peer sends is trusted
// anyway: the file's size and SHA-256 come from the shared store, and a
// file that does not match them is refused. (The image itself is not
// secret: every appliance serves it to any machine without credentials.)
func peerClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	// A peer that is down (its row still says it has the file) costs
	// each fetch this much before the next source is tried.
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // see the doc comment
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// verify hashes img's file found in root. A match makes it this
// appliance's verified copy; a mismatch removes it: it is never handed
// to a machine, and the fetch that follows replaces it.
func (y *syncer) verify(ctx context.Context, root *os.Root, img store.Image) {
	y.put(img, store.CopyVerifying, nil)
	f, err := root.Open(img.File)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, ctxReader{ctx, f}, make([]byte, 1<<20))
	if err != nil {
		if ctx.Err() == nil {
			y.l.log.Warn("hash this appliance's copy of an image", "image", img.Name, "err", err)
		}
		return
	}
	after, err := f.Stat()
	if err != nil || after.Size() != st.Size() || !after.ModTime().Equal(st.ModTime()) {
		return // changed while hashed: the next reconcile hashes it again
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if n == img.Size && sum == img.SHA256 {
		y.l.copies.set(img.Name, localCopy{sha: img.SHA256, size: st.Size(), mod: st.ModTime()})
		return
	}
	y.l.log.Warn("this appliance's copy of an image does not match the image; removed, to be fetched again",
		"image", img.Name, "size", n, "want_size", img.Size, "sha256", sum, "want_sha256", img.SHA256)
	y.l.files.Lock()
	defer y.l.files.Unlock()
	if now, err := root.Stat(img.File); err == nil && now.Size() == st.Size() && now.ModTime().Equal(st.ModTime()) {
		root.Remove(img.File)
	}
	y.l.copies.drop(img.Name)
}

// fetch fetches img from the first of its sources that gives the right
// file; when every one fails, the row says why and the image backs off.
func (y *syncer) fetch(ctx context.Context, root *os.Root, img store.Image, rows []store.ImageCopy) {
	srcs := y.sources(img, rows)
	if !y.due(img, urls(srcs)) {
		return
	}
	if len(srcs) == 0 {
		wait := y.failed(img, nil)
		y.put(img, store.CopyFailed, func(c *store.ImageCopy) {
			c.Error = fmt.Sprintf("no source: no other appliance has a verified copy yet, and %s; next try in %s", noSourceWhy(img), wait)
		})
		return
	}
	var errs []string
	for _, src := range srcs {
		err := y.fetchFrom(ctx, root, img, src)
		if err == nil {
			delete(y.retry, img.Name)
			y.l.log.Info("image copy fetched and verified", "image", img.Name, "from", src.url, "size", img.Size)
			return
		}
		if ctx.Err() != nil || errors.Is(err, errDeleted) {
			return
		}
		y.l.log.Warn("image copy fetch failed", "image", img.Name, "from", src.url, "err", err)
		errs = append(errs, src.url+": "+err.Error())
	}
	wait := y.failed(img, urls(srcs))
	y.put(img, store.CopyFailed, func(c *store.ImageCopy) {
		c.From = srcs[len(srcs)-1].url
		c.Error = strings.Join(errs, "; ") + fmt.Sprintf("; next try in %s", wait)
	})
}

func noSourceWhy(img store.Image) string {
	switch {
	case img.Source == store.ImageUpload:
		return "the image was uploaded (it has no source URL)"
	case img.SourceSHA256 != img.SHA256:
		return "its source URL gives another file (the import converted it)"
	}
	return "it has no usable source URL"
}

// fetchFrom fetches img from src into its partial file (syncTemp),
// resuming what an earlier attempt left there, and moves it into place
// only once its SHA-256 is the image's. The partial file is a dotfile,
// which the image server never serves; it is kept after a broken
// transfer, for the next attempt to resume, and removed when what it
// holds cannot be the image (too long, the wrong checksum).
func (y *syncer) fetchFrom(ctx context.Context, root *os.Root, img store.Image, src source) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tmp := syncTemp(img)
	// An attempt that got nothing leaves nothing (runs after f.Close).
	defer func() {
		if st, err := root.Stat(tmp); err == nil && st.Size() == 0 {
			root.Remove(tmp)
		}
	}()
	f, err := root.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open partial file: %w", err)
	}
	defer f.Close()
	discard := func(err error) error {
		f.Close()
		root.Remove(tmp)
		return err
	}
	h := sha256.New()
	have, err := resumeFrom(ctx, f, h, img.Size)
	if cause := context.Cause(ctx); cause != nil {
		return cause // kept, for the next start to resume
	}
	if err != nil {
		return discard(err)
	}
	var got int64
	if have < img.Size {
		client := y.l.client
		if src.peer {
			client = y.peers
		}
		body, total, start, err := y.l.fetchAt(ctx, client, src.url, have)
		if err != nil {
			return err
		}
		defer body.Close()
		if start != have { // the whole file: start over
			if err := restart(f, h); err != nil {
				return discard(err)
			}
			have = 0
		}
		if total >= 0 && have+total != img.Size {
			return fmt.Errorf("the server announces %d bytes from byte %d, the image has %d", total, have, img.Size)
		}
		progressRow := func(n int64) error {
			return y.put(img, store.CopySyncing, func(c *store.ImageCopy) { c.From, c.BytesDone, c.BytesTotal = src.url, n, img.Size })
		}
		if err := progressRow(have); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
			return discard(errDeleted)
		}
		prog := newProgress(cancel)
		defer prog.stop()
		prog.done.Store(have)
		stop := y.l.report(prog, func(n int64) {
			// The store refuses the row once the image is deleted or
			// replaced: the fetch stops there.
			if err := progressRow(n); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
				cancel(errDeleted)
			}
		})
		got, err = y.l.stream(ctx, cancel, f, body, h, prog, img.Size-have)
		stop()
		switch {
		case errors.Is(err, errTooLarge):
			return discard(fmt.Errorf("refused: the server sent more than the image's %d bytes", img.Size))
		case errors.Is(err, errDeleted):
			return discard(err)
		case err != nil:
			return err // the partial file stays, for the next attempt to resume
		}
	}
	if have+got != img.Size {
		return fmt.Errorf("%w: got %d of the image's %d bytes", errReceive, have+got, img.Size)
	}
	if err := f.Sync(); err != nil {
		return discard(fmt.Errorf("write image copy: %w", diskFull(err)))
	}
	if err := f.Close(); err != nil {
		return discard(fmt.Errorf("write image copy: %w", diskFull(err)))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != img.SHA256 {
		return discard(fmt.Errorf("refused: checksum mismatch: the file's SHA-256 is %s, not the image's %s", sum, img.SHA256))
	}
	return y.place(root, img, tmp)
}

// resumeFrom hashes the bytes an earlier attempt left in f into h and
// leaves f at their end; more than the image's size starts over.
func resumeFrom(ctx context.Context, f *os.File, h io.Writer, size int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("partial file: %w", err)
	}
	have := st.Size()
	if have > size {
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("partial file: %w", err)
		}
		return 0, nil
	}
	if have == 0 {
		return 0, nil
	}
	if _, err := io.CopyBuffer(h, io.LimitReader(ctxReader{ctx, f}, have), make([]byte, 1<<20)); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return 0, cause
		}
		return 0, fmt.Errorf("read partial file: %w", err)
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return 0, fmt.Errorf("partial file: %w", err)
	}
	return have, nil
}

// restart empties f and h: the server sent the whole file.
func restart(f *os.File, h interface{ Reset() }) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("partial file: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("partial file: %w", err)
	}
	h.Reset()
	return nil
}

// place moves the verified file tmp into place as img's file, unless the
// image was deleted or replaced meanwhile (errDeleted): under l.files,
// which a delete holds while it removes the record and its files.
func (y *syncer) place(root *os.Root, img store.Image, tmp string) error {
	y.l.files.Lock()
	defer y.l.files.Unlock()
	cur, err := y.l.s.Store.GetImage(img.Name)
	if err != nil || cur.State != store.ImageReady || cur.SHA256 != img.SHA256 || cur.File != img.File {
		root.Remove(tmp)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("check the image before placing its copy: %w", err)
		}
		return errDeleted
	}
	if err := root.Rename(tmp, img.File); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("move image copy into place: %w", err)
	}
	// The rename itself durable: a crash must not bring the partial
	// file back under the served name's absence.
	if d, err := root.Open(store.ImageDir); err == nil {
		d.Sync()
		d.Close()
	}
	y.l.placed(root, cur)
	return nil
}
