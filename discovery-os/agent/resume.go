package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// permanentError is a download failure that asking again cannot mend:
// the server refused the file, or changed it, or answered a resume with
// something other than the rest of the file it first described.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// permanent makes an error that resumingBody gives up on at once.
func permanent(format string, args ...any) error {
	return permanentError{fmt.Errorf(format, args...)}
}

// resumingBody is the body of an image download that outlives its
// connection. When the transfer breaks before the end of the file (a reset,
// an unexpected EOF, fewer bytes than Content-Length), it asks for the rest
// with "Range: bytes=<offset>-" on the condition "If-Range: <validator>",
// the first answer's strong ETag or else its Last-Modified, so that it only
// ever splices the rest of the same file; the reader above it (the
// checksum and the decompressor) sees one unbroken stream. A resume that
// is answered with the whole file (200: the file changed, or the server
// ignores ranges) or with a range other than the one asked for fails the
// download: restarting mid-stream would feed the decompressor the file's
// start twice.
type resumingBody struct {
	ctx context.Context
	hc  Doer
	url string
	w   *ImageWriter
	// validator is "" until the first answer; a first answer without a
	// usable one makes the download unresumable.
	validator string
	opened    bool
	// size is the file's length (-1: unknown); off is how much of it was
	// delivered; end is where the current answer stops (-1: unknown).
	size, off, end int64
	body           io.ReadCloser
	// failed counts the attempts since the last byte arrived; resumes
	// counts every request after the first.
	failed, resumes int
	lastErr         error
}

// openDownload sends the first request and returns the body positioned at
// the start of the file.
func (w *ImageWriter) openDownload(ctx context.Context, imgURL string) (*resumingBody, error) {
	r := &resumingBody{ctx: ctx, hc: w.http(), url: imgURL, w: w, size: -1, end: -1}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *resumingBody) Close() error {
	if r.body != nil {
		err := r.body.Close()
		r.body = nil
		return err
	}
	return nil
}

func (r *resumingBody) Read(p []byte) (int, error) {
	for {
		if r.body == nil {
			if err := r.open(); err != nil {
				return 0, err
			}
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.failed = 0
		}
		if err == nil {
			return n, nil
		}
		if errors.Is(err, io.EOF) {
			switch {
			case r.end >= 0 && r.off < r.end:
				err = fmt.Errorf("connection closed after %d of %d bytes: %w", r.off, r.end, io.ErrUnexpectedEOF)
			case r.size < 0 || r.off >= r.size:
				return n, io.EOF
			default:
				// A partial answer ended where it said it would, before
				// the end of the file: ask for the rest.
				err = nil
			}
		}
		if r.ctx.Err() != nil {
			return n, r.ctx.Err()
		}
		if err != nil && r.validator == "" {
			return n, fmt.Errorf("download image: %w (not resumable: the server sent no ETag or Last-Modified)", err)
		}
		r.body.Close()
		r.body = nil
		if err != nil {
			r.lastErr = err
			r.w.log().Warn("image download broke off; resuming", "offset", r.off, "size", r.size, "err", err)
		}
		if n > 0 {
			return n, nil
		}
	}
}

// open asks for the file from r.off, retrying with back-off while the
// failures are worth retrying, and sets r.body.
func (r *resumingBody) open() error {
	for {
		if r.opened && r.resumes >= r.w.maxResumes() {
			return fmt.Errorf("download image: resumed %d times, the limit, and broke off again at byte %d: %w", r.resumes, r.off, cause(r.lastErr))
		}
		if r.failed >= r.w.attempts() {
			return fmt.Errorf("download image: %d attempts in a row failed at byte %d: %w", r.failed, r.off, cause(r.lastErr))
		}
		if r.failed > 0 {
			if err := r.w.sleep(r.ctx, r.w.backoff(r.failed)); err != nil {
				return err
			}
		}
		r.failed++
		if r.opened {
			r.resumes++
		}
		err := r.request()
		if err == nil {
			r.opened = true
			return nil
		}
		if r.ctx.Err() != nil {
			return r.ctx.Err()
		}
		if errors.As(err, new(permanentError)) {
			return err
		}
		r.lastErr = err
		r.w.log().Warn("image download request failed", "offset", r.off, "attempt", r.failed, "err", err)
	}
}

// request sends one GET and checks its answer: the whole file the first
// time, the rest of the same file after that.
func (r *resumingBody) request() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return permanent("image request: %v", err)
	}
	// Offsets count the file as published; a transparently decoded
	// Content-Encoding would make them count something else.
	req.Header.Set("Accept-Encoding", "identity")
	if r.opened {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
		req.Header.Set("If-Range", r.validator)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("download image: %w", err)
	}
	if err := r.accept(resp); err != nil {
		resp.Body.Close()
		return err
	}
	return nil
}

