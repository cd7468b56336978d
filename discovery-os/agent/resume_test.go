package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cuttingServer serves one file with http.ServeContent (as the appliance
// serves /images/) and breaks connections on purpose: the i-th request's
// answer is cut after cuts[i] bytes of its body (the header complete, then
// the connection closed), or answered by override[i] instead.
type cuttingServer struct {
	t        *testing.T
	data     []byte
	modTime  time.Time
	etag     string // set as the ETag header when not ""
	cuts     map[int]int
	override map[int]http.HandlerFunc

	mu   sync.Mutex
	reqs []http.Header
}

func (s *cuttingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := len(s.reqs)
	s.reqs = append(s.reqs, r.Header.Clone())
	cut, cutting := s.cuts[i]
	h := s.override[i]
	s.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	serve := func(w http.ResponseWriter) {
		if s.etag != "" {
			w.Header().Set("ETag", s.etag)
		}
		http.ServeContent(w, r, "image", s.modTime, bytes.NewReader(s.data))
	}
	if !cutting {
		serve(w)
		return
	}
	// The whole answer is made first, so that the cut lands exactly after
	// cut bytes of the body whatever net/http buffers.
	rec := httptest.NewRecorder()
	serve(rec)
	res := rec.Result()
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", res.Status)
	res.Header.Write(buf)
	buf.WriteString("\r\n")
	body := rec.Body.Bytes()
	buf.Write(body[:min(cut, len(body))])
	buf.Flush()
}

// ranges lists each request's Range and If-Range headers.
func (s *cuttingServer) ranges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, h := range s.reqs {
		out = append(out, h.Get("Range")+"|"+h.Get("If-Range"))
	}
	return out
}

// diskFile is a 4 MiB file full of 0xee standing for a disk.
func diskFile(t *testing.T) (string, *os.File) {
	t.Helper()
	target := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(target, bytes.Repeat([]byte{0xee}, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := os.OpenFile(target, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return target, d
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// noSleep records the back-off pauses instead of waiting.
type noSleep struct {
	mu     sync.Mutex
	pauses []time.Duration
}

func (n *noSleep) sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.pauses = append(n.pauses, d)
	n.mu.Unlock()
	return ctx.Err()
}

// Downloads cut once and several times, for raw, gzip and zstd files
// validated by Last-Modified or by ETag, end with the same disk as an
// unbroken download: every resume asks for the rest from exactly where
// the cut left it, on the condition of the first answer's validator, and
// the checksum covers the whole file.
func TestWriteImageResumes(t *testing.T) {
	raw := testImage()
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	lastMod := mod.Format(http.TimeFormat)
	for _, kind := range []string{"raw", "gz", "zst"} {
		file := compress(t, kind, raw)
		for _, tc := range []struct {
			name string
			etag string
			// cuts are offsets into the file at which a connection breaks.
			cuts []int
		}{
			{"once midway", "", []int{len(file) / 2}},
			{"three times", "", []int{len(file) / 5, len(file) / 5, len(file) * 3 / 5, len(file) - 1}},
			{"before the first byte", "", []int{0, len(file) / 3}},
			{"once by etag", `"img-v1"`, []int{len(file) / 2}},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				srv := &cuttingServer{t: t, data: file, modTime: mod, etag: tc.etag, cuts: map[int]int{}}
				prev := 0
				for i, at := range tc.cuts {
					srv.cuts[i] = at - prev // bytes of this answer's body
					prev = at
				}
				ts := newServer(t, srv)
				target, d := diskFile(t)
				var last Transfer
				w := ImageWriter{HTTP: ts.Client(), Sleep: (&noSleep{}).sleep, Progress: func(tr Transfer) { last = tr }}
				n, err := w.Write(context.Background(), ts.URL+"/disk."+kind, hexSum(file), d)
				if err != nil {
					t.Fatalf("write: %v\nrequests %q", err, srv.ranges())
				}
				got, _ := os.ReadFile(target)
				if n != int64(len(raw)) || !bytes.Equal(got[:len(raw)], raw) {
					t.Fatalf("wrote %d bytes; the disk holds the image: %v", n, bytes.Equal(got[:len(raw)], raw))
				}
				if !bytes.Equal(got[len(raw):], bytes.Repeat([]byte{0xee}, len(got)-len(raw))) {
					t.Error("bytes after the image were touched")
				}
				validator := lastMod
				if tc.etag != "" {
					validator = tc.etag
				}
				want := []string{"|"}
				for _, at := range tc.cuts {
					want = append(want, fmt.Sprintf("bytes=%d-|%s", at, validator))
				}
				if got := srv.ranges(); strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("requests (Range|If-Range)\n got %q\nwant %q", got, want)
				}
				if last.Phase != PhaseVerifying || last.Done != int64(len(file)) || last.Total != int64(len(file)) || last.Resumes != len(tc.cuts) {
					t.Errorf("last progress %+v, want verifying %d of %d after %d resumes", last, len(file), len(file), len(tc.cuts))
				}
			})
		}
	}
}

