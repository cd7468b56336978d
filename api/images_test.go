package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

// imageEnv is an env whose server has an image directory; its imports
// are stopped before the store closes.
func imageEnv(t *testing.T, configure ...func(*api.Server)) (*env, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	e := newEnv(t, append([]func(*api.Server){func(s *api.Server) { s.ImageDir = dir }}, configure...)...)
	t.Cleanup(e.srv.Close) // runs before newEnv's cleanup closes the store
	return e, dir
}

// diskImage is a raw disk image of n bytes: a boot sector signature and
// incompressible data in the first half, zeros after.
func diskImage(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := 0; i < n/2; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n/2; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipOf(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t *testing.T, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return w.EncodeAll(b, nil)
}

func xzOf(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// qcow2Of converts raw to qcow2 with qemu-img (extra: more options).
func qcow2Of(t *testing.T, raw []byte, extra ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is needed (Debian qemu-utils; make deps installs it)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.raw"), filepath.Join(dir, "out.qcow2")
	if err := os.WriteFile(in, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"convert", "-q", "-f", "raw", "-O", "qcow2"}, extra...)
	if b, err := exec.Command("qemu-img", append(args, in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// source is a web server on loopback that images are imported from.
type source struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// release unblocks /slow.
	release chan struct{}
	// slowStarted is closed once /slow has sent its first bytes.
	slowStarted chan struct{}
	once        sync.Once
}

func newSource(t *testing.T) *source {
	s := &source{files: map[string][]byte{}, release: make(chan struct{}), slowStarted: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/f/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, ok := s.files[strings.TrimPrefix(r.URL.Path, "/f/")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})
	// /chunked/N sends N bytes without announcing a length.
	mux.HandleFunc("/chunked/{n}", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.PathValue("n"), &n)
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	mux.HandleFunc("/to-raw", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/f/disk.raw", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><p>Download the image here</p>")
	})
	// /slow sends 1 MiB of an 8 MiB image, then waits for release.
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(8<<20))
		w.Write(make([]byte, 1<<20))
		w.(http.Flusher).Flush()
		s.once.Do(func() { close(s.slowStarted) })
		select {
		case <-s.release:
			w.Write(make([]byte, 7<<20))
		case <-r.Context().Done():
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

func (s *source) put(name string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = b
	return s.URL + "/f/" + name
}

// waitImage polls until image name is no longer importing.
func waitImage(t *testing.T, c *client.Client, name string) api.Image {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		img, err := c.GetImage(context.Background(), name)
		if err != nil {
			t.Fatalf("get image %s: %v", name, err)
		}
		if img.State != "importing" {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s still importing: %+v", name, img)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// served fetches an image's URL from the appliance.
func served(t *testing.T, e *env, img api.Image) []byte {
	t.Helper()
	resp, err := http.Get(e.ts.URL + img.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", img.URL, resp.StatusCode)
	}
	return b
}

// libraryFiles lists what the library directory holds, dotfiles included.
func libraryFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "library"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestImageImportFormats imports every format from a web server: the
// compressed ones are kept as they are, qcow2 becomes zstd-compressed raw,
// and the appliance serves exactly what it recorded the checksum of.
func TestImageImportFormats(t *testing.T) {
	e, dir := imageEnv(t)
	src := newSource(t)
	raw := diskImage(3 << 20)
	qcow := qcow2Of(t, raw)
	cases := []struct {
		name, file string
		body       []byte
		format     string
	}{
		{"plain", "disk.raw", raw, "raw"},
		{"gz", "disk.raw.gz", gzipOf(t, raw), "gz"},
		{"zst", "disk.img.zst", zstdOf(t, raw), "zst"},
		{"xz", "disk.xz", xzOf(t, raw), "xz"},
		{"qcow", "disk.qcow2", qcow, "zst"},
		{"qcow-compressed", "disk-c.qcow2", qcow2Of(t, raw, "-c"), "zst"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := src.put(tc.file, tc.body)
			img, err := e.admin.ImportImage(context.Background(), api.ImageImport{Name: tc.name, URL: url, SHA256: sha(tc.body)})
			if err != nil || img.State != "importing" || img.Source != url {
				t.Fatalf("import: %+v, %v", img, err)
			}
			img = waitImage(t, e.admin, tc.name)
			if img.State != "ready" || img.Format != tc.format || img.BytesDone != int64(len(tc.body)) {
				t.Fatalf("imported: %+v", img)
			}
			got := served(t, e, img)
			if sha(got) != img.SHA256 || int64(len(got)) != img.Size {
				t.Fatalf("served %d bytes with sha %s, record says %d and %s", len(got), sha(got), img.Size, img.SHA256)
			}
			wantSuffix := map[string]string{"raw": ".raw", "gz": ".raw.gz", "zst": ".raw.zst", "xz": ".raw.xz"}[tc.format]
			if img.URL != "/images/library/"+tc.name+wantSuffix {
				t.Errorf("url %s", img.URL)
			}
			if tc.format == tc.name || tc.name == "plain" {
				if !bytes.Equal(got, tc.body) {
					t.Error("the served file is not the file imported")
				}
			}
			if strings.HasPrefix(tc.name, "qcow") {
				d, _ := zstd.NewReader(nil)
				plain, err := d.DecodeAll(got, nil)
				if err != nil || !bytes.Equal(plain, raw) {
					t.Fatalf("converted image differs from the disk (%d bytes, %v)", len(plain), err)
				}
			}
		})
	}
	if files := libraryFiles(t, dir); len(files) != len(cases) {
		t.Errorf("library holds %v", files)
	}
	// A redirect to http is followed.
	src.put("disk.raw", raw)
	if _, err := e.admin.ImportImage(context.Background(), api.ImageImport{Name: "moved", URL: src.URL + "/to-raw"}); err != nil {
		t.Fatal(err)
	}
	if img := waitImage(t, e.admin, "moved"); img.State != "ready" || img.SHA256 != sha(raw) {
		t.Errorf("after redirect: %+v", img)
	}
}

// TestImageImportFails: each import that cannot succeed ends failed with
// its reason and leaves no file behind.
func TestImageImportFails(t *testing.T) {
	e, dir := imageEnv(t, func(s *api.Server) { s.ImageMaxSize = 2 << 20 })
	src := newSource(t)
	raw := diskImage(1 << 20)
	withBacking := func() []byte {
		d := t.TempDir()
		base := filepath.Join(d, "base.raw")
		os.WriteFile(base, []byte("appliance secret"), 0o644)
		ov := filepath.Join(d, "ov.qcow2")
		if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", ov).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, b)
		}
		b, _ := os.ReadFile(ov)
		return b
	}()
	hugeDisk := func() []byte {
		d := t.TempDir()
		f := filepath.Join(d, "huge.qcow2")
		if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", f, "1G").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v: %s", err, b)
		}
		b, _ := os.ReadFile(f)
		return b
	}()
	cases := []struct {
		name, url, sum, reason string
	}{
		{"mismatch", src.put("a.raw", raw), strings.Repeat("ab", 32), "checksum mismatch"},
		{"too-large", src.put("big.raw", diskImage(3<<20)), "", "larger than the limit"},
		{"too-large-unannounced", src.URL + "/chunked/3145728", "", "larger than the limit"},
		{"to-file", src.URL + "/to-file", "", `redirect to a "file" URL refused`},
		{"missing", src.URL + "/f/nothing", "", "404"},
		{"html", src.URL + "/page", "", "HTML page"},
		{"backing", src.put("ov.qcow2", withBacking), "", "backing file"},
		{"huge-disk", src.put("huge.qcow2", hugeDisk), "", "larger than the limit"},
		{"bad-qcow2", src.put("bad.qcow2", append([]byte("QFI\xfb"), make([]byte, 600)...)), "", "not a readable qcow2 image"},
		{"unreachable", "http://127.0.0.1:1/x.raw", "", "fetch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.admin.ImportImage(context.Background(), api.ImageImport{Name: tc.name, URL: tc.url, SHA256: tc.sum}); err != nil {
				t.Fatal(err)
			}
			img := waitImage(t, e.admin, tc.name)
			if img.State != "failed" || !strings.Contains(img.Error, tc.reason) || img.URL != "" {
				t.Fatalf("got %+v, want failed with %q", img, tc.reason)
			}
			if files := libraryFiles(t, dir); len(files) != 0 {
				t.Fatalf("left behind: %v", files)
			}
		})
	}
	// A failed image keeps its name until it is deleted; then it can be
	// imported again.
	if _, err := e.admin.ImportImage(context.Background(), api.ImageImport{Name: "mismatch", URL: src.put("a.raw", raw)}); client.StatusOf(err) != 409 {
		t.Fatalf("import over a failed image: %v", err)
	}
	if err := e.admin.DeleteImage(context.Background(), "mismatch"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.ImportImage(context.Background(), api.ImageImport{Name: "mismatch", URL: src.put("a.raw", raw), SHA256: strings.ToUpper(sha(raw))}); err != nil {
		t.Fatal(err)
	}
	if img := waitImage(t, e.admin, "mismatch"); img.State != "ready" {
		t.Fatalf("re-import: %+v", img)
	}
}

