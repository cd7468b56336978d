package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// DefaultImageMaxSize is the largest library image accepted when
// Server.ImageMaxSize is 0: larger than any OS image worth installing, far
// smaller than the disks an appliance runs on.
const DefaultImageMaxSize int64 = 64 << 30

// Image is an OS image in the appliance's library.
type Image struct {
	Name   string `json:"name" example:"debian-12"`
	State  string `json:"state" enum:"importing,ready,failed" example:"ready" doc:"importing: being fetched or uploaded; ready: served and usable by profiles; failed: see error"`
	Format string `json:"format,omitempty" enum:"raw,gz,zst,xz" example:"zst" doc:"How the served file is stored (a qcow2 image is converted to raw and stored zstd-compressed)"`
	Size   int64  `json:"size" example:"412316860" doc:"Bytes of the served file"`
	SHA256 string `json:"sha256,omitempty" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" doc:"SHA-256 of the served file (what the agent checks)"`
	Source string `json:"source" example:"https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2" doc:"The URL it was imported from, or upload"`
	URL    string `json:"url,omitempty" example:"/images/library/debian-12.raw.zst" doc:"Where machines fetch the file (a path on the appliance; Range requests are served)"`
	// Progress of an import.
	BytesDone  int64  `json:"bytes_done" doc:"Bytes received so far"`
	BytesTotal int64  `json:"bytes_total,omitempty" doc:"Bytes the source announced (absent when it announced none)"`
	Error      string `json:"error,omitempty" doc:"Why the import failed"`
	// Copies of a ready image on the appliances that share the library.
	Here       string      `json:"here,omitempty" enum:"present,verifying,syncing,failed,missing" example:"present" doc:"The copy of a ready image on the appliance that answered: present means that machines booting through this appliance are given the image; otherwise their agents wait until it is present (verifying: a file found here is being hashed; syncing: being fetched; failed: the last fetch failed, see appliances; missing: not fetched yet). Absent when the appliance does not keep copies in step (no image sync)."`
	Appliances []ImageCopy `json:"appliances,omitempty" doc:"Each appliance's copy of a ready image, as the appliances sharing the store report it"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
}

// ImageCopy is one appliance's copy of a library image.
type ImageCopy struct {
	Appliance  string    `json:"appliance" example:"10.0.0.2-8080" doc:"The appliance: its advertise URL's host and port"`
	URL        string    `json:"url" example:"http://10.0.0.2:8080" doc:"The appliance's base URL; it serves its copy at url/images/ followed by the image's file"`
	State      string    `json:"state" enum:"present,verifying,syncing,failed" example:"present" doc:"present: its file is there and matches the image's SHA-256 (served, given to machines); verifying: a file found there is being hashed; syncing: being fetched; failed: the last fetch failed (error) and is retried"`
	From       string    `json:"from,omitempty" example:"http://10.0.0.1:8080/images/library/debian-12.raw.zst" doc:"The URL being fetched (syncing) or the last one tried (failed)"`
	BytesDone  int64     `json:"bytes_done,omitempty" doc:"Bytes of the file there so far (syncing)"`
	BytesTotal int64     `json:"bytes_total,omitempty" doc:"Bytes of the whole file (syncing)"`
	Error      string    `json:"error,omitempty" doc:"Why the last fetch failed"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func copyView(c store.ImageCopy) ImageCopy {
	return ImageCopy{Appliance: c.Appliance, URL: c.URL, State: string(c.State), From: c.From,
		BytesDone: c.BytesDone, BytesTotal: c.BytesTotal, Error: c.Error, UpdatedAt: c.UpdatedAt}
}

func imageView(i store.Image) Image {
	v := Image{Name: i.Name, State: string(i.State), Format: string(i.Format), Size: i.Size, SHA256: i.SHA256,
		Source: i.Source, BytesDone: i.BytesDone, BytesTotal: i.BytesTotal, Error: i.Error,
		CreatedAt: i.CreatedAt, UpdatedAt: i.UpdatedAt}
	if i.State == store.ImageReady {
		v.URL = "/images/" + i.File
	}
	return v
}

// imageViews renders imgs with their copies: every appliance's, from the
// store's rows, and this appliance's own state (Here).
func (s *Server) imageViews(imgs []store.Image) []Image {
	byImage := map[string][]store.ImageCopy{}
	if cs, ok := s.Store.(copyStore); ok {
		name := ""
		if len(imgs) == 1 {
			name = imgs[0].Name
		}
		all, err := cs.ListImageCopies(name)
		if err != nil {
			s.log.Warn("list image copies", "err", err)
		}
		for _, c := range all {
			byImage[c.Image] = append(byImage[c.Image], c)
		}
	}
	root := s.imageRoot()
	if root != nil {
		defer root.Close()
	}
	out := make([]Image, 0, len(imgs))
	for _, i := range imgs {
		v := imageView(i)
		if i.State == store.ImageReady {
			for _, c := range byImage[i.Name] {
				if c.SHA256 == i.SHA256 {
					v.Appliances = append(v.Appliances, copyView(c))
				}
			}
			if s.images != nil {
				_, v.Here, _ = s.images.copies.here(root, i)
			}
		}
		out = append(out, v)
	}
	return out
}

// imageRoot opens the image directory; nil without one.
func (s *Server) imageRoot() *os.Root {
	if s.ImageDir == "" {
		return nil
	}
	root, err := os.OpenRoot(s.ImageDir)
	if err != nil {
		return nil
	}
	return root
}

// ImageImport is the body that imports an image from a URL.
type ImageImport struct {
	Name   string `json:"name" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"debian-12"`
	URL    string `json:"url" minLength:"1" maxLength:"2048" example:"https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2" doc:"http or https; redirects are followed to http and https only"`
	SHA256 string `json:"sha256,omitempty" maxLength:"64" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" doc:"SHA-256 of the file at the URL. Optional: without it the appliance records the checksum of what it received. A mismatch fails the import and deletes the file."`
}

type imageOut struct{ Body Image }

type imagePath struct {
	Name string `path:"name" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"debian-12"`
}

// imageUpload is the input of PUT /images/{name}. It has no Body field, so
// huma never reads the body: Resolve keeps the stream, which the handler
// copies to disk.
type imageUpload struct {
	Name   string `path:"name" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"debian-12"`
	SHA256 string `query:"sha256" maxLength:"64" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" doc:"SHA-256 of the body; a mismatch fails the upload and deletes the file"`

	body   huma.Context
	length int64 // Content-Length; -1 when not announced
}

func (u *imageUpload) Resolve(ctx huma.Context) []error {
	u.body = ctx
	u.length = -1
	if v := ctx.Header("Content-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return []error{&huma.ErrorDetail{Location: "header.Content-Length", Message: "not a length", Value: v}}
		}
		u.length = n
	}
	return nil
}

