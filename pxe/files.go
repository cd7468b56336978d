package pxe

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/foundry-appliance/foundry/internal/ratelog"
)

// Reasons a request is refused; they label foundry_tftp_errors_total.
const (
	reasonBadName  = "bad_name"  // not a clean relative name
	reasonNotFound = "not_found" // no such file
	reasonDenied   = "denied"    // escapes Root, a directory, a device, …
	reasonWrite    = "write"     // write request on a read-only server
	reasonTransfer = "transfer"  // the transfer itself failed (timeout, client error)
	reasonRead     = "read"      // the file could not be read (a disk error)
	reasonPacket   = "packet"    // a datagram that is not a valid request
)

// refusal is an error whose Error text is what the client is told (pin/tftp
// sends it in the ERROR packet), so it never carries local paths; the
// detail for the log is the wrapped cause.
type refusal struct {
	reason string
	public string
	cause  error
}

func (r *refusal) Error() string { return r.public }
func (r *refusal) Unwrap() error { return r.cause }

// handler implements pin/tftp's read and write callbacks and its Hook.
type handler struct {
	root    *os.Root
	log     *slog.Logger
	metrics *metrics
	// warns lets one failure warning per reason through every ten
	// seconds: a flood of junk datagrams is counted, not logged one line
	// each (it wrote 15,000 lines in 5 s before).
	warns ratelog.Limiter
}

// cleanName turns a requested file name into a name relative to Root, or
// refuses it. Firmware sends bare names ("undionly.kpxe") and some clients
// a leading slash ("/undionly.kpxe"); both mean the same file. Anything
// that is not a plain downward path is refused outright rather than
// "cleaned": a request for "a/../../x" is an attack, not a typo. os.Root
// enforces the same boundary again when the file is opened, including for
// symlinks.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty file name")
	}
	if len(name) > 255 {
		return "", errors.New("file name too long")
	}
	for i := 0; i < len(name); i++ {
		// Printable ASCII only: no NUL or control bytes (which would also
		// garble logs), and no backslash, which some clients use as a
		// separator and which must not become part of a Linux file name.
		if c := name[i]; c < 0x21 || c > 0x7e || c == '\\' {
			return "", fmt.Errorf("byte %#02x not allowed in file name", c)
		}
	}
	rel := strings.TrimLeft(name, "/")
	if rel == "" || rel == "." || !fs.ValidPath(rel) {
		return "", errors.New("file name is not a clean relative path")
	}
	return rel, nil
}

// open resolves a requested name to an open regular file and its size.
func (h *handler) open(name string) (*os.File, int64, error) {
	rel, err := cleanName(name)
	if err != nil {
		return nil, 0, &refusal{reasonBadName, "invalid file name", err}
	}
	// Stat before opening so that a FIFO or device is refused instead of
	// blocking or being read.
	st, err := h.root.Stat(rel)
	if err != nil {
		return nil, 0, statRefusal(err)
	}
	if !st.Mode().IsRegular() {
		return nil, 0, &refusal{reasonDenied, "access violation", fmt.Errorf("%s is not a regular file (%s)", rel, st.Mode().Type())}
	}
	f, err := h.root.Open(rel)
	if err != nil {
		return nil, 0, statRefusal(err)
	}
	// The file could have been replaced between Stat and Open; the size for
	// tsize must come from the file actually sent.
	st, err = f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, &refusal{reasonDenied, "access violation", fmt.Errorf("%s changed while opening", rel)}
	}
	return f, st.Size(), nil
}

func statRefusal(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &refusal{reasonNotFound, "file not found", err}
	}
	// Escapes from Root (via ".." in a symlink or an absolute link) and
	// permission problems all land here.
	return &refusal{reasonDenied, "access violation", err}
}

// read is pin/tftp's read handler: one call per read request.
func (h *handler) read(name string, rf io.ReaderFrom) error {
	f, size, err := h.open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	// tsize: pin/tftp answers the option only when told the size (or when it
	// can seek the reader); say it explicitly.
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size)
	}
	n, err := rf.ReadFrom(publicReads{f})
	h.metrics.addBytes(n)
	if err != nil {
		// pin/tftp has already aborted the transfer and called the hook.
		return fmt.Errorf("send %s: %w", name, err)
	}
	return nil
}

// publicReads is a file whose read errors the client is told only as
// "read error": pin/tftp sends a reader's error text in its ERROR packet,
// and an *os.File's names the file's path on the appliance. The cause is
// kept for the log (refusal).
type publicReads struct{ f *os.File }

func (p publicReads) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if err != nil && err != io.EOF {
		err = &refusal{reasonRead, "read error", err}
	}
	return n, err
}

// write is pin/tftp's write handler: every write request is refused.
func (h *handler) write(name string, _ io.WriterTo) error {
	return &refusal{reasonWrite, "write requests are not accepted (read-only server)", fmt.Errorf("write request for %q", name)}
}

// OnSuccess implements tftp.Hook.
func (h *handler) OnSuccess(st tftp.TransferStats) {
	h.metrics.transfer()
	h.log.Info("tftp transfer",
		"file", st.Filename, "client", st.RemoteAddr.String(),
		"duration", st.Duration, "datagrams", st.DatagramsSent,
		"blksize", st.Opts["blksize"], "tsize", st.Opts["tsize"])
}

// OnFailure implements tftp.Hook. pin/tftp also calls it, with empty
// stats, for datagrams on the listening socket that are not requests.
func (h *handler) OnFailure(st tftp.TransferStats, err error) {
	reason := reasonTransfer
	var r *refusal
	switch {
	case errors.As(err, &r):
		reason = r.reason
	case st.RemoteAddr == nil:
		reason = reasonPacket
	}
	h.metrics.failure(reason)
	attrs := []any{"file", st.Filename, "reason", reason, "err", err}
	if st.RemoteAddr != nil {
		attrs = append(attrs, "client", st.RemoteAddr.String())
	}
	if r != nil && r.cause != nil {
		attrs = append(attrs, "cause", r.cause.Error())
	}
	ok, held := h.warns.Allow(reason, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	h.log.Warn("tftp request failed", attrs...)
}