// TestImageImportRefused: hostile names, URLs and checksums are refused
// before anything is stored; viewers cannot import.
func TestImageImportRefused(t *testing.T) {
	e, _ := imageEnv(t)
	admin := map[string]string{"Authorization": "Bearer " + e.adminToken}
	good := "http://127.0.0.1:9/x.raw"
	for _, tc := range []struct {
		name string
		body map[string]any
		loc  string
	}{
		{"dot-dot name", map[string]any{"name": "../x", "url": good}, "body.name"},
		{"slash name", map[string]any{"name": "a/b", "url": good}, "body.name"},
		{"file URL", map[string]any{"name": "x", "url": "file:///etc/passwd"}, "body.url"},
		{"ftp URL", map[string]any{"name": "x", "url": "ftp://127.0.0.1/x.raw"}, "body.url"},
		{"relative URL", map[string]any{"name": "x", "url": "/images/x.raw"}, "body.url"},
		{"credentials", map[string]any{"name": "x", "url": "http://u:p@127.0.0.1/x.raw"}, "body.url"},
		{"newline", map[string]any{"name": "x", "url": "http://127.0.0.1/x\n.raw"}, "body.url"},
		{"short sha", map[string]any{"name": "x", "url": good, "sha256": "abc"}, "body.sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.raw("POST", "/images", tc.body, admin)
			if code != 422 || !hasLocation(problem(t, body), tc.loc) {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	if imgs, _ := e.admin.ListImages(context.Background()); len(imgs) != 0 {
		t.Fatalf("stored: %+v", imgs)
	}
	if _, err := e.viewer.ImportImage(context.Background(), api.ImageImport{Name: "x", URL: good}); client.StatusOf(err) != 403 {
		t.Fatalf("viewer import: %v", err)
	}
	if _, err := e.viewer.UploadImage(context.Background(), "x", strings.NewReader("data"), 4, ""); client.StatusOf(err) != 403 {
		t.Fatalf("viewer upload: %v", err)
	}
	for _, path := range []string{"/images/..%2Fx", "/images/.x", "/images/-x"} {
		req := e.request("PUT", path, nil, admin)
		req.Body = io.NopCloser(strings.NewReader("data"))
		if code, body := e.send(req); code != 422 && code != 404 {
			t.Errorf("PUT %s: %d %s", path, code, body)
		}
	}
	// Without an image directory there is no library.
	bare := newEnv(t)
	if _, err := bare.admin.ImportImage(context.Background(), api.ImageImport{Name: "x", URL: good}); client.StatusOf(err) != 503 {
		t.Fatalf("import without image_dir: %v", err)
	}
}