func (s *Server) imageMaxSize() int64 {
	if s.ImageMaxSize > 0 {
		return s.ImageMaxSize
	}
	return DefaultImageMaxSize
}

// checkSHA256 returns sum in lower case, or a 422 naming loc.
func checkSHA256(loc, sum string) (string, error) {
	if sum == "" {
		return "", nil
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return "", fieldErr(loc, "want a SHA-256 as 64 hex digits", sum)
	}
	return strings.ToLower(sum), nil
}

// checkImportURL accepts absolute http and https URLs without credentials
// (the URL is shown to every viewer as the image's source).
func checkImportURL(v string) error {
	bad := func(msg string) error { return fieldErr("body.url", msg, v) }
	if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return bad("the URL must not contain spaces or control characters")
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("want an http or https URL")
	}
	if u.User != nil {
		return bad("credentials in the URL would be shown as the image's source; use a URL without them")
	}
	return nil
}

// noLibrary answers when the appliance has no image directory.
var noLibrary = huma.Error503ServiceUnavailable("the image library needs an image directory (image_dir)")

func (s *Server) registerImages() {
	s.images = newLibrary(s)
	tags := []string{"images"}
	register(s, accessRead, huma.Operation{
		OperationID: "list-images", Method: http.MethodGet, Path: Prefix + "/images",
		Summary: "List library images", Tags: tags,
	}, func(context.Context, *struct{}) (*struct{ Body []Image }, error) {
		imgs, err := s.Store.ListImages()
		if err != nil {
			return nil, s.storeErr(err, "images", "")
		}
		return &struct{ Body []Image }{Body: s.imageViews(imgs)}, nil
	})
	register(s, accessRead, huma.Operation{
		OperationID: "get-image", Method: http.MethodGet, Path: Prefix + "/images/{name}",
		Summary: "Get a library image (with import progress)", Tags: tags, Errors: []int{http.StatusNotFound},
	}, func(_ context.Context, in *imagePath) (*imageOut, error) {
		i, err := s.Store.GetImage(in.Name)
		if err != nil {
			return nil, s.storeErr(err, "image "+in.Name, "path.name")
		}
		return &imageOut{Body: s.imageViews([]store.Image{i})[0]}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "import-image", Method: http.MethodPost, Path: Prefix + "/images",
		Summary: "Import an image from a URL", Tags: tags, DefaultStatus: http.StatusAccepted,
		Description: "Starts fetching the URL into the image directory and answers at once with the image in state importing; " +
			"GET /images/{name} shows the bytes received and, at the end, ready or failed with the reason. " +
			"Formats are recognised by their content: raw, gzip, zstd and xz are kept as they are, qcow2 is converted to raw (stored zstd-compressed). " +
			"An import that fails leaves no file behind. " +
			"Refused (507) while the data disk is too full to keep the database's reserve; an import that gets it there is stopped and failed with the reason.",
		Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable, http.StatusInsufficientStorage},
	}, func(ctx context.Context, in *struct{ Body ImageImport }) (*imageOut, error) {
		if s.ImageDir == "" {
			return nil, noLibrary
		}
		if err := checkImportURL(in.Body.URL); err != nil {
			return nil, err
		}
		sum, err := checkSHA256("body.sha256", in.Body.SHA256)
		if err != nil {
			return nil, err
		}
		img, err := s.images.start(caller(ctx).Actor, in.Body.Name, in.Body.URL, sum)
		if err != nil {
			return nil, s.storeErr(err, "image "+in.Body.Name, "body.name")
		}
		return &imageOut{Body: imageView(img)}, nil
	})
	op := huma.Operation{
		OperationID: "upload-image", Method: http.MethodPut, Path: Prefix + "/images/{name}",
		Summary: "Upload an image", Tags: tags, DefaultStatus: http.StatusCreated,
		Description: "The request body is the image file (application/octet-stream), streamed to disk. " +
			"While it arrives the image is importing (GET shows the bytes received); the answer is the ready image, " +
			"or a problem, the image then being failed with the reason. Formats as for an import. A name in use is refused (409). " +
			"A data disk too full to keep the database's reserve refuses the upload, or stops it, with 507.",
		Errors: []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable, http.StatusInsufficientStorage},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}},
		// Documents the limit: huma never reads this body (imageUpload),
		// the upload enforces ImageMaxSize while it streams.
		MaxBodyBytes: s.imageMaxSize(),
	}
	register(s, accessWrite, op, func(ctx context.Context, in *imageUpload) (*imageOut, error) {
		if s.ImageDir == "" {
			return nil, noLibrary
		}
		sum, err := checkSHA256("query.sha256", in.SHA256)
		if err != nil {
			return nil, err
		}
		if in.length > s.imageMaxSize() {
			return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("the image is %d bytes, the limit is %d", in.length, s.imageMaxSize()))
		}
		interrupt := func() { in.body.SetReadDeadline(time.Now()) }
		img, err := s.images.upload(ctx, caller(ctx).Actor, in.Name, in.body.BodyReader(), in.length, sum, interrupt)
		if err != nil {
			return nil, s.ingestErr(err, in.Name)
		}
		return &imageOut{Body: imageView(img)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "delete-image", Method: http.MethodDelete, Path: Prefix + "/images/{name}",
		Summary: "Delete an image no profile uses", Tags: tags, DefaultStatus: http.StatusNoContent,
		Description: "Deletes the record and its file; a running import is stopped first. An image that a profile names cannot be deleted (409).",
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *imagePath) (*struct{}, error) {
		err := s.images.remove(caller(ctx).Actor, in.Name)
		return nil, s.storeErr(err, "image "+in.Name, "path.name")
	})
}