// A resume answered with anything but the rest of the same file fails the
// install: the whole file again (200, as ServeContent answers when the
// file changed and If-Range no longer matches), a range that starts
// elsewhere, a different total size, a Content-Length that disagrees with
// the range, several ranges, a garbled Content-Range, or a refusal. The
// disk is left with a zeroed start, not half an image.
func TestWriteImageResumeRefused(t *testing.T) {
	raw := testImage()
	file := compress(t, "zst", raw)
	half := len(file) / 2
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	partial := func(contentRange string, body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", contentRange)
			w.WriteHeader(http.StatusPartialContent)
			w.Write(body)
		}
	}
	size := len(file)
	for _, tc := range []struct {
		name, want string
		resume     http.HandlerFunc
		changed    bool // the file's Last-Modified changes after the first answer
	}{
		{name: "file changed: ServeContent answers 200", want: "with the whole file", changed: true},
		{name: "200 to a resume", want: "with the whole file", resume: func(w http.ResponseWriter, r *http.Request) {
			w.Write(file)
		}},
		{name: "range starts earlier", want: fmt.Sprintf("from byte %d", half),
			resume: partial(fmt.Sprintf("bytes %d-%d/%d", half-10, size-1, size), file[half-10:])},
		{name: "range starts later", want: fmt.Sprintf("from byte %d", half),
			resume: partial(fmt.Sprintf("bytes %d-%d/%d", half+10, size-1, size), file[half+10:])},
		{name: "other total", want: "now says",
			resume: partial(fmt.Sprintf("bytes %d-%d/%d", half, size, size+1), append(append([]byte{}, file[half:]...), 0))},
		{name: "no Content-Range", want: "unusable Content-Range", resume: partial("", file[half:])},
		{name: "negative start", want: "unusable Content-Range", resume: partial(fmt.Sprintf("bytes -%d-%d/%d", half, size-1, size), file[half:])},
		{name: "end beyond size", want: "unusable Content-Range", resume: partial(fmt.Sprintf("bytes %d-%d/%d", half, size, size), file[half:])},
		{name: "length disagrees", want: "with Content-Length", resume: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", half, size-1, size))
			w.Header().Set("Content-Length", fmt.Sprint(size-half-1))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(file[half : size-1])
		}},
		{name: "multipart", want: "several ranges", resume: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "multipart/byteranges; boundary=x")
			w.WriteHeader(http.StatusPartialContent)
		}},
		{name: "range not satisfiable", want: "416", resume: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}},
		{name: "gone", want: "404", resume: http.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: half}, override: map[int]http.HandlerFunc{}}
			if tc.resume != nil {
				srv.override[1] = tc.resume
			}
			if tc.changed {
				srv.override[1] = func(w http.ResponseWriter, r *http.Request) {
					http.ServeContent(w, r, "image", mod.Add(time.Minute), bytes.NewReader(file))
				}
			}
			ts := newServer(t, srv)
			target, d := diskFile(t)
			sleeps := &noSleep{}
			w := ImageWriter{HTTP: ts.Client(), Sleep: sleeps.sleep}
			_, err := w.Write(context.Background(), ts.URL+"/disk.zst", hexSum(file), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if n := len(srv.ranges()); n != 2 {
				t.Errorf("%d requests, want 2: a refused resume is not asked again", n)
			}
			got, _ := os.ReadFile(target)
			if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
				t.Error("the disk's start was not zeroed after the failed install")
			}
		})
	}
}

