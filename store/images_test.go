package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

const sumA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// readyImage creates name and finishes its import as zst.
func readyImage(t *testing.T, db *DB, name string) Image {
	t.Helper()
	if _, err := db.CreateImage(Image{Name: name, Source: "http://127.0.0.1/x.zst", State: ImageImporting}, admin); err != nil {
		t.Fatal(err)
	}
	img, err := db.UpdateImage(name, admin, func(i *Image) error {
		i.State, i.Format, i.File, i.SHA256, i.Size = ImageReady, ImageZstd, ImageFile(name, ImageZstd), sumA, 42
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImageLifecycle(t *testing.T) {
	db, clk, _ := openTest(t)
	created, err := db.CreateImage(Image{Name: "deb", Source: ImageUpload, State: ImageImporting}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if !created.CreatedAt.Equal(clk.Now()) {
		t.Errorf("created at %v", created.CreatedAt)
	}
	clk.Add(time.Second)
	if err := db.ImageProgress("deb", 10, 100); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetImage("deb"); got.BytesDone != 10 || got.BytesTotal != 100 || !got.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("after progress: %+v", got)
	}
	before, _ := db.ListAudit(AuditFilter{})
	for range 3 {
		if err := db.ImageProgress("deb", 20, 100); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := db.ListAudit(AuditFilter{}); len(after) != len(before) {
		t.Errorf("progress wrote %d audit entries", len(after)-len(before))
	}
	ready, err := db.UpdateImage("deb", Audit{Actor: "admin", Action: "image-ready"}, func(i *Image) error {
		i.State, i.Format, i.File, i.SHA256, i.Size = ImageReady, ImageRaw, "library/deb.raw", sumA, 100
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ready.File != ImageFile("deb", ImageRaw) {
		t.Errorf("file %q", ready.File)
	}
	if err := db.ImageProgress("deb", 1, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("progress of a ready image: %v", err)
	}
	if l, err := db.ListImages(); err != nil || len(l) != 1 || l[0] != ready {
		t.Errorf("ListImages = %+v, %v", l, err)
	}
	gone, err := db.DeleteImage("deb", admin)
	if err != nil || gone.File != "library/deb.raw" {
		t.Fatalf("DeleteImage = %+v, %v", gone, err)
	}
	if _, err := db.GetImage("deb"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := db.ImageProgress("deb", 1, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("progress of a deleted image: %v", err)
	}
	if e, _ := db.ListAudit(AuditFilter{Action: "image-ready"}); len(e) != 1 || e[0].Detail != "image deb" {
		t.Errorf("audit: %+v", e)
	}
}

func TestImageRefused(t *testing.T) {
	db, _, _ := openTest(t)
	readyImage(t, db, "deb")
	ok := Image{Name: "x", Source: "https://example.org/x.raw", State: ImageImporting}
	with := func(f func(*Image)) Image { i := ok; f(&i); return i }
	for _, tt := range []struct {
		name string
		img  Image
		want error
	}{
		{"taken", with(func(i *Image) { i.Name = "deb" }), ErrExists},
		{"slash in name", with(func(i *Image) { i.Name = "../etc" }), ErrInvalid},
		{"dot name", with(func(i *Image) { i.Name = ".." }), ErrInvalid},
		{"no state", with(func(i *Image) { i.State = "" }), ErrInvalid},
		{"no source", with(func(i *Image) { i.Source = "" }), ErrInvalid},
		{"control in source", with(func(i *Image) { i.Source = "http://a/\n" }), ErrInvalid},
		{"long source", with(func(i *Image) { i.Source = "http://a/" + strings.Repeat("a", maxSource) }), ErrInvalid},
		{"bad format", with(func(i *Image) { i.Format = "qcow2" }), ErrInvalid},
		{"file elsewhere", with(func(i *Image) { i.Format, i.File = ImageRaw, "../../data/admin-token" }), ErrInvalid},
		{"file of another name", with(func(i *Image) { i.Format, i.File = ImageRaw, "library/deb.raw" }), ErrInvalid},
		{"ready without sum", with(func(i *Image) { i.State, i.Format, i.File = ImageReady, ImageRaw, "library/x.raw" }), ErrInvalid},
		{"ready with upper-case sum", with(func(i *Image) {
			i.State, i.Format, i.File, i.SHA256 = ImageReady, ImageRaw, "library/x.raw", strings.ToUpper(sumA)
		}), ErrInvalid},
		{"negative size", with(func(i *Image) { i.Size = -1 }), ErrInvalid},
		{"accepted", ok, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.CreateImage(tt.img, admin); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestProfileNamesImage: a profile names only an existing ready image, and
// an image that a profile names cannot be deleted.
func TestProfileNamesImage(t *testing.T) {
	db, _, _ := openTest(t)
	readyImage(t, db, "deb")
	if _, err := db.CreateImage(Image{Name: "half", Source: ImageUpload, State: ImageImporting}, admin); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		p    Profile
		want error
	}{
		{"unknown image", Profile{Name: "a", Kind: ProfileImage, Image: "ghost"}, ErrInvalid},
		{"importing image", Profile{Name: "a", Kind: ProfileImage, Image: "half"}, ErrInvalid},
		{"netboot with an image", Profile{Name: "a", Kind: ProfileNetboot, Image: "deb"}, ErrInvalid},
		{"bad image name", Profile{Name: "a", Kind: ProfileImage, Image: "a/b"}, ErrInvalid},
		{"ready image", Profile{Name: "a", Kind: ProfileImage, Image: "deb"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.CreateProfile(tt.p, admin); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	_, err := db.DeleteImage("deb", admin)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "profile a") {
		t.Fatalf("delete of a used image: %v", err)
	}
	if _, err := db.UpdateProfile("a", admin, func(p *Profile) error { p.Image = "half"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("update to an importing image: %v", err)
	}
	if _, err := db.UpdateProfile("a", admin, func(p *Profile) error { p.Image, p.ImageURL = "", "http://x/y.raw"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteImage("deb", admin); err != nil {
		t.Errorf("delete of an image no profile names: %v", err)
	}
}

// TestImageDeleteRacesProfile runs an image delete against profile
// creates that name it: whatever the interleaving, no profile may name an
// image that no longer exists.
func TestImageDeleteRacesProfile(t *testing.T) {
	db, _, _ := openTest(t)
	for round := range 10 {
		name := fmt.Sprintf("img%d", round)
		readyImage(t, db, name)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				p := Profile{Name: fmt.Sprintf("p%d-%d", round, i), Kind: ProfileImage, Image: name}
				if _, err := db.CreateProfile(p, admin); err != nil && !errors.Is(err, ErrInvalid) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if _, err := db.DeleteImage(name, admin); err != nil && !errors.Is(err, ErrInUse) {
				t.Error(err)
			}
		})
		wg.Wait()
		_, ierr := db.GetImage(name)
		ps, err := db.ListProfiles()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Image == name && errors.Is(ierr, ErrNotFound) {
				t.Fatalf("round %d: profile %s names deleted image %s", round, p.Name, name)
			}
		}
	}
}

func TestFailImports(t *testing.T) {
	db, _, _ := openTest(t)
	readyImage(t, db, "done")
	for _, n := range []string{"a", "b"} {
		if _, err := db.CreateImage(Image{Name: n, Source: ImageUpload, State: ImageImporting}, admin); err != nil {
			t.Fatal(err)
		}
	}
	failed, err := db.FailImports("interrupted", Audit{Actor: "system", Action: "image-failed"})
	if err != nil || len(failed) != 2 {
		t.Fatalf("FailImports = %+v, %v", failed, err)
	}
	for _, n := range []string{"a", "b"} {
		if i, _ := db.GetImage(n); i.State != ImageFailed || i.Error != "interrupted" {
			t.Errorf("%s: %+v", n, i)
		}
	}
	if i, _ := db.GetImage("done"); i.State != ImageReady {
		t.Errorf("a ready image changed: %+v", i)
	}
	if again, err := db.FailImports("x", Audit{Actor: "system"}); err != nil || len(again) != 0 {
		t.Errorf("second FailImports = %+v, %v", again, err)
	}
}
