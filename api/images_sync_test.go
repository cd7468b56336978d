package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// Two appliances in one process: e (the one machines boot through, "B")
// and peers that share its store, each with an image directory of its own.

// peer is another appliance on e's store.
type peer struct {
	srv *api.Server
	ts  *httptest.Server
	dir string
	c   *client.Client
	// down makes its /images/ answer 503 while set.
	down atomic.Bool
}

func newPeer(t *testing.T, e *env) *peer {
	t.Helper()
	p := &peer{dir: filepath.Join(t.TempDir(), "images")}
	p.srv = &api.Server{Store: e.db, ImageDir: p.dir, Now: e.clock.Now, KeepAlive: time.Hour}
	h := p.srv.Handler()
	p.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() && strings.HasPrefix(r.URL.Path, "/images/") {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	p.c = &client.Client{BaseURL: p.ts.URL, Token: e.adminToken}
	t.Cleanup(func() {
		p.ts.CloseClientConnections()
		p.ts.Close()
		p.srv.Close()
	})
	return p
}

// syncing runs srv's SyncImages as appliance name at url, quickly, until
// the test ends (before the store closes).
func syncing(t *testing.T, srv *api.Server, name, url string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.SyncImages(ctx, api.ImageSync{Name: name, URL: url, Interval: 50 * time.Millisecond, Retry: 50 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("SyncImages %s: %v", name, err)
		}
	})
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func copyState(img api.Image, appliance string) string {
	for _, c := range img.Appliances {
		if c.Appliance == appliance {
			return c.State
		}
	}
	return ""
}

func copyOf(img api.Image, appliance string) api.ImageCopy {
	for _, c := range img.Appliances {
		if c.Appliance == appliance {
			return c
		}
	}
	return api.ImageCopy{}
}

// readyImage stores a ready image record for data (as if imported by
// another appliance): no file anywhere yet.
func readyImage(t *testing.T, db *store.DB, name, source string, data []byte) store.Image {
	t.Helper()
	a := store.Audit{Actor: "test", Action: "image-import"}
	if _, err := db.CreateImage(store.Image{Name: name, Source: source, State: store.ImageImporting}, a); err != nil {
		t.Fatal(err)
	}
	img, err := db.UpdateImage(name, a, func(i *store.Image) error {
		i.State, i.Format, i.File, i.Size, i.SHA256 = store.ImageReady, store.ImageRaw, store.ImageFile(name, store.ImageRaw), int64(len(data)), sha(data)
		if source != store.ImageUpload {
			i.SourceSHA256 = i.SHA256
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageSyncFromPeer: an image uploaded through one appliance is
// fetched by the other from it, verified, and only then given to a
// machine booting through the other: until then its agent is told to
// wait, and its long poll answers as soon as the copy is verified. A copy
// changed on disk afterwards is found out, removed and fetched again.
func TestImageSyncFromPeer(t *testing.T) {
	e, dir := imageEnv(t)
	e.setup()
	a := newPeer(t, e)
	a.down.Store(true)
	syncing(t, a.srv, "a", a.ts.URL)
	syncing(t, e.srv, "b", e.ts.URL)
	ctx := context.Background()

	data := diskImage(2 << 20)
	up, err := a.c.UploadImage(ctx, "deb", bytes.NewReader(data), int64(len(data)), sha(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateProfile(ctx, api.ProfileCreate{Name: "lib", ProfileFields: api.ProfileFields{Kind: "image", Image: "deb"}}); err != nil {
		t.Fatal(err)
	}
	m := e.inventoried("52:54:00:00:20:01")
	if _, err := e.admin.Approve(ctx, m.mac, api.ApproveRequest{Token: m.tok.Value, Cluster: "bare", Profile: "lib", Hostname: "node-sync"}); err != nil {
		t.Fatal(err)
	}

	// A does not serve it yet: B has no copy, and says so.
	eventually(t, "B's fetch from A failing", func() bool {
		img, err := e.admin.GetImage(ctx, "deb")
		return err == nil && img.Here == "failed" && copyState(img, "b") == "failed" && copyState(img, "a") == "present"
	})
	img, _ := e.admin.GetImage(ctx, "deb")
	if c := copyOf(img, "b"); !strings.Contains(c.Error, "503") || c.From != a.ts.URL+up.URL {
		t.Errorf("B's failed copy: %+v", c)
	}
	if got, _ := a.c.GetImage(ctx, "deb"); got.Here != "present" {
		t.Errorf("A's own view of its copy: %q", got.Here)
	}
	code, body := m.call("GET", "/agent/decision?wait=0", nil)
	if d := decisionOf(t, body); code != 200 || d.Decision != "wait" || d.Image != nil || !strings.Contains(d.Message, "not on this appliance") {
		t.Fatalf("decision while B lacks the copy: %d %s", code, body)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("B's library while it has no good copy: %v", files)
	}

	// A serves it: the agent's long poll is answered once B's copy is verified.
	type answer struct {
		code int
		body string
		took time.Duration
	}
	poll := make(chan answer)
	go func() {
		start := time.Now()
		code, body := m.call("GET", "/agent/decision?wait=20", nil)
		poll <- answer{code, body, time.Since(start)}
	}()
	time.Sleep(100 * time.Millisecond)
	a.down.Store(false)
	got := <-poll
	d := decisionOf(t, got.body)
	if got.code != 200 || d.Decision != "image" || d.Image == nil || d.Image.URL != e.ts.URL+up.URL || d.Image.SHA256 != sha(data) {
		t.Fatalf("decision once B has the copy: %d %s", got.code, got.body)
	}
	t.Logf("the waiting agent was answered %v after its poll began", got.took.Round(time.Millisecond))
	if got.took > 10*time.Second {
		t.Errorf("the long poll took %v: it should end when the copy is verified", got.took)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "library", "deb.raw")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("B's copy: %v", err)
	}
	if b := served(t, e, up); !bytes.Equal(b, data) {
		t.Fatal("B serves other bytes than uploaded to A")
	}
	img, _ = e.admin.GetImage(ctx, "deb")
	if img.Here != "present" || copyState(img, "b") != "present" || copyState(img, "a") != "present" || copyOf(img, "b").URL != e.ts.URL {
		t.Fatalf("after the sync: %+v", img)
	}
	if list, err := e.admin.ListImages(ctx); err != nil || len(list) != 1 || len(list[0].Appliances) != 2 || list[0].Here != "present" {
		t.Fatalf("the list: %+v %v", list, err)
	}

	// A copy changed on B's disk (same size) is hashed again, refused and
	// replaced; meanwhile machines are told to wait.
	bad := bytes.Clone(data)
	bad[len(bad)-1] ^= 0xff
	a.down.Store(true)
	time.Sleep(20 * time.Millisecond) // a different modification time
	if err := os.WriteFile(filepath.Join(dir, "library", "deb.raw"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to refuse its changed copy", func() bool {
		img, _ := e.admin.GetImage(ctx, "deb")
		_, err := os.Stat(filepath.Join(dir, "library", "deb.raw"))
		return img.Here != "present" && os.IsNotExist(err)
	})
	if _, body := m.call("GET", "/agent/decision?wait=0", nil); decisionOf(t, body).Decision != "wait" {
		t.Fatalf("decision with a changed copy: %s", body)
	}
	a.down.Store(false)
	eventually(t, "B to fetch it again", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "library", "deb.raw"))
		return err == nil && bytes.Equal(b, data)
	})
}

// hostile is an appliance that claims a copy it does not have right.
func hostile(t *testing.T, serve func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(serve))
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts
}

// TestImageSyncRefusesBadCopy: a peer that sends other bytes of the right
// size, or more bytes than the image has, is refused by the checksum and
// the size: nothing reaches B's library (not even under a dotfile name),
// the row says why, and B tries again, from a good peer once one appears.
func TestImageSyncRefusesBadCopy(t *testing.T) {
	e, dir := imageEnv(t)
	e.setup()
	data := diskImage(1 << 20)
	img := readyImage(t, e.db, "deb", store.ImageUpload, data)
	tampered := bytes.Clone(data)
	tampered[4096] ^= 1
	evil := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(tampered))
	})
	long := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(data)
		w.Write([]byte("and then some"))
	})
	for name, url := range map[string]string{"evil": evil.URL, "long": long.URL} {
		if err := e.db.PutImageCopy(store.ImageCopy{Image: "deb", Appliance: name, URL: url, State: store.CopyPresent, SHA256: img.SHA256}); err != nil {
			t.Fatal(err)
		}
	}
	syncing(t, e.srv, "b", e.ts.URL)
	ctx := context.Background()
	eventually(t, "B to refuse both peers", func() bool {
		img, _ := e.admin.GetImage(ctx, "deb")
		return copyState(img, "b") == "failed"
	})
	got, _ := e.admin.GetImage(ctx, "deb")
	c := copyOf(got, "b")
	if !strings.Contains(c.Error, "checksum mismatch") || !strings.Contains(c.Error, "more than the image's") || got.Here != "failed" {
		t.Fatalf("B's row after two bad peers: %+v", got)
	}
	if files := libraryFiles(t, dir); len(files) != 0 {
		t.Fatalf("B's library after refusing: %v", files)
	}

	// A good peer appears: B tries at once (a new source ends the back-off).
	good := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	if err := e.db.PutImageCopy(store.ImageCopy{Image: "deb", Appliance: "good", URL: good.URL, State: store.CopyPresent, SHA256: img.SHA256}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to take the good peer's copy", func() bool {
		img, _ := e.admin.GetImage(ctx, "deb")
		return img.Here == "present"
	})
	if b, err := os.ReadFile(filepath.Join(dir, "library", "deb.raw")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("B's copy: %v", err)
	}
	if files := libraryFiles(t, dir); !slices.Equal(files, []string{"deb.raw"}) {
		t.Fatalf("B's library: %v", files)
	}
}

