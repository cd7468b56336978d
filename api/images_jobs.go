package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// Why an import stopped before its end (context causes, shown as the
// failed image's error).
var (
	errShutdown = errors.New("stopped: the appliance shut down during the import")
	errDeleted  = errors.New("stopped: the image was deleted")
	errStalled  = fmt.Errorf("stopped: no data for %s", importStall)
	// errTooLarge: the image is above Server.ImageMaxSize.
	errTooLarge = errors.New("the image is larger than the limit")
	// errReceive: the source broke off or sent less than it announced.
	errReceive = errors.New("receive")
)

// badImage is a received file that cannot become a library image; loc is
// the request field to blame for it.
type badImage struct {
	loc string
	msg string
}

func (e *badImage) Error() string { return e.msg }

const (
	// importStall ends an import that receives nothing for this long.
	importStall = 2 * time.Minute
	// progressEvery is how often an import writes its progress.
	progressEvery = time.Second
	// tempPrefix starts the name of an import's temporary files: a dotfile,
	// which the image server never serves, and which start-up removes.
	tempPrefix = ".import-"
	// maxReason bounds the reason kept with a failed image.
	maxReason = 1024
)

// library runs imports and uploads into the image directory. Every
// import is a job owned by the Server: Close cancels them and waits.
type library struct {
	s      *Server
	log    *slog.Logger
	client *http.Client
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards jobs and closed
	jobs   map[string]*job
	closed bool

	// files serialises moving a file into place with its record's change,
	// and a record's delete with removing its files, so that a delete
	// never removes the file of a new image of the same name.
	files sync.Mutex

	// copies is what this appliance knows of its own copies of the
	// library's files, kept by SyncImages (images_sync.go).
	copies *copies
}

// job is one running import or upload.
type job struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

func newLibrary(s *Server) *library {
	ctx, cancel := context.WithCancelCause(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	l := &library{s: s, log: s.log, ctx: ctx, cancel: cancel, jobs: map[string]*job{}, copies: newCopies()}
	l.client = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	if s.ImageDir != "" {
		l.recover()
	}
	return l
}

// checkRedirect follows redirects to http and https URLs only: a server
// that redirects an import elsewhere (file:, ftp:, a URL with
// credentials) is refused.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to a %s URL refused: only http and https are followed", names.Label(req.URL.Scheme))
	}
	if req.URL.User != nil {
		return errors.New("redirect to a URL with credentials refused")
	}
	return nil
}

// recover marks the imports that a stop cut off as failed and removes
// what they left in the library directory.
func (l *library) recover() {
	failed, err := l.s.Store.FailImports("stopped: the appliance restarted during the import",
		store.Audit{Actor: "system", Action: "image-failed"})
	if err != nil {
		l.log.Error("mark interrupted image imports failed", "err", err)
	}
	root, err := l.open()
	if err != nil {
		l.log.Error("open the image library", "err", err)
		return
	}
	defer root.Close()
	for _, img := range failed {
		l.log.Warn("image import was interrupted by a restart", "image", img.Name)
		removeFiles(root, img.Name)
	}
	entries, _ := fs.ReadDir(root.FS(), store.ImageDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			root.Remove(store.ImageDir + "/" + e.Name())
		}
	}
}

// open returns the image directory as an os.Root, creating it and its
// library directory when needed: every file the library touches is
// reached through it, so no name can lead outside.
func (l *library) open() (*os.Root, error) {
	if err := os.MkdirAll(l.s.ImageDir, 0o755); err != nil {
		return nil, fmt.Errorf("create image directory: %w", err)
	}
	root, err := os.OpenRoot(l.s.ImageDir)
	if err != nil {
		return nil, fmt.Errorf("open image directory: %w", err)
	}
	if err := root.MkdirAll(store.ImageDir, 0o755); err != nil {
		root.Close()
		return nil, fmt.Errorf("create image library directory: %w", err)
	}
	return root, nil
}

// removeFiles removes every file image name may have.
func removeFiles(root *os.Root, name string) {
	for _, f := range []store.ImageFormat{store.ImageRaw, store.ImageGzip, store.ImageZstd, store.ImageXz} {
		root.Remove(store.ImageFile(name, f))
	}
}

// Close cancels the running image imports and waits until each has
// cleaned up (its image failed, its partial file removed). Serve calls it
// when it stops; afterwards imports and uploads are refused.
func (s *Server) Close() {
	if s.images != nil {
		s.images.close()
	}
	s.waitBMC()
}

func (l *library) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel(errShutdown)
	l.wg.Wait()
}

