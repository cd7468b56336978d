package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

func copyOf(image, appliance string, st CopyState) ImageCopy {
	return ImageCopy{Image: image, Appliance: appliance, URL: "http://" + appliance + ":8080", State: st, SHA256: sumA}
}

func TestImageCopies(t *testing.T) {
	db, clk, _ := openTest(t)
	if err := db.PutImageCopy(copyOf("deb", "rack1", CopyPresent)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a copy of an image that does not exist: %v, want ErrNotFound", err)
	}
	if _, err := db.CreateImage(Image{Name: "deb", Source: ImageUpload, State: ImageImporting}, admin); err != nil {
		t.Fatal(err)
	}
	if err := db.PutImageCopy(copyOf("deb", "rack1", CopySyncing)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a copy of an image still importing: %v, want ErrInvalid", err)
	}
	if _, err := db.DeleteImage("deb", admin); err != nil {
		t.Fatal(err)
	}
	readyImage(t, db, "deb")
	readyImage(t, db, "deb2") // shares the prefix "deb": its rows must stay apart
	stale := copyOf("deb", "rack1", CopyPresent)
	stale.SHA256 = strings.Repeat("0", 64)
	if err := db.PutImageCopy(stale); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a copy vouching for another checksum: %v, want ErrInvalid", err)
	}
	for name, bad := range map[string]func(*ImageCopy){
		"appliance name": func(c *ImageCopy) { c.Appliance = "a/b" },
		"state":          func(c *ImageCopy) { c.State = "gone" },
		"no url":         func(c *ImageCopy) { c.URL = "" },
		"control in url": func(c *ImageCopy) { c.URL = "http://x/\x1b[2J" },
		"negative size":  func(c *ImageCopy) { c.BytesDone = -1 },
		"long error":     func(c *ImageCopy) { c.Error = strings.Repeat("e", maxText+1) },
	} {
		c := copyOf("deb", "rack1", CopyFailed)
		bad(&c)
		if err := db.PutImageCopy(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}

	clk.Add(time.Minute)
	for _, c := range []ImageCopy{copyOf("deb", "rack2", CopySyncing), copyOf("deb", "rack1", CopyPresent), copyOf("deb2", "rack1", CopyPresent)} {
		if err := db.PutImageCopy(c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ListImageCopies("deb")
	if err != nil || len(got) != 2 || got[0].Appliance != "rack1" || got[1].Appliance != "rack2" || got[1].State != CopySyncing {
		t.Fatalf("copies of deb: %+v %v", got, err)
	}
	if !got[0].UpdatedAt.Equal(clk.Now()) {
		t.Errorf("updated at %v, want %v", got[0].UpdatedAt, clk.Now())
	}
	if all, err := db.ListImageCopies(""); err != nil || len(all) != 3 {
		t.Fatalf("every copy: %+v %v", all, err)
	}
	before, _ := db.ListAudit(AuditFilter{})
	if err := db.PutImageCopy(copyOf("deb", "rack2", CopyPresent)); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.ListAudit(AuditFilter{}); len(after) != len(before) {
		t.Errorf("a copy's row wrote %d audit entries", len(after)-len(before))
	}

	if _, err := db.DeleteImage("deb", admin); err != nil {
		t.Fatal(err)
	}
	if left, err := db.ListImageCopies("deb"); err != nil || len(left) != 0 {
		t.Fatalf("the deleted image's copies: %+v %v", left, err)
	}
	if left, err := db.ListImageCopies("deb2"); err != nil || len(left) != 1 {
		t.Fatalf("another image's copies after the delete: %+v %v", left, err)
	}
	if err := db.PutImageCopy(copyOf("deb", "rack1", CopyPresent)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a copy written after its image's delete: %v, want ErrNotFound", err)
	}
	if d, err := db.GetDeletedImage("deb"); err != nil || d.Name != "deb" || d.SHA256 != sumA || !d.DeletedAt.Equal(clk.Now()) {
		t.Fatalf("the deleted image's mark: %+v %v", d, err)
	}
	if _, err := db.GetDeletedImage("deb2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the mark of an image never deleted: %v", err)
	}
	readyImage(t, db, "deb")
	if _, err := db.GetDeletedImage("deb"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the mark after a new image of the name: %v", err)
	}
	if _, err := db.ListImageCopies("../x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("list with a bad image name: %v", err)
	}
}

// TestImageSourceSHA256: the source's checksum is checked like the file's.
func TestImageSourceSHA256(t *testing.T) {
	db, _, _ := openTest(t)
	for sum, ok := range map[string]bool{"": true, sumA: true, strings.ToUpper(sumA): false, "abc": false} {
		_, err := db.CreateImage(Image{Name: "x", Source: ImageUpload, State: ImageImporting, SourceSHA256: sum}, admin)
		if ok != (err == nil) {
			t.Errorf("source sha256 %q: %v", sum, err)
		}
		if err == nil {
			if _, err := db.DeleteImage("x", admin); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWatchImagesLocal: on a store only this appliance writes, the watch
// has nothing to follow and ends with its context.
func TestWatchImagesLocal(t *testing.T) {
	badgerOnly(t)
	db, _, _ := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := db.WatchImages(ctx, func() { t.Error("changed called on a local store") }); err != nil {
		t.Fatal(err)
	}
}

// TestWatchImagesShared: on etcd, an image or copy written by another
// appliance's store wakes this one's watch; other records do not.
func TestWatchImagesShared(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	a, b := openShared(t, c, "fleet/"), openShared(t, c, "fleet/")
	changed := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.WatchImages(ctx, func() { changed <- struct{}{} }) }()
	time.Sleep(200 * time.Millisecond) // the watch starts from now
	wake := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s on the other store did not wake the watch", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changed:
			t.Fatalf("%s woke the image watch", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	if _, err := b.CreateCluster(Cluster{Name: "east"}, admin); err != nil {
		t.Fatal(err)
	}
	quiet("a cluster")
	readyImage(t, b, "deb")
	wake("an image")
	time.Sleep(300 * time.Millisecond) // the import's second commit
	for len(changed) > 0 {
		<-changed
	}
	if err := b.PutImageCopy(copyOf("deb", "rack2", CopyPresent)); err != nil {
		t.Fatal(err)
	}
	wake("a copy's row")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("WatchImages after cancel: %v", err)
	}
}
