package api

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// This appliance's own copies: what it has verified (copies, consulted by
// the agent decision through libraryImage), and the reconcile's work on
// its image directory (sweep, ensure). See images_sync.go.

// localCopy is a file of this appliance's image directory whose SHA-256
// was checked; size and mod tell whether it is still the file checked.
type localCopy struct {
	sha  string
	size int64
	mod  time.Time
}

func (c localCopy) is(st fs.FileInfo) bool {
	return st.Mode().IsRegular() && st.Size() == c.size && st.ModTime().Equal(c.mod)
}

// copies is what this appliance knows of its own copies.
type copies struct {
	mu       sync.Mutex
	sync     *syncer                    // nil until SyncImages runs
	verified map[string]localCopy       // by image name
	rows     map[string]store.ImageCopy // this appliance's last row per image
	wake     chan struct{}              // closed at each change, then replaced
}

func newCopies() *copies {
	return &copies{verified: map[string]localCopy{}, rows: map[string]store.ImageCopy{}, wake: make(chan struct{})}
}

// changedLocked wakes the waiters of changed; c.mu is held.
func (c *copies) changedLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// changed is closed at the next change of this appliance's copies.
func (c *copies) changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wake
}

func (c *copies) syncer() *syncer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sync
}

func (c *copies) set(name string, lc localCopy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.verified[name] = lc
	c.changedLocked()
}

func (c *copies) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.verified[name]; ok {
		delete(c.verified, name)
		c.changedLocked()
	}
}

// here says whether image img's file in root is this appliance's verified
// copy: always true while SyncImages does not run (a lone appliance's
// ready image is its own import); else the file must be the one checked.
// state is this appliance's copy state for the API ("" when not syncing).
func (c *copies) here(root *os.Root, img store.Image) (ok bool, state string, row store.ImageCopy) {
	c.mu.Lock()
	lc, checked := c.verified[img.Name]
	row, active := c.rows[img.Name], c.sync != nil
	c.mu.Unlock()
	if !active {
		return true, "", row
	}
	if img.State != store.ImageReady {
		return false, "", row
	}
	if checked && lc.sha == img.SHA256 && root != nil {
		if st, err := root.Stat(img.File); err == nil && lc.is(st) {
			return true, string(store.CopyPresent), row
		}
	}
	if row.SHA256 == img.SHA256 && row.State != store.CopyPresent {
		return false, string(row.State), row
	}
	return false, "missing", row
}

// placed records that img's file, just moved into place by this appliance
// after its hash matched, is a verified copy, and says so in the store
// when SyncImages runs. The caller holds l.files.
func (l *library) placed(root *os.Root, img store.Image) {
	st, err := root.Stat(img.File)
	if err != nil {
		l.log.Error("stat the image just placed", "image", img.Name, "err", err)
		return
	}
	lc := localCopy{sha: img.SHA256, size: st.Size(), mod: st.ModTime()}
	l.copies.set(img.Name, lc)
	if y := l.copies.syncer(); y != nil {
		y.put(img, store.CopyPresent, func(c *store.ImageCopy) { c.Size, c.ModTime = lc.size, lc.mod })
	}
}

// syncTemp is the partial file of a fetch of img: a dotfile (never
// served), named by the image's checksum so that a later attempt, after a
// restart too, resumes it only for the same file.
func syncTemp(img store.Image) string {
	return store.ImageDir + "/" + syncPrefix + img.Name + "-" + img.SHA256[:16]
}

const syncPrefix = ".sync-"

// sweep removes the library files whose image is gone or is now another
// file, and the partial fetches no ready image wants.
func (y *syncer) sweep(root *os.Root, imgs []store.Image) {
	byName := make(map[string]store.Image, len(imgs))
	temps := map[string]bool{}
	for _, img := range imgs {
		byName[img.Name] = img
		if img.State == store.ImageReady {
			temps[syncTemp(img)] = true
		}
	}
	for name := range y.retry {
		if img, ok := byName[name]; !ok || img.State != store.ImageReady {
			delete(y.retry, name)
		}
	}
	entries, err := fs.ReadDir(root.FS(), store.ImageDir)
	if err != nil {
		y.l.log.Warn("read the image library directory", "err", err)
		return
	}
	for _, e := range entries {
		path := store.ImageDir + "/" + e.Name()
		if strings.HasPrefix(e.Name(), syncPrefix) {
			if !temps[path] {
				root.Remove(path)
			}
			continue
		}
		name, ok := libraryName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if img, known := byName[name]; known && (img.State != store.ImageReady || img.File == path) {
			continue
		}
		y.removeStale(root, name, path)
	}
}

