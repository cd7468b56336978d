package api_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

// sharedDisk models the appliance's data disk: capacity bytes holding the
// database (not counted) and the image directory, whose files take what
// they hold. An import fills it as it streams.
type sharedDisk struct {
	dir      string
	capacity atomic.Int64
}

func (d *sharedDisk) free(string) (int64, error) {
	var used int64
	filepath.WalkDir(d.dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				used += fi.Size()
			}
		}
		return nil
	})
	return d.capacity.Load() - used, nil
}

// imageSpaceEnv is an image env on a shared data disk of capacity bytes.
func imageSpaceEnv(t *testing.T, capacity int64) (*env, *sharedDisk) {
	t.Helper()
	d := &sharedDisk{dir: filepath.Join(t.TempDir(), "images")}
	d.capacity.Store(capacity)
	e := newSpaceEnv(t, d.free, func(s *api.Server) { s.ImageDir = d.dir })
	return e, d
}

// apiStatus is the status of a client error (0: none or another error).
func apiStatus(err error) (int, string) {
	var ae *client.Error
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.Problem.Detail
	}
	return 0, ""
}

// An image that would take the database's reserve is stopped while it
// streams in — an upload answered 507, an import by URL failed — with the
// reason kept on the failed image, its partial file removed, and the
// store still taking writes; a smaller image then fits.
func TestImageStoppedWhenTheDiskFills(t *testing.T) {
	// Free space 16 MiB; the store keeps 4 MiB, imports stop below 6 MiB.
	e, d := imageSpaceEnv(t, 16<<20)
	ctx := context.Background()
	check := func(name string) {
		t.Helper()
		img, err := e.admin.GetImage(ctx, name)
		if err != nil || img.State != "failed" || !strings.Contains(img.Error, "data disk full") || !strings.Contains(img.Error, "image imports need") {
			t.Errorf("image %s after the disk filled: %+v, %v; want failed saying the disk is full", name, img, err)
		}
		if files := libraryFiles(t, d.dir); len(files) != 0 {
			t.Errorf("image %s left %v in the library", name, files)
		}
		if err := e.db.Writable(); err != nil {
			t.Errorf("the store after image %s stopped: %v; the import must stop before the reserve", name, err)
		}
	}

	_, err := e.admin.UploadImage(ctx, "big", &countingReader{n: 32 << 20, h: sha256.New()}, 32<<20, "")
	if code, detail := apiStatus(err); code != http.StatusInsufficientStorage || !strings.Contains(detail, "data disk full") {
		t.Errorf("upload that fills the disk: %v; want 507 saying the data disk is full", err)
	}
	check("big")

	src := newSource(t)
	if _, err := e.admin.ImportImage(ctx, api.ImageImport{Name: "remote", URL: src.put("big.raw", diskImage(32<<20))}); err != nil {
		t.Fatal(err)
	}
	waitImage(t, e.admin, "remote")
	check("remote")

	img, err := e.admin.UploadImage(ctx, "small", &countingReader{n: 4 << 20, h: sha256.New()}, 4<<20, "")
	if err != nil || img.State != "ready" {
		t.Errorf("an image that fits, after the stopped ones: %+v, %v", img, err)
	}
}

// With the disk already too full, an import or an upload is refused
// before anything is written: 507, no image record.
func TestImageRefusedOnFullDisk(t *testing.T) {
	e, d := imageSpaceEnv(t, 1<<30)
	d.capacity.Store(5 << 20) // the store still writes; imports need 6 MiB
	ctx := context.Background()
	src := newSource(t)
	_, err := e.admin.ImportImage(ctx, api.ImageImport{Name: "remote", URL: src.put("disk.raw", diskImage(1<<20))})
	if code, detail := apiStatus(err); code != http.StatusInsufficientStorage || !strings.Contains(detail, "image imports need 6 MiB") {
		t.Errorf("import on a full disk: %v; want 507 saying how much imports need", err)
	}
	_, err = e.admin.UploadImage(ctx, "up", &countingReader{n: 1 << 20, h: sha256.New()}, 1<<20, "")
	if code, _ := apiStatus(err); code != http.StatusInsufficientStorage {
		t.Errorf("upload on a full disk: %v; want 507", err)
	}
	if imgs, err := e.admin.ListImages(ctx); err != nil || len(imgs) != 0 {
		t.Errorf("images after the refusals: %+v, %v; want none", imgs, err)
	}

	// Below the store's own reserve its message answers.
	d.capacity.Store(1 << 20)
	_, err = e.admin.ImportImage(ctx, api.ImageImport{Name: "remote", URL: src.put("disk.raw", diskImage(1<<20))})
	if code, detail := apiStatus(err); code != http.StatusInsufficientStorage || !strings.Contains(detail, "writes resume once") {
		t.Errorf("import with the store refusing writes: %v; want 507 with the store's message", err)
	}
}
