package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

type runtimeStats struct{ totalAlloc, heapInuse uint64 }

func (r *runtimeStats) read() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.totalAlloc, r.heapInuse = m.TotalAlloc, m.HeapInuse
}

// countingReader produces n bytes of a pattern without holding them.
type countingReader struct {
	n, off int64
	h      io.Writer
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), r.n-r.off)
	for i := range k {
		p[i] = byte((r.off + i) * 7)
	}
	r.off += k
	r.h.Write(p[:k])
	return int(k), nil
}

// TestImageUpload streams an upload to disk: a 200 MB body costs the
// process a few MiB of allocations, not its size.
func TestImageUpload(t *testing.T) {
	e, dir := imageEnv(t)
	ctx := context.Background()
	const size = 200 << 20
	h := sha256.New()
	body := &countingReader{n: size, h: h}
	var before, after runtimeStats
	before.read()
	img, err := e.admin.UploadImage(ctx, "big", body, size, "")
	after.read()
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	if img.State != "ready" || img.Size != size || img.SHA256 != want || img.Source != "upload" || img.Format != "raw" {
		t.Fatalf("uploaded: %+v", img)
	}
	alloc := after.totalAlloc - before.totalAlloc
	t.Logf("200 MiB upload: %.1f MiB allocated in total, heap in use %.1f → %.1f MiB",
		float64(alloc)/(1<<20), float64(before.heapInuse)/(1<<20), float64(after.heapInuse)/(1<<20))
	if alloc > 32<<20 {
		t.Errorf("the upload allocated %d MiB: the body is being buffered", alloc>>20)
	}
	st, err := os.Stat(filepath.Join(dir, "library", "big.raw"))
	if err != nil || st.Size() != size {
		t.Fatalf("file: %v %v", st, err)
	}

	// A checksum mismatch fails the upload and keeps no file.
	data := diskImage(1 << 20)
	_, err = e.admin.UploadImage(ctx, "bad", bytes.NewReader(data), int64(len(data)), strings.Repeat("0", 64))
	if client.StatusOf(err) != 422 || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("mismatch: %v", err)
	}
	if img, _ := e.admin.GetImage(ctx, "bad"); img.State != "failed" || !strings.Contains(img.Error, "checksum mismatch") {
		t.Fatalf("after mismatch: %+v", img)
	}
	// The name is taken, by a ready or failed image alike.
	for _, name := range []string{"big", "bad"} {
		if _, err := e.admin.UploadImage(ctx, name, bytes.NewReader(data), int64(len(data)), ""); client.StatusOf(err) != 409 {
			t.Fatalf("upload over %s: %v", name, err)
		}
	}
	// An upload of unannounced length works, and a matching checksum passes.
	img, err = e.admin.UploadImage(ctx, "chunked", io.MultiReader(bytes.NewReader(data)), -1, sha(data))
	if err != nil || img.State != "ready" || img.Size != int64(len(data)) {
		t.Fatalf("chunked upload: %+v, %v", img, err)
	}
	// An empty body is no image.
	if _, err := e.admin.UploadImage(ctx, "empty", bytes.NewReader(nil), 0, ""); client.StatusOf(err) != 422 {
		t.Fatalf("empty upload: %v", err)
	}
	if files := libraryFiles(t, dir); strings.Join(files, " ") != "big.raw chunked.raw" {
		t.Errorf("library holds %v", files)
	}
}