// begin creates the importing record of name and registers its job, whose
// context derives from parent and also ends when the library closes.
func (l *library) begin(parent context.Context, actor, action string, img store.Image) (store.Image, context.Context, *job, error) {
	// Refused before a record or a byte is written (images_space.go).
	if err := l.s.importSpace(); err != nil {
		return store.Image{}, nil, nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return store.Image{}, nil, nil, huma.Error503ServiceUnavailable("the appliance is shutting down")
	}
	if _, busy := l.jobs[img.Name]; busy {
		return store.Image{}, nil, nil, huma.Error409Conflict("an import of image " + img.Name + " is still stopping; try again")
	}
	img.State = store.ImageImporting
	img, err := l.s.Store.CreateImage(img, store.Audit{Actor: actor, Action: action, Detail: "image " + img.Name + " from " + img.Source})
	if err != nil {
		return store.Image{}, nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(l.ctx, func() { cancel(context.Cause(l.ctx)) })
	j := &job{cancel: cancel, done: make(chan struct{})}
	l.jobs[img.Name] = j
	l.wg.Add(1)
	go func() {
		<-j.done
		stop()
		cancel(nil)
		l.mu.Lock()
		delete(l.jobs, img.Name)
		l.mu.Unlock()
		l.wg.Done()
	}()
	return img, ctx, j, nil
}

// start begins importing rawURL as image name and returns the importing
// record; the import goes on in a goroutine.
func (l *library) start(actor, name, rawURL, sum string) (store.Image, error) {
	img, ctx, j, err := l.begin(context.Background(), actor, "image-import", store.Image{Name: name, Source: rawURL})
	if err != nil {
		return img, err
	}
	go func() {
		defer close(j.done)
		body, total, err := l.fetch(ctx, rawURL)
		if err == nil {
			_, err = l.ingest(ctx, j.cancel, name, body, total, sum, "body.sha256")
			body.Close()
		}
		if err != nil {
			l.fail(name, err)
		}
	}()
	return img, nil
}

// upload stores body as image name and returns the ready record. length
// is the announced size (-1: unknown). interrupt makes a blocked read of
// body return: a delete, a stall or a shutdown stops the upload at once
// instead of when the client next sends something.
func (l *library) upload(ctx context.Context, actor, name string, body io.Reader, length int64, sum string, interrupt func()) (store.Image, error) {
	img := store.Image{Name: name, Source: store.ImageUpload, BytesTotal: max(length, 0)}
	_, ctx, j, err := l.begin(ctx, actor, "image-upload", img)
	if err != nil {
		return store.Image{}, err
	}
	defer close(j.done)
	defer context.AfterFunc(ctx, interrupt)()
	img, err = l.ingest(ctx, j.cancel, name, body, length, sum, "query.sha256")
	if errors.Is(err, context.Canceled) {
		// The client went away (the request's context), not a stop of ours.
		err = fmt.Errorf("%w: the upload was interrupted", errReceive)
	}
	if err != nil {
		l.fail(name, err)
		return store.Image{}, err
	}
	return img, nil
}

// remove stops a running import of name, then deletes the record and its
// files; a record that a profile names is kept (store.ErrInUse).
func (l *library) remove(actor, name string) error {
	l.mu.Lock()
	j := l.jobs[name]
	l.mu.Unlock()
	if j != nil {
		j.cancel(errDeleted)
		<-j.done
	}
	l.files.Lock()
	defer l.files.Unlock()
	if _, err := l.s.Store.DeleteImage(name, store.Audit{Actor: actor, Action: "image-delete"}); err != nil {
		return err
	}
	if l.s.ImageDir == "" {
		return nil
	}
	root, err := l.open()
	if err != nil {
		return err
	}
	defer root.Close()
	removeFiles(root, name)
	l.copies.drop(name)
	return nil
}

// fail marks image name failed with err as the reason.
func (l *library) fail(name string, err error) {
	reason := failReason(err)
	l.log.Warn("image import failed", "image", name, "err", err)
	_, uerr := l.s.Store.UpdateImage(name, store.Audit{Actor: "system", Action: "image-failed", Detail: "image " + name + ": " + reason},
		func(i *store.Image) error {
			if i.State != store.ImageImporting {
				return errors.New("no longer importing")
			}
			i.State, i.Error = store.ImageFailed, reason
			return nil
		})
	switch {
	case errors.Is(uerr, store.ErrNoSpace):
		// Its files are gone; the next start marks it failed (recover).
		l.log.Error("cannot mark the image import failed: the data disk is full; it stays importing until the next start", "image", name, "err", uerr)
	case uerr != nil && !errors.Is(uerr, store.ErrNotFound):
		l.log.Error("mark image import failed", "image", name, "err", uerr)
	}
}

// failReason is err as one printable line of at most maxReason bytes: it
// may quote what a remote server said.
func failReason(err error) string {
	r := strings.Map(func(c rune) rune {
		if c == ' ' || unicode.IsPrint(c) {
			return c
		}
		return '?'
	}, strings.ToValidUTF8(err.Error(), "?"))
	if len(r) > maxReason {
		r = strings.ToValidUTF8(r[:maxReason-3], "") + "..."
	}
	return r
}