// Failing resumes are retried with a doubling pause, a bounded number of
// times; a 503 or a refused connection is retried, and one that recovers
// within the bound completes the download.
func TestWriteImageResumeRetries(t *testing.T) {
	raw := testImage()
	file := compress(t, "gz", raw)
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	unavailable := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }

	t.Run("recovers", func(t *testing.T) {
		srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: 1000, 1: 0, 2: 0},
			override: map[int]http.HandlerFunc{3: unavailable}}
		ts := newServer(t, srv)
		target, d := diskFile(t)
		sleeps := &noSleep{}
		w := ImageWriter{HTTP: ts.Client(), Sleep: sleeps.sleep}
		if _, err := w.Write(context.Background(), ts.URL+"/disk.gz", hexSum(file), d); err != nil {
			t.Fatalf("write: %v", err)
		}
		if got, _ := os.ReadFile(target); !bytes.Equal(got[:len(raw)], raw) {
			t.Fatal("the disk does not hold the image")
		}
		// Cut after 1000 bytes: resumed at once; cut with nothing sent
		// twice and a 503: 1 s, 2 s, 4 s.
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; fmt.Sprint(sleeps.pauses) != fmt.Sprint(want) {
			t.Errorf("pauses %v, want %v", sleeps.pauses, want)
		}
	})
	t.Run("gives up", func(t *testing.T) {
		srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: 1000}, override: map[int]http.HandlerFunc{}}
		for i := 1; i < 20; i++ {
			srv.override[i] = unavailable
		}
		ts := newServer(t, srv)
		_, d := diskFile(t)
		sleeps := &noSleep{}
		w := ImageWriter{HTTP: ts.Client(), Sleep: sleeps.sleep, Attempts: 4, Backoff: 10 * time.Second}
		_, err := w.Write(context.Background(), ts.URL+"/disk.gz", hexSum(file), d)
		if err == nil || !strings.Contains(err.Error(), "4 attempts in a row failed at byte 1000") || !strings.Contains(err.Error(), "503") {
			t.Fatalf("err = %v", err)
		}
		if n := len(srv.ranges()); n != 5 {
			t.Errorf("%d requests, want the first and 4 attempts", n)
		}
		if want := []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}; fmt.Sprint(sleeps.pauses) != fmt.Sprint(want) {
			t.Errorf("pauses %v, want %v (doubling, at most 30 s)", sleeps.pauses, want)
		}
	})
	t.Run("resume limit", func(t *testing.T) {
		cuts := map[int]int{}
		for i := range 50 {
			cuts[i] = 100 // every answer breaks after 100 bytes
		}
		srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: cuts}
		ts := newServer(t, srv)
		_, d := diskFile(t)
		w := ImageWriter{HTTP: ts.Client(), Sleep: (&noSleep{}).sleep, MaxResumes: 5}
		_, err := w.Write(context.Background(), ts.URL+"/disk.gz", hexSum(file), d)
		if err == nil || !strings.Contains(err.Error(), "resumed 5 times") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: 1000, 1: 0}}
		ts := newServer(t, srv)
		_, d := diskFile(t)
		ctx, cancel := context.WithCancel(context.Background())
		w := ImageWriter{HTTP: ts.Client(), Sleep: func(ctx context.Context, _ time.Duration) error {
			cancel()
			return ctx.Err()
		}}
		if _, err := w.Write(ctx, ts.URL+"/disk.gz", hexSum(file), d); err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// An answer without a validator cannot be resumed safely: the break
// fails the install rather than splicing what may be another file.
func TestWriteImageNoValidator(t *testing.T) {
	file := compress(t, "raw", testImage())
	ts := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(file))
		buf.Write(file[:len(file)/2])
		buf.Flush()
	}))
	_, d := diskFile(t)
	_, err := (&ImageWriter{HTTP: ts.Client()}).Write(context.Background(), ts.URL+"/disk.raw", hexSum(file), d)
	if err == nil || !strings.Contains(err.Error(), "not resumable") {
		t.Fatalf("err = %v, want the download not resumable", err)
	}
}

// A server that answers an open range with part of the rest (allowed) is
// asked for the rest again; that is not a failure.
func TestWriteImageShortRanges(t *testing.T) {
	file := compress(t, "zst", testImage())
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: 100}, override: map[int]http.HandlerFunc{}}
	for i := 1; i < 200; i++ {
		srv.override[i] = func(w http.ResponseWriter, r *http.Request) {
			var from int
			fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from)
			to := min(from+64<<10, len(file)) - 1
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, len(file)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(file[from : to+1])
		}
	}
	ts := newServer(t, srv)
	_, d := diskFile(t)
	sleeps := &noSleep{}
	w := ImageWriter{HTTP: ts.Client(), Sleep: sleeps.sleep, MaxResumes: 1000}
	if _, err := w.Write(context.Background(), ts.URL+"/disk.zst", hexSum(file), d); err != nil {
		t.Fatalf("write: %v", err)
	}
	if len(sleeps.pauses) != 0 {
		t.Errorf("paused %v between complete partial answers", sleeps.pauses)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		first, last, size int64
		ok                bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes 5-9/9", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes +5-9/10", 0, 0, 0, false},
		{"bytes 5-9/-1", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"items 0-9/10", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/*", 0, 0, 0, false},
		{"bytes 0-9 /10", 0, 0, 0, false},
	} {
		first, last, size, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (first != tc.first || last != tc.last || size != tc.size)) {
			t.Errorf("%q: %d %d %d %v", tc.in, first, last, size, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes 1-0/2", "bytes 0-0/0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, size, err := parseContentRange(s)
		if err != nil {
			return
		}
		if first < 0 || last < first || (size != -1 && last >= size) {
			t.Fatalf("%q accepted as %d-%d/%d", s, first, last, size)
		}
	})
}