// TestImageUploadTooLarge: an upload above the limit is refused, announced
// or not, and leaves no file.
func TestImageUploadTooLarge(t *testing.T) {
	e, dir := imageEnv(t, func(s *api.Server) { s.ImageMaxSize = 1 << 20 })
	ctx := context.Background()
	data := diskImage(2 << 20)
	if _, err := e.admin.UploadImage(ctx, "announced", bytes.NewReader(data), int64(len(data)), ""); client.StatusOf(err) != 413 {
		t.Fatalf("announced: %v", err)
	}
	if _, err := e.admin.GetImage(ctx, "announced"); client.StatusOf(err) != 404 {
		t.Errorf("a refused upload left a record: %v", err)
	}
	if _, err := e.admin.UploadImage(ctx, "streamed", io.MultiReader(bytes.NewReader(data)), -1, ""); client.StatusOf(err) != 413 {
		t.Fatalf("streamed: %v", err)
	}
	if img, _ := e.admin.GetImage(ctx, "streamed"); img.State != "failed" || !strings.Contains(img.Error, "larger than the limit") {
		t.Errorf("streamed: %+v", img)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
}

// TestImageRange: the image server answers Range requests, which is how
// the agent resumes an interrupted download.
func TestImageRange(t *testing.T) {
	e, _ := imageEnv(t)
	data := diskImage(1 << 20)
	img, err := e.admin.UploadImage(context.Background(), "deb", bytes.NewReader(data), int64(len(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rng        string
		from, to   int // the bytes wanted, to exclusive
		contentRng string
	}{
		{"bytes=1000-1999", 1000, 2000, "bytes 1000-1999/1048576"},
		{"bytes=524288-", 524288, 1 << 20, "bytes 524288-1048575/1048576"},
		{"bytes=-10", 1<<20 - 10, 1 << 20, "bytes 1048566-1048575/1048576"},
	} {
		req, _ := http.NewRequest("GET", e.ts.URL+img.URL, nil)
		req.Header.Set("Range", tc.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != tc.contentRng || !bytes.Equal(b, data[tc.from:tc.to]) {
			t.Errorf("%s: %d %q, %d bytes", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
	}
	if resp, err := http.Get(e.ts.URL + img.URL); err != nil || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges missing: %v %v", resp.Header, err)
	}
}

// TestImageProfileAndDecision: a profile names a ready library image, the
// agent's decision carries its appliance URL and checksum, and the image
// cannot be deleted while the profile names it.
func TestImageProfileAndDecision(t *testing.T) {
	e, dir := imageEnv(t)
	e.setup()
	ctx := context.Background()
	data := diskImage(1 << 20)
	img, err := e.admin.UploadImage(ctx, "deb", bytes.NewReader(gzipOf(t, data)), -1, "")
	if err != nil {
		t.Fatal(err)
	}
	admin := map[string]string{"Authorization": "Bearer " + e.adminToken}
	for _, tc := range []struct {
		name string
		body map[string]any
		loc  string
	}{
		{"unknown image", map[string]any{"name": "p", "kind": "image", "image": "ghost"}, "body.image"},
		{"image and url", map[string]any{"name": "p", "kind": "image", "image": "deb", "image_url": "/images/x.raw"}, "body.image_url"},
		{"netboot with image", map[string]any{"name": "p", "kind": "netboot", "kernel": "/k", "image": "deb"}, "body.image"},
		{"neither", map[string]any{"name": "p", "kind": "image"}, "body.image_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.raw("POST", "/profiles", tc.body, admin); code != 422 || !hasLocation(problem(t, body), tc.loc) {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	// An image still importing cannot be named either.
	src := newSource(t)
	if _, err := e.admin.ImportImage(ctx, api.ImageImport{Name: "half", URL: src.URL + "/slow"}); err != nil {
		t.Fatal(err)
	}
	if code, body := e.raw("POST", "/profiles", map[string]any{"name": "p", "kind": "image", "image": "half"}, admin); code != 422 || !strings.Contains(body, "not ready") {
		t.Fatalf("importing image: %d %s", code, body)
	}
	if _, err := e.admin.CreateProfile(ctx, api.ProfileCreate{Name: "lib", ProfileFields: api.ProfileFields{Kind: "image", Image: "deb"}}); err != nil {
		t.Fatal(err)
	}
	a := e.inventoried("52:54:00:00:10:01")
	if _, err := e.admin.Approve(ctx, a.mac, api.ApproveRequest{Token: a.tok.Value, Cluster: "bare", Profile: "lib", Hostname: "node-lib"}); err != nil {
		t.Fatal(err)
	}
	code, body := a.call("GET", "/agent/decision?wait=0", nil)
	d := decisionOf(t, body)
	if code != 200 || d.Decision != "image" || d.Image == nil || d.Image.URL != e.ts.URL+img.URL || d.Image.SHA256 != img.SHA256 ||
		!strings.HasSuffix(d.Image.URL, "/images/library/deb.raw.gz") {
		t.Fatalf("decision: %d %s", code, body)
	}
	if got := served(t, e, img); sha(got) != d.Image.SHA256 {
		t.Fatal("the decision's checksum is not the served file's")
	}

	// In use: refused, the file stays.
	err = e.admin.DeleteImage(ctx, "deb")
	if client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "profile lib") {
		t.Fatalf("delete in use: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "library", "deb.raw.gz")); err != nil {
		t.Fatalf("refused delete removed the file: %v", err)
	}
	// Once the profile uses a URL instead, the image can go, and its file with it.
	if _, err := e.admin.UpdateProfile(ctx, "lib", api.ProfileFields{Kind: "image", ImageURL: "/images/other.raw", ImageSHA256: sha(data)}); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.DeleteImage(ctx, "deb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "library", "deb.raw.gz")); !os.IsNotExist(err) {
		t.Fatalf("file after delete: %v", err)
	}
	if resp, _ := http.Get(e.ts.URL + img.URL); resp.StatusCode != 404 {
		t.Errorf("deleted image still served: %d", resp.StatusCode)
	}
}

// TestImageDeleteStopsImport: deleting an image that is still importing
// stops the import and leaves nothing.
func TestImageDeleteStopsImport(t *testing.T) {
	e, dir := imageEnv(t)
	src := newSource(t)
	ctx := context.Background()
	if _, err := e.admin.ImportImage(ctx, api.ImageImport{Name: "slow", URL: src.URL + "/slow"}); err != nil {
		t.Fatal(err)
	}
	<-src.slowStarted
	// Progress shows up while the import runs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		img, _ := e.admin.GetImage(ctx, "slow")
		if img.BytesDone == 1<<20 && img.BytesTotal == 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress: %+v", img)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.admin.DeleteImage(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.GetImage(ctx, "slow"); client.StatusOf(err) != 404 {
		t.Fatalf("after delete: %v", err)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}

// TestImageImportShutdownAndRestart: stopping the server stops its imports
// (failed, no partial file), and an import that a crash cut off is marked
// failed when the next server starts.
func TestImageImportShutdownAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	src := newSource(t)
	srv := &api.Server{Store: db, ImageDir: dir, Listen: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Serve(ctx) }()
	secret, hash, _ := api.NewAPIToken()
	db.CreateAPIToken(store.APIToken{ID: "a", Name: "a", Role: store.RoleAdmin, Hash: hash})
	// The import is started through the handler; Serve owns it all the same.
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	c := &client.Client{BaseURL: ts.URL, Token: secret}
	if _, err := c.ImportImage(context.Background(), api.ImageImport{Name: "cut", URL: src.URL + "/slow"}); err != nil {
		t.Fatal(err)
	}
	<-src.slowStarted
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return")
	}
	img, _ := db.GetImage("cut")
	if img.State != store.ImageFailed || !strings.Contains(img.Error, "shut down") {
		t.Fatalf("after shutdown: %+v", img)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
	if _, err := c.ImportImage(context.Background(), api.ImageImport{Name: "late", URL: src.URL + "/slow"}); client.StatusOf(err) != 503 {
		t.Fatalf("import after shutdown: %v", err)
	}

	// A crash: the record says importing, a temporary file is on disk.
	if _, err := db.CreateImage(store.Image{Name: "crashed", Source: store.ImageUpload, State: store.ImageImporting}, store.Audit{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "library", ".import-crashed-0123456789abcdef"), []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(dir, "library", "crashed.raw"), []byte("moved, not recorded"), 0o644)
	next := &api.Server{Store: db, ImageDir: dir}
	next.Handler()
	defer next.Close()
	if img, _ := db.GetImage("crashed"); img.State != store.ImageFailed || !strings.Contains(img.Error, "restarted") {
		t.Fatalf("after restart: %+v", img)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}

// TestImageUploadStopped: an upload that is deleted while it streams, or
// whose client goes away, ends failed or gone, and leaves no file.
func TestImageUploadStopped(t *testing.T) {
	e, dir := imageEnv(t)
	ctx := context.Background()
	started := func(name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if img, err := e.admin.GetImage(ctx, name); err == nil && img.State == "importing" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("upload of %s did not start", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Deleted while it streams: the uploader is told 409.
	pr, pw := io.Pipe()
	go pw.Write(make([]byte, 1<<20))
	errc := make(chan error, 1)
	go func() {
		_, err := e.admin.UploadImage(ctx, "deleted", pr, 8<<20, "")
		errc <- err
	}()
	started("deleted")
	if err := e.admin.DeleteImage(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-errc; client.StatusOf(err) != 409 && client.StatusOf(err) != 0 {
		t.Fatalf("uploader of a deleted image: %v", err)
	}
	if _, err := e.admin.GetImage(ctx, "deleted"); client.StatusOf(err) != 404 {
		t.Fatalf("after delete: %v", err)
	}

	// The client goes away: the image fails with the reason.
	pr, pw = io.Pipe()
	go pw.Write(make([]byte, 1<<20))
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		_, err := e.admin.UploadImage(cctx, "gone", pr, 8<<20, "")
		errc <- err
	}()
	started("gone")
	cancel()
	pw.CloseWithError(io.ErrClosedPipe) // the transport waits for its body writer
	<-errc
	deadline := time.Now().Add(10 * time.Second)
	for {
		img, _ := e.admin.GetImage(ctx, "gone")
		if img.State == "failed" {
			if !strings.Contains(img.Error, "receive") {
				t.Errorf("reason: %q", img.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("interrupted upload: %+v", img)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("left behind: %v", files)
	}
}
