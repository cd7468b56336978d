package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"

	"github.com/foundry-appliance/foundry/names"
)

// ImageFormat is how a library image file is stored and served: raw, or
// raw compressed with gzip, zstd or xz (what the discovery agent writes).
type ImageFormat string

// Image formats. A qcow2 image is converted on import; it is never served.
const (
	ImageRaw  ImageFormat = "raw"
	ImageGzip ImageFormat = "gz"
	ImageZstd ImageFormat = "zst"
	ImageXz   ImageFormat = "xz"
)

// Ext is the file-name suffix of a file in format f (".raw", ".raw.zst",
// …): the agent chooses its decompressor by the URL's suffix.
func (f ImageFormat) Ext() string {
	if f == ImageRaw {
		return ".raw"
	}
	return ".raw." + string(f)
}

func (f ImageFormat) valid() bool {
	switch f {
	case ImageRaw, ImageGzip, ImageZstd, ImageXz:
		return true
	}
	return false
}

// ImageState is where an image is in its import.
type ImageState string

// Image states: an import starts importing and ends ready or failed.
const (
	ImageImporting ImageState = "importing"
	ImageReady     ImageState = "ready"
	ImageFailed    ImageState = "failed"
)

// String returns the state's name.
func (s ImageState) String() string { return string(s) }

// ImageUpload is the Source of an image that was uploaded, not fetched.
const ImageUpload = "upload"

// ImageDir is the directory, relative to the image directory, that holds
// the library's files; Image.File is always ImageDir + "/" + a file name.
const ImageDir = "library"

// Image is an OS image in the appliance's library.
type Image struct {
	Name string `json:"name"`
	// File is the served file, relative to the image directory
	// ("library/debian-12.raw.zst"); set once the image is ready.
	File   string      `json:"file,omitempty"`
	Format ImageFormat `json:"format,omitempty"`
	// Size and SHA256 are the served file's.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Source is the URL the image was imported from, or ImageUpload.
	Source string `json:"source"`
	// SourceSHA256 is the checksum of the bytes received from Source: the
	// served file's (SHA256) unless the import converted them (qcow2).
	// An appliance lacking the file fetches it from Source only when the
	// two are equal.
	SourceSHA256 string     `json:"source_sha256,omitempty"`
	State        ImageState `json:"state"`
	// BytesDone counts the bytes received so far; BytesTotal is the size
	// announced by the source (0 when it announced none).
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total,omitempty"`
	// Error is why a failed import failed.
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

const imagePrefix = "i/"

func imageKey(name string) []byte { return []byte(imagePrefix + name) }

// ImageFile is the File of image name in format f.
func ImageFile(name string, f ImageFormat) string { return ImageDir + "/" + name + f.Ext() }

// imageKind is what images add to the shared named-record code: their
// validation, and no delete while a profile names the image.
var imageKind = namedKind[Image]{
	kind:   "image",
	prefix: imagePrefix,
	name:   func(i Image) string { return i.Name },
	times:  func(i *Image) (*time.Time, *time.Time) { return &i.CreatedAt, &i.UpdatedAt },
	check:  checkImage,
	// A new image of a deleted one's name ends the deleted one's mark
	// (images_copies.go): its files are now the new image's business.
	refs: func(txn kv.Txn, old, next Image) error {
		if old.Name != "" {
			return nil
		}
		return txn.Delete(deletedKey(next.Name))
	},
	inUse: func(txn kv.Txn, name string) error {
		user, err := firstUser(txn, profilePrefix, func(p Profile) (string, bool) { return p.Name, p.Image == name })
		if err != nil {
			return err
		}
		if user != "" {
			return fmt.Errorf("%w: image %s is used by profile %s", ErrInUse, name, user)
		}
		return nil
	},
}

// maxSource bounds an image's source URL.
const maxSource = 2048

func checkImage(i Image) error {
	if err := checkName("image", i.Name); err != nil {
		return err
	}
	switch i.State {
	case ImageImporting, ImageFailed:
	case ImageReady:
		if i.File == "" || !i.Format.valid() {
			return fmt.Errorf("%w: a ready image needs its file and format", ErrInvalid)
		}
		if b, err := hex.DecodeString(i.SHA256); err != nil || len(b) != 32 || i.SHA256 != strings.ToLower(i.SHA256) {
			return fmt.Errorf("%w: image sha256 %s: want 64 lower-case hex digits", ErrInvalid, label(i.SHA256))
		}
	default:
		return fmt.Errorf("%w: image state %s: want importing, ready or failed", ErrInvalid, label(string(i.State)))
	}
	if i.Format != "" && !i.Format.valid() {
		return fmt.Errorf("%w: image format %s: want raw, gz, zst or xz", ErrInvalid, label(string(i.Format)))
	}
	// The file is served and removed by its name: it must be the one
	// place the library writes, never a path that leads elsewhere.
	if i.File != "" && i.File != ImageFile(i.Name, i.Format) {
		return fmt.Errorf("%w: image file %s: want %s", ErrInvalid, label(i.File), ImageFile(i.Name, i.Format))
	}
	if i.Size < 0 || i.BytesDone < 0 || i.BytesTotal < 0 {
		return fmt.Errorf("%w: image sizes cannot be negative", ErrInvalid)
	}
	if b, err := hex.DecodeString(i.SourceSHA256); err != nil || (len(b) != 32 && len(b) != 0) || i.SourceSHA256 != strings.ToLower(i.SourceSHA256) {
		return fmt.Errorf("%w: image source sha256 %s: want 64 lower-case hex digits", ErrInvalid, label(i.SourceSHA256))
	}
	if i.Source == "" || len(i.Source) > maxSource || !names.Printable(i.Source) {
		return fmt.Errorf("%w: image source %s: want a URL or %q of at most %d printable characters", ErrInvalid, label(i.Source), ImageUpload, maxSource)
	}
	return checkText("image error", i.Error, maxText)
}

// refImage checks that a profile's image exists and is ready, and touches
// it, so that a concurrent DeleteImage conflicts and sees the profile.
func refImage(txn kv.Txn, old, name string) error {
	if name == "" || name == old {
		return nil
	}
	var img Image
	if err := getJSON(txn, imageKey(name), &img); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: image %s does not exist", ErrInvalid, name)
	} else if err != nil {
		return err
	}
	if img.State != ImageReady {
		return fmt.Errorf("%w: image %s is not ready (it is %s)", ErrInvalid, name, img.State)
	}
	return touch(txn, imageKey(name))
}