// TestImageSyncResume: a fetch from the image's source that breaks off
// leaves only a dotfile, which is never served, and the next attempt asks
// for the rest (Range) and finishes the file.
func TestImageSyncResume(t *testing.T) {
	e, dir := imageEnv(t)
	e.setup()
	data := diskImage(4 << 20)
	half := len(data) / 2
	var (
		mu      sync.Mutex
		ranges  []string
		calls   int
		sent    = make(chan struct{})
		release = make(chan struct{})
	)
	src := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if !first {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:half])
		w.(http.Flusher).Flush()
		close(sent)
		<-release
		panic(http.ErrAbortHandler) // the connection breaks off
	})
	img := readyImage(t, e.db, "deb", src.URL+"/deb.raw", data)
	syncing(t, e.srv, "b", e.ts.URL)
	ctx := context.Background()
	<-sent
	eventually(t, "the partial file on disk", func() bool {
		st, err := os.Stat(filepath.Join(dir, "library", ".sync-deb-"+img.SHA256[:16]))
		return err == nil && st.Size() == int64(half)
	})
	if files := libraryFiles(t, dir); len(files) != 1 || !strings.HasPrefix(files[0], ".sync-") {
		t.Fatalf("B's library during the fetch: %v", files)
	}
	for _, path := range []string{"/images/library/deb.raw", "/images/library/" + ".sync-deb-" + img.SHA256[:16]} {
		if resp, err := http.Get(e.ts.URL + path); err != nil || resp.StatusCode != 404 {
			t.Fatalf("GET %s during the fetch: %v %v", path, resp.StatusCode, err)
		}
	}
	if got, _ := e.admin.GetImage(ctx, "deb"); got.Here != "syncing" || copyOf(got, "b").From != src.URL+"/deb.raw" {
		t.Errorf("B's copy during the fetch: %+v", got)
	}
	close(release)
	eventually(t, "the fetch resumed and finished", func() bool {
		got, _ := e.admin.GetImage(ctx, "deb")
		return got.Here == "present"
	})
	mu.Lock()
	defer mu.Unlock()
	if want := fmt.Sprintf("bytes=%d-", half); len(ranges) != 2 || ranges[0] != "" || ranges[1] != want {
		t.Fatalf("requests' ranges %q, want none then %q", ranges, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "library", "deb.raw")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the resumed copy: %v", err)
	}
	if files := libraryFiles(t, dir); !slices.Equal(files, []string{"deb.raw"}) {
		t.Fatalf("B's library after: %v", files)
	}
}

