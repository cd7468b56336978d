package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// TestFleetImages runs two real appliances on one real etcd, each with an
// image directory of its own: an image uploaded through A appears,
// verified, in B's image directory and B serves it byte for byte; a copy
// at A that no longer matches its checksum (changed on A's disk behind its
// back) is refused by B; deleting an image through B removes its file
// from A's image directory.
func TestFleetImages(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	dirA, dirB := imageDir(t), imageDir(t)
	const baseA, baseB = "http://127.0.0.1:8097", "http://127.0.0.1:8098"
	a := startAppliance(t, t.TempDir(), dirA, fleetConfig(c.Endpoints(), `
http:
  listen: "127.0.0.1:8097"
  advertise: "`+baseA+`"
tftp:
  listen: "127.0.0.1:6997"
`), baseA)
	b := startAppliance(t, t.TempDir(), dirB, fleetConfig(c.Endpoints(), `
http:
  listen: "127.0.0.1:8098"
  advertise: "`+baseB+`"
tftp:
  listen: "127.0.0.1:6998"
`), baseB)
	ctx := context.Background()
	ca := &client.Client{BaseURL: baseA, Token: adminToken}
	cb := &client.Client{BaseURL: baseB, Token: adminToken}

	one := randomImage(8<<20, 1)
	start := time.Now()
	up, err := ca.UploadImage(ctx, "one", bytes.NewReader(one), int64(len(one)), sum(one))
	if err != nil {
		t.Fatal(err)
	}
	took := waitFile(t, filepath.Join(dirB, "library", "one.raw"), one, 10*time.Second)
	t.Logf("an 8 MiB image uploaded through A was verified in B's image_dir %v after the upload ended (%v after it began)",
		took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if code, body := get(t, baseB+up.URL); code != 200 || body != string(one) {
		t.Fatalf("B serves %s: %d, %d bytes, identical %t", up.URL, code, len(body), body == string(one))
	}
	img := waitImageOn(t, cb, "one", func(i api.Image) bool { return i.Here == "present" && len(i.Appliances) == 2 })
	for _, cp := range img.Appliances {
		if cp.State != "present" || (cp.URL != baseA && cp.URL != baseB) {
			t.Errorf("copy of one: %+v", cp)
		}
	}

	// A copy changed on A's disk with its size and time kept, as a disk
	// that rots or someone who covers their tracks would: A still
	// vouches for it after a restart (it recognises its verified files by
	// size and time instead of hashing them at every start), so B,
	// started after, fetches it from A and must refuse it by its hash.
	oneB, err := os.Stat(filepath.Join(dirB, "library", "one.raw"))
	if err != nil {
		t.Fatal(err)
	}
	b.stop()
	two := randomImage(2<<20, 2)
	if _, err := ca.UploadImage(ctx, "two", bytes.NewReader(two), int64(len(two)), ""); err != nil {
		t.Fatal(err)
	}
	a.stop() // not looking while its file changes
	fileA := filepath.Join(dirA, "library", "two.raw")
	st, err := os.Stat(fileA)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(fileA, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte{two[len(two)/2] ^ 0x5a}, int64(len(two)/2))
	must(t, err)
	must(t, f.Close())
	must(t, os.Chtimes(fileA, st.ModTime(), st.ModTime()))
	a.start()
	waitImageOn(t, ca, "two", func(i api.Image) bool { return i.Here == "present" })
	b.start()
	img = waitImageOn(t, cb, "two", func(i api.Image) bool { return i.Here == "failed" })
	var row api.ImageCopy
	for _, cp := range img.Appliances {
		if cp.URL == baseB {
			row = cp
		}
	}
	if !strings.Contains(row.Error, "checksum mismatch") || !strings.HasPrefix(row.From, baseA) {
		t.Fatalf("B's copy of the tampered image: %+v", img)
	}
	entries, _ := os.ReadDir(filepath.Join(dirB, "library"))
	for _, e := range entries {
		if strings.Contains(e.Name(), "two") {
			t.Errorf("B's image_dir holds %s after refusing the copy", e.Name())
		}
	}
	if code, _ := get(t, baseB+"/images/library/two.raw"); code != 404 {
		t.Errorf("B serves the refused image: %d", code)
	}
	// B kept its verified copy of one across the restart, without
	// fetching it again (the same file, by its time).
	waitImageOn(t, cb, "one", func(i api.Image) bool { return i.Here == "present" })
	if st, err := os.Stat(filepath.Join(dirB, "library", "one.raw")); err != nil {
		t.Error(err)
	} else if !st.ModTime().Equal(oneB.ModTime()) {
		t.Errorf("B's copy of one was written again after its restart (modified %v, was %v)", st.ModTime(), oneB.ModTime())
	}

	// Deleted through B: gone from A's image_dir.
	start = time.Now()
	if err := cb.DeleteImage(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	fileOne := filepath.Join(dirA, "library", "one.raw")
	for {
		if _, err := os.Stat(fileOne); os.IsNotExist(err) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("A still has %s 10s after the image was deleted through B", fileOne)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("deleted through B: gone from A's image_dir after %v", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dirB, "library", "one.raw")); !os.IsNotExist(err) {
		t.Errorf("B's own file after the delete: %v", err)
	}
	if code, _ := get(t, baseA+up.URL); code != 404 {
		t.Errorf("A still serves the deleted image: %d", code)
	}

	// Deleted while A was down: A removes its file when it starts (the
	// store keeps a mark of the deleted name; a file no image ever had is
	// not A's to remove).
	three := randomImage(1<<20, 3)
	if _, err := cb.UploadImage(ctx, "three", bytes.NewReader(three), int64(len(three)), ""); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(dirA, "library", "three.raw"), three, 10*time.Second)
	must(t, os.WriteFile(filepath.Join(dirA, "library", "handmade.raw"), []byte("mine"), 0o644))
	a.stop()
	if err := cb.DeleteImage(ctx, "three"); err != nil {
		t.Fatal(err)
	}
	a.start()
	start = time.Now()
	for {
		if _, err := os.Stat(filepath.Join(dirA, "library", "three.raw")); os.IsNotExist(err) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("A kept the file of an image deleted while it was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dirA, "library", "handmade.raw")); err != nil {
		t.Errorf("A removed a file no image ever had: %v", err)
	}
}

func randomImage(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// waitFile waits until path holds exactly want and returns how long that
// took.
func waitFile(t *testing.T, path string, want []byte, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if f, err := os.Open(path); err == nil {
			got, _ := io.ReadAll(f)
			f.Close()
			if bytes.Equal(got, want) {
				return time.Since(start)
			}
		}
		if time.Since(start) > limit {
			t.Fatalf("%s does not hold the image within %v", path, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitImageOn polls an appliance's view of an image until ok holds (10 s).
func waitImageOn(t *testing.T, c *client.Client, name string, ok func(api.Image) bool) api.Image {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		img, err := c.GetImage(context.Background(), name)
		if err == nil && ok(img) {
			return img
		}
		if time.Now().After(deadline) {
			t.Fatalf("image %s on %s: %+v %v", name, c.BaseURL, img, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