// libraryName is the image name of library file f ("deb.raw.zst" →
// "deb"); false for a dotfile or a name the library never writes.
func libraryName(f string) (string, bool) {
	if strings.HasPrefix(f, ".") {
		return "", false
	}
	for _, fm := range []store.ImageFormat{store.ImageGzip, store.ImageZstd, store.ImageXz, store.ImageRaw} {
		if name, ok := strings.CutSuffix(f, fm.Ext()); ok && name != "" {
			return name, true
		}
	}
	return "", false
}

// removeStale removes path, a file of image name that the list showed
// deleted or changed, after checking again under l.files: an import here
// may have moved it into place since (finish holds l.files while it
// does). A file whose name no image ever had (no record, no mark of a
// deleted one) was put there by someone else and is left alone.
func (y *syncer) removeStale(root *os.Root, name, path string) {
	y.l.files.Lock()
	defer y.l.files.Unlock()
	img, err := y.l.s.Store.GetImage(name)
	gone := errors.Is(err, store.ErrNotFound)
	switch {
	case gone:
		if _, err := y.st.GetDeletedImage(name); err != nil {
			return // not ours, or unsure until a read answers
		}
	case err != nil:
		return // unsure: kept until a read answers
	case img.State != store.ImageReady || img.File == path:
		return
	}
	if err := root.Remove(path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			y.l.log.Warn("remove the file of a deleted image", "file", path, "err", err)
		}
		return
	}
	if gone {
		y.l.copies.drop(name)
	}
	y.l.log.Info("removed the file of a deleted or replaced image", "image", name, "file", path)
}

// ensure makes img's copy here verified: the file already checked, a
// file found on disk hashed (or, after a restart, recognised by the size
// and time this appliance's row recorded), else fetched.
func (y *syncer) ensure(ctx context.Context, root *os.Root, img store.Image, rows []store.ImageCopy) {
	var own store.ImageCopy
	for _, c := range rows {
		if c.Appliance == y.cfg.Name {
			own = c
		}
	}
	if st, err := root.Stat(img.File); err == nil && st.Mode().IsRegular() {
		recorded := own.State == store.CopyPresent && own.SHA256 == img.SHA256 &&
			own.Size == st.Size() && own.ModTime.Equal(st.ModTime()) && st.Size() == img.Size
		switch {
		case y.isVerified(root, img):
		case recorded:
			y.l.copies.set(img.Name, localCopy{sha: img.SHA256, size: st.Size(), mod: st.ModTime()})
		default:
			y.verify(ctx, root, img)
			if ctx.Err() != nil {
				return
			}
		}
		if st, err := root.Stat(img.File); err == nil && y.isVerified(root, img) {
			if own.State != store.CopyPresent || own.SHA256 != img.SHA256 || own.URL != y.cfg.URL ||
				own.Size != st.Size() || !own.ModTime.Equal(st.ModTime()) {
				y.put(img, store.CopyPresent, func(c *store.ImageCopy) { c.Size, c.ModTime = st.Size(), st.ModTime() })
			}
			delete(y.retry, img.Name)
			return
		}
	}
	y.l.copies.drop(img.Name)
	y.fetch(ctx, root, img, rows)
}

// isVerified says whether img's file here is the verified copy (root nil:
// opened here).
func (y *syncer) isVerified(root *os.Root, img store.Image) bool {
	y.l.copies.mu.Lock()
	lc, ok := y.l.copies.verified[img.Name]
	y.l.copies.mu.Unlock()
	if !ok || lc.sha != img.SHA256 {
		return false
	}
	if root == nil {
		r, err := y.l.open()
		if err != nil {
			return false
		}
		defer r.Close()
		root = r
	}
	st, err := root.Stat(img.File)
	return err == nil && lc.is(st)
}