// TestImageSyncDeletion: an image deleted on another appliance is removed
// from this one's library by the sync, with the partial fetches no image
// wants and the leftovers of images deleted before it started; a file the
// library never wrote (no image ever had its name) is left alone.
func TestImageSyncDeletion(t *testing.T) {
	e, dir := imageEnv(t)
	e.setup()
	a := newPeer(t, e)
	syncing(t, a.srv, "a", a.ts.URL)
	ctx := context.Background()
	data := diskImage(1 << 20)
	if _, err := a.c.UploadImage(ctx, "deb", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "library")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	readyImage(t, e.db, "gone", store.ImageUpload, []byte("old"))
	if _, err := e.db.DeleteImage("gone", store.Audit{Actor: "test", Action: "image-delete"}); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{"gone.raw": "old", ".sync-old-0123456789abcdef": "partial", "notes.txt": "mine", "handmade.raw": "mine"} {
		if err := os.WriteFile(filepath.Join(lib, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	syncing(t, e.srv, "b", e.ts.URL)
	eventually(t, "B's copy", func() bool {
		img, _ := e.admin.GetImage(ctx, "deb")
		return img.Here == "present"
	})
	if files := libraryFiles(t, dir); !slices.Equal(files, []string{"deb.raw", "handmade.raw", "notes.txt"}) {
		t.Fatalf("B's library after its first sync: %v", files)
	}
	if err := a.c.DeleteImage(ctx, "deb"); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "B to remove the deleted image's file", func() bool {
		return slices.Equal(libraryFiles(t, dir), []string{"handmade.raw", "notes.txt"})
	})
	t.Logf("removed %v after the delete on the other appliance", took.Round(time.Millisecond))
	if rows, err := e.db.ListImageCopies(""); err != nil || len(rows) != 0 {
		t.Fatalf("copies' rows after the delete: %+v %v", rows, err)
	}
	if files := libraryFiles(t, a.dir); len(files) != 0 {
		t.Fatalf("A's library after its delete: %v", files)
	}
}
