package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store/kv"
)

// Copies of library images on the appliances that share a store.
//
// An image record (i/<name>) says what the image's file is: its name,
// size and SHA-256. The file itself lives in each appliance's own image
// directory. Each appliance keeps one row per image, if/<image>/<appliance>,
// saying whether its copy is there (verified against the record's SHA-256),
// being fetched, or failed, and the URL peers fetch it from. A row is
// written only by its own appliance, so no two appliances ever write one
// key and a row never conflicts with the image's own writes (an import,
// a profile naming it). Rows are unaudited, like import progress, and go
// with their image when it is deleted.

// CopyState is where one appliance's copy of a library image is.
type CopyState string

// Copy states.
const (
	// CopyPresent: the file is in the appliance's image directory and its
	// SHA-256 is the image's; the appliance serves it and hands it to
	// machines.
	CopyPresent CopyState = "present"
	// CopyVerifying: a file found on disk is being hashed.
	CopyVerifying CopyState = "verifying"
	// CopySyncing: the file is being fetched (From, BytesDone).
	CopySyncing CopyState = "syncing"
	// CopyFailed: the last fetch failed (Error); the appliance tries again.
	CopyFailed CopyState = "failed"
)

// String returns the state's name.
func (s CopyState) String() string { return string(s) }

func (s CopyState) valid() bool {
	switch s {
	case CopyPresent, CopyVerifying, CopySyncing, CopyFailed:
		return true
	}
	return false
}

// ImageCopy is one appliance's copy of a library image.
type ImageCopy struct {
	Image     string `json:"image"`
	Appliance string `json:"appliance"`
	// URL is the appliance's base URL (http.advertise): a peer fetches the
	// copy from URL + "/images/" + Image.File.
	URL   string    `json:"url"`
	State CopyState `json:"state"`
	// SHA256 is the checksum of the image the row is about. PutImageCopy
	// refuses a row whose image has another one (an earlier image of the
	// same name), so a row never vouches for the wrong file.
	SHA256 string `json:"sha256"`
	// Size and ModTime are the verified file's on the appliance's own disk
	// (CopyPresent): a restart that finds the file with both unchanged
	// takes it as verified without hashing it again.
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"mod_time,omitzero"`
	// From is the URL being fetched (CopySyncing) or the last one tried
	// (CopyFailed).
	From       string `json:"from,omitempty"`
	BytesDone  int64  `json:"bytes_done,omitempty"`
	BytesTotal int64  `json:"bytes_total,omitempty"`
	// Error is why the last fetch failed.
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

const copyPrefix = "if/"

func copyKey(image, appliance string) []byte {
	return []byte(copyPrefix + image + "/" + appliance)
}

func checkCopy(c ImageCopy) error {
	if err := checkName("image", c.Image); err != nil {
		return err
	}
	if err := checkName("appliance", c.Appliance); err != nil {
		return err
	}
	if !c.State.valid() {
		return fmt.Errorf("%w: image copy state %s: want present, verifying, syncing or failed", ErrInvalid, label(string(c.State)))
	}
	for field, u := range map[string]string{"url": c.URL, "from": c.From} {
		if len(u) > maxSource || !names.Printable(u) {
			return fmt.Errorf("%w: image copy %s %s: want at most %d printable characters", ErrInvalid, field, label(u), maxSource)
		}
	}
	if c.URL == "" {
		return fmt.Errorf("%w: image copy needs the appliance's URL", ErrInvalid)
	}
	if c.Size < 0 || c.BytesDone < 0 || c.BytesTotal < 0 {
		return fmt.Errorf("%w: image copy sizes cannot be negative", ErrInvalid)
	}
	return checkText("image copy error", c.Error, maxText)
}

// PutImageCopy stores appliance c.Appliance's row for image c.Image
// (UpdatedAt set to now), unaudited. The image must exist (ErrNotFound)
// and be ready with c.SHA256 as its checksum (ErrInvalid): checked in the
// write's transaction, so a row never outlives its image's deletion.
func (db *DB) PutImageCopy(c ImageCopy) error {
	fail := func(err error) error {
		return fmt.Errorf("put copy of image %s on %s: %w", ref(c.Image), ref(c.Appliance), err)
	}
	if err := checkCopy(c); err != nil {
		return fail(err)
	}
	err := db.update(func(txn kv.Txn) error {
		var img Image
		if err := getJSON(txn, imageKey(c.Image), &img); err != nil {
			return err
		}
		if img.State != ImageReady || img.SHA256 != c.SHA256 {
			return fmt.Errorf("%w: the image is %s with sha256 %s, not ready with %s", ErrInvalid, img.State, label(img.SHA256), label(c.SHA256))
		}
		c.UpdatedAt = db.now()
		return setJSON(txn, copyKey(c.Image, c.Appliance), c)
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// ListImageCopies returns the rows of image ("": of every image), sorted
// by image, then appliance.
func (db *DB) ListImageCopies(image string) ([]ImageCopy, error) {
	prefix := copyPrefix
	if image != "" {
		if err := checkName("image", image); err != nil {
			return nil, fmt.Errorf("list image copies: %w", err)
		}
		prefix += image + "/"
	}
	out, err := list[ImageCopy](db, prefix)
	if err != nil {
		return nil, fmt.Errorf("list image copies: %w", err)
	}
	return out, nil
}

// deleteCopies removes every row of image name in txn (DeleteImage).
func deleteCopies(txn kv.Txn, name string) error {
	it := txn.NewIterator(kv.IterOptions{Prefix: []byte(copyPrefix + name + "/"), KeysOnly: true})
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, kv.KeyCopy(it))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// DeletedImage marks a deleted library image (id/<name>), so that an
// appliance that was down when it was deleted still knows, when it
// starts, that a file of that name in its library is a leftover and not
// a file someone put there. A new image of the same name removes it.
type DeletedImage struct {
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256,omitempty"`
	DeletedAt time.Time `json:"deleted_at"`
}