// ingestErr answers a failed upload: what the body got wrong is the
// client's (413, 422), everything else goes through storeErr.
func (s *Server) ingestErr(err error, name string) error {
	var bad *badImage
	switch {
	case errors.Is(err, errTooLarge):
		return huma.Error413RequestEntityTooLarge(err.Error())
	case errors.As(err, &bad):
		return huma.Error422UnprocessableEntity(err.Error(), &huma.ErrorDetail{Location: bad.loc, Message: err.Error()})
	case errors.Is(err, errReceive):
		return huma.Error400BadRequest(err.Error())
	case errors.Is(err, errDeleted):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, errStalled):
		return huma.NewError(http.StatusRequestTimeout, err.Error())
	case errors.Is(err, errShutdown):
		return huma.Error503ServiceUnavailable(err.Error())
	case errors.Is(err, errImageDiskFull):
		return huma.NewError(http.StatusInsufficientStorage, err.Error())
	}
	return s.storeErr(err, "image "+name, "path.name")
}

// checkProfileImage refuses a profile that names a library image that does
// not exist or is not ready, naming the field; the store checks again in
// the transaction that writes the profile.
func (s *Server) checkProfileImage(f ProfileFields) error {
	if f.Image == "" {
		return nil
	}
	img, err := s.Store.GetImage(f.Image)
	if errors.Is(err, store.ErrNotFound) {
		return fieldErr("body.image", "there is no library image "+names.Ref(f.Image), f.Image)
	}
	if err != nil {
		return s.storeErr(err, "image "+f.Image, "body.image")
	}
	if img.State != store.ImageReady {
		return fieldErr("body.image", fmt.Sprintf("library image %s is %s, not ready", f.Image, img.State), f.Image)
	}
	return nil
}