// accept checks an answer and makes its body the one read.
func (r *resumingBody) accept(resp *http.Response) error {
	host := hostOf(r.url)
	retryable := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	if !r.opened {
		switch {
		case resp.StatusCode == http.StatusOK:
		case retryable:
			return fmt.Errorf("download image: %s answered %s", host, resp.Status)
		default:
			return permanent("download image: %s answered %s", host, resp.Status)
		}
		r.validator = validator(resp.Header)
		r.size, r.end = resp.ContentLength, resp.ContentLength
		r.body = resp.Body
		if r.size >= 0 {
			r.body = limitBody(resp.Body, r.size)
		}
		return nil
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK:
		return permanent("download image: %s answered the resume at byte %d with the whole file: the image changed on the server, or it ignores ranges", host, r.off)
	case retryable:
		return fmt.Errorf("download image: %s answered the resume at byte %d with %s", host, r.off, resp.Status)
	default:
		return permanent("download image: %s answered the resume at byte %d with %s", host, r.off, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
		return permanent("download image: %s answered the resume with several ranges (%s)", host, mt)
	}
	first, last, size, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return permanent("download image: %s answered the resume at byte %d with %w", host, r.off, err)
	}
	switch {
	case first != r.off:
		return permanent("download image: asked for the rest from byte %d, %s sent bytes %d-%d", r.off, host, first, last)
	case size >= 0 && r.size >= 0 && size != r.size:
		return permanent("download image: the image was %d bytes, %s now says %d", r.size, host, size)
	case resp.ContentLength >= 0 && resp.ContentLength != last-first+1:
		return permanent("download image: %s sent bytes %d-%d with Content-Length %d", host, first, last, resp.ContentLength)
	}
	if r.size < 0 {
		r.size = size
	}
	r.end = last + 1
	r.body = limitBody(resp.Body, last-first+1)
	return nil
}

// cause is err, or a stand-in when there was none.
func cause(err error) error {
	if err == nil {
		return errors.New("no error recorded")
	}
	return err
}

// parseContentRange reads "bytes first-last/size" (size "*": unknown, -1).
func parseContentRange(s string) (first, last, size int64, err error) {
	bad := fmt.Errorf("an unusable Content-Range %q", printable(s))
	spec, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, bad
	}
	rng, total, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, bad
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, bad
	}
	if first, err = parseOffset(a); err != nil {
		return 0, 0, 0, bad
	}
	if last, err = parseOffset(b); err != nil || last < first {
		return 0, 0, 0, bad
	}
	size = -1
	if total != "*" {
		if size, err = parseOffset(total); err != nil || last >= size {
			return 0, 0, 0, bad
		}
	}
	return first, last, size, nil
}

// parseOffset accepts decimal digits only (ParseInt alone would take a
// sign).
func parseOffset(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a byte offset: %q", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

// validator is what If-Range may carry: a strong ETag (a weak one never
// matches there), else Last-Modified; "" when the answer has neither.
func validator(h http.Header) string {
	if et := strings.TrimSpace(h.Get("ETag")); strings.HasPrefix(et, `"`) && strings.HasSuffix(et, `"`) && len(et) >= 2 {
		return et
	}
	if lm := h.Get("Last-Modified"); lm != "" {
		if _, err := http.ParseTime(lm); err == nil {
			return lm
		}
	}
	return ""
}

// limitBody stops at n bytes: a server that sends more than it declared
// does not get its extra bytes into the file.
func limitBody(rc io.ReadCloser, n int64) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(rc, n), rc}
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return "the server"
}

// backoff is the pause before retry k (1, 2, …): Backoff doubled each
// time, at most 30 s.
func (w *ImageWriter) backoff(k int) time.Duration {
	d := w.Backoff
	if d <= 0 {
		d = time.Second
	}
	for i := 1; i < k && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

func (w *ImageWriter) attempts() int {
	if w.Attempts > 0 {
		return w.Attempts
	}
	return 6
}

func (w *ImageWriter) maxResumes() int {
	if w.MaxResumes > 0 {
		return w.MaxResumes
	}
	return 100
}

func (w *ImageWriter) sleep(ctx context.Context, d time.Duration) error {
	if w.Sleep != nil {
		return w.Sleep(ctx, d)
	}
	return Pause(ctx, d)
}

func (w *ImageWriter) http() Doer {
	if w.HTTP != nil {
		return w.HTTP
	}
	return http.DefaultClient
}

func (w *ImageWriter) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.New(slog.DiscardHandler)
}