func deletedKey(name string) []byte { return []byte("id/" + name) }

// GetDeletedImage returns the mark of deleted image name; ErrNotFound
// when no image of that name was deleted since the last one was created.
func (db *DB) GetDeletedImage(name string) (DeletedImage, error) {
	var d DeletedImage
	if err := checkName("image", name); err != nil {
		return d, fmt.Errorf("get deleted image: %w", err)
	}
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, deletedKey(name), &d) })
	if err != nil {
		return DeletedImage{}, fmt.Errorf("get deleted image %s: %w", name, err)
	}
	return d, nil
}

// WatchImages calls changed after each commit that changes the image
// library (images and their copies), whoever made it, until ctx ends;
// then it returns nil. changed runs on the watch's goroutine and should
// only signal. When the watch breaks off (no quorum, a compaction) it
// calls changed once, since changes may have been missed, and watches
// again. On a store no other appliance writes to (Badger) there is nothing
// to watch: it waits for ctx.
func (db *DB) WatchImages(ctx context.Context, changed func()) error {
	if db.shared == nil {
		<-ctx.Done()
		return nil
	}
	img, cp := []byte(imagePrefix), []byte(copyPrefix)
	for {
		// "i" covers both prefixes ("i/", "if/") in one watch.
		err := db.shared.eng.Watch(ctx, []byte("i"), 0, func(evs []kv.WatchEvent) error {
			for _, ev := range evs {
				if bytes.HasPrefix(ev.Key, img) || bytes.HasPrefix(ev.Key, cp) {
					changed()
					return nil
				}
			}
			return nil
		})
		if ctx.Err() != nil || errors.Is(err, kv.ErrClosed) {
			return nil
		}
		db.log.Warn("image library watch ended; watching again", "err", err)
		changed()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