// libraryImage is where the agent fetches library image name (a path on
// the appliance) and its checksum. wait, when not empty, says why this
// appliance cannot give the image to a machine now: the image is not
// ready, or, while the appliance keeps its copies in step with a shared
// library (SyncImages), its own copy is not verified yet. This is the one
// rule for it: the agent decision (decision.go) asks here.
func (s *Server) libraryImage(name string) (path, sum, wait string) {
	img, err := s.Store.GetImage(name)
	if err != nil || img.State != store.ImageReady {
		s.log.Error("profile names an image that is not ready", "image", name, "state", img.State, "err", err)
		return "", "", fmt.Sprintf("the profile's image %s is not ready; an administrator must fix the profile or the image", names.Ref(name))
	}
	if s.images != nil {
		root := s.imageRoot()
		ok, state, row := s.images.copies.here(root, img)
		if root != nil {
			root.Close()
		}
		if !ok {
			return "", "", syncingMessage(img, state, row)
		}
	}
	return "/images/" + img.File, img.SHA256, ""
}

// syncingMessage tells the console of a machine waiting for this
// appliance's copy of img what is going on.
func syncingMessage(img store.Image, state string, row store.ImageCopy) string {
	const then = "; the install starts once this appliance's copy is verified"
	switch store.CopyState(state) {
	case store.CopySyncing:
		pct := 0
		if row.BytesTotal > 0 {
			pct = int(row.BytesDone * 100 / row.BytesTotal)
		}
		return fmt.Sprintf("image %s is not on this appliance yet: fetching it (%d%%)%s", img.Name, pct, then)
	case store.CopyVerifying:
		return fmt.Sprintf("image %s: this appliance is checking its copy's SHA-256%s", img.Name, then)
	case store.CopyFailed:
		return fmt.Sprintf("image %s is not on this appliance: its last fetch failed (see the image in the dashboard) and is retried%s", img.Name, then)
	}
	return fmt.Sprintf("image %s is not on this appliance yet%s", img.Name, then)
}

// imagesChanged is closed at the next change of this appliance's copies
// (nil, which never fires, without a library).
func (s *Server) imagesChanged() <-chan struct{} {
	if s.images == nil {
		return nil
	}
	return s.images.copies.changed()
}