// CreateImage stores a new image record (normally importing, before its
// file exists); ErrExists when the name is taken. CreatedAt and UpdatedAt
// are set to now.
func (db *DB) CreateImage(i Image, a Audit) (Image, error) { return imageKind.create(db, i, a) }

// GetImage returns one image; ErrNotFound when unknown.
func (db *DB) GetImage(name string) (Image, error) { return imageKind.get(db, name) }

// ListImages returns every image sorted by name.
func (db *DB) ListImages() ([]Image, error) { return imageKind.list(db) }

// UpdateImage lets fn change an image and stores it with the audit entry
// (the end of an import). The name and CreatedAt cannot change; UpdatedAt
// is set to now. If fn returns an error nothing is written. fn may run
// more than once.
func (db *DB) UpdateImage(name string, a Audit, fn func(*Image) error) (Image, error) {
	return imageKind.update(db, name, a, fn)
}

// ImageProgress records how far an import has come, without an audit
// entry (it is written every second or so). ErrNotFound when the image is
// gone, ErrInvalid when it is no longer importing.
func (db *DB) ImageProgress(name string, done, total int64) error {
	if err := checkName("image", name); err != nil {
		return fmt.Errorf("image progress: %w", err)
	}
	err := db.update(func(txn kv.Txn) error {
		var i Image
		if err := getJSON(txn, imageKey(name), &i); err != nil {
			return err
		}
		if i.State != ImageImporting {
			return fmt.Errorf("%w: image is %s, not importing", ErrInvalid, i.State)
		}
		i.BytesDone, i.BytesTotal = max(done, 0), max(total, 0)
		i.UpdatedAt = db.now()
		return setJSON(txn, imageKey(name), i)
	})
	if err != nil {
		return fmt.Errorf("image progress %s: %w", name, err)
	}
	return nil
}

// DeleteImage removes an image record and returns it (its File is then the
// caller's to remove): ErrNotFound when unknown, ErrInUse while a profile
// names it.
func (db *DB) DeleteImage(name string, a Audit) (Image, error) {
	var out Image
	fail := func(err error) (Image, error) { return Image{}, fmt.Errorf("delete image %s: %w", ref(name), err) }
	if err := checkName("image", name); err != nil {
		return fail(err)
	}
	if err := objectAudit(&a, "delete-image", "image", name); err != nil {
		return fail(err)
	}
	err := db.update(func(txn kv.Txn) error {
		if err := getJSON(txn, imageKey(name), &out); err != nil {
			return err
		}
		if err := imageKind.inUse(txn, name); err != nil {
			return err
		}
		if err := txn.Delete(imageKey(name)); err != nil {
			return err
		}
		// Each appliance's row of it goes too; each removes its own file
		// when it sees the record gone (api, images_sync.go), or, if it
		// is down now, by the mark when it starts.
		if err := deleteCopies(txn, name); err != nil {
			return err
		}
		if err := setJSON(txn, deletedKey(name), DeletedImage{Name: name, SHA256: out.SHA256, DeletedAt: db.now()}); err != nil {
			return err
		}
		return db.writeAudit(txn, "", a, db.now(), 0)
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// FailImports marks every importing image failed with reason and returns
// them. The appliance calls it at start: an import runs in the process
// that started it, so one still importing was cut off by a restart.
func (db *DB) FailImports(reason string, a Audit) ([]Image, error) {
	imgs, err := db.ListImages()
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, i := range imgs {
		if i.State != ImageImporting {
			continue
		}
		next, err := db.UpdateImage(i.Name, a, func(i *Image) error {
			if i.State != ImageImporting {
				return errStop
			}
			i.State, i.Error = ImageFailed, reason
			return nil
		})
		if errors.Is(err, errStop) || errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, next)
	}
	return out, nil
}
