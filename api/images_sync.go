package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// Images on several appliances.
//
// Appliances that share a store (store.backend: etcd) share the image
// library's records, not its files: each serves library images from its
// own image directory, like a MAAS rack controller serves the boot
// resources it synced from the region. SyncImages keeps this appliance's
// copies in step with the records: at start, whenever the library changes
// (store.DB.WatchImages) and every Interval, it checks each ready image's
// file here (size and SHA-256), fetches a missing or wrong one from a peer
// that has a verified copy or else from the image's own source URL, and
// removes the files of deleted images. Each appliance says where it is in
// a row of its own per image (store.ImageCopy), which is also where its
// peers learn that they can fetch from it. While SyncImages runs, a
// machine is given a library image only once this appliance's copy is
// verified (libraryImage): until then its agent is told to wait.

// DefaultImageSyncInterval is how often SyncImages checks every copy when
// nothing wakes it sooner.
const DefaultImageSyncInterval = 30 * time.Second

// DefaultImageSyncRetry is the first wait after a failed fetch; it doubles
// with each failure up to maxSyncRetry.
const DefaultImageSyncRetry = 10 * time.Second

const maxSyncRetry = 5 * time.Minute

// ImageSync says how SyncImages keeps this appliance's copies of the image
// library.
type ImageSync struct {
	// URL is this appliance's base URL (http.advertise): peers fetch its
	// copies from URL + "/images/" + the image's file. Required.
	URL string
	// Name identifies this appliance in the copies' rows; default the
	// URL's host and port ("10.0.0.1-8080", applianceName).
	Name string
	// Interval is how often every copy is checked even when nothing
	// changed; default DefaultImageSyncInterval.
	Interval time.Duration
	// Retry is the first wait after a fetch failed from every source;
	// default DefaultImageSyncRetry, doubled per failure up to 5 minutes.
	Retry time.Duration
	// Watch calls changed whenever the library changes on another
	// appliance, until ctx ends (store.DB.WatchImages). Nil: other
	// appliances' changes are seen within Interval.
	Watch func(ctx context.Context, changed func()) error
}

// copyStore keeps the copies' rows; *store.DB satisfies it. A Store
// without it cannot sync (SyncImages refuses).
type copyStore interface {
	PutImageCopy(store.ImageCopy) error
	ListImageCopies(image string) ([]store.ImageCopy, error)
	GetDeletedImage(name string) (store.DeletedImage, error)
}

// applianceName is the default ImageSync.Name for base URL raw: its host
// and port, each character a resource name cannot hold as "-".
func applianceName(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	host := strings.TrimLeft(strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return r
		}
		return '-'
	}, u.Hostname()), "-._")
	// A long host name keeps its start (rack1.hall2.example.org).
	if limit := 64 - len(port) - 1; len(host) > limit {
		host = host[:limit]
	}
	if host == "" {
		return ""
	}
	return host + "-" + port
}

// SyncImages keeps this appliance's copies of the image library in step
// with the library's records until ctx ends (see the top of this file).
// serve runs it beside Serve; it returns nil when ctx ends, and an error
// only when it cannot start.
func (s *Server) SyncImages(ctx context.Context, cfg ImageSync) error {
	s.Handler() // builds the library
	if s.initErr != nil {
		return s.initErr
	}
	if s.ImageDir == "" {
		<-ctx.Done()
		return nil
	}
	st, ok := s.Store.(copyStore)
	if !ok {
		return errors.New("sync images: the store keeps no image copies")
	}
	if cfg.Name == "" {
		cfg.Name = applianceName(cfg.URL)
	}
	if err := names.CheckName(cfg.Name); err != nil {
		return fmt.Errorf("sync images: appliance name %s: %w", names.Label(cfg.Name), err)
	}
	if cfg.URL == "" {
		return errors.New("sync images: no appliance URL")
	}
	y := newSyncer(s.images, st, cfg)
	l := s.images
	l.copies.mu.Lock()
	if l.copies.sync != nil {
		l.copies.mu.Unlock()
		return errors.New("sync images: already running")
	}
	l.copies.sync = y
	l.copies.changedLocked()
	l.copies.mu.Unlock()
	defer func() {
		l.copies.mu.Lock()
		l.copies.sync = nil
		l.copies.changedLocked()
		l.copies.mu.Unlock()
	}()
	// Close (the library's context) stops a fetch as it stops an import.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(l.ctx, func() { cancel(context.Cause(l.ctx)) })()
	if cfg.Watch != nil {
		go func() {
			if err := cfg.Watch(ctx, y.kick); err != nil {
				l.log.Warn("image library watch stopped", "err", err)
			}
		}()
	}
	l.log.Info("keeping image copies in step", "appliance", cfg.Name, "url", cfg.URL)
	y.run(ctx)
	return nil
}

// syncer is SyncImages' state; one goroutine (run) does all its work.
type syncer struct {
	l     *library
	st    copyStore
	cfg   ImageSync
	peers *http.Client
	rowMu sync.Mutex // orders this appliance's row writes (put)
	wakeC chan struct{}
	// retry holds the images whose last fetch failed from every source.
	retry map[string]*retryState
}

type retryState struct {
	sha     string
	sources string // the source URLs tried: a new peer is tried at once
	next    time.Time
	wait    time.Duration
}

func newSyncer(l *library, st copyStore, cfg ImageSync) *syncer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultImageSyncInterval
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultImageSyncRetry
	}
	return &syncer{l: l, st: st, cfg: cfg, peers: peerClient(), wakeC: make(chan struct{}, 1), retry: map[string]*retryState{}}
}

// kick asks for a reconcile as soon as the current one ends.
func (y *syncer) kick() {
	select {
	case y.wakeC <- struct{}{}:
	default:
	}
}

func (y *syncer) run(ctx context.Context) {
	for {
		if err := y.reconcile(ctx); err != nil && ctx.Err() == nil {
			y.l.log.Warn("image sync", "err", err)
		}
		wait := y.cfg.Interval
		now := time.Now()
		for _, r := range y.retry {
			wait = min(wait, max(r.next.Sub(now), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-y.wakeC:
		case <-t.C:
		}
		t.Stop()
	}
}

// reconcile makes this appliance's image directory match the library
// once: files of deleted images removed, every ready image's copy checked
// and, when missing or wrong, fetched. A store it cannot read changes
// nothing.
func (y *syncer) reconcile(ctx context.Context) error {
	imgs, err := y.l.s.Store.ListImages()
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	all, err := y.st.ListImageCopies("")
	if err != nil {
		return fmt.Errorf("list image copies: %w", err)
	}
	rows := map[string][]store.ImageCopy{}
	for _, c := range all {
		rows[c.Image] = append(rows[c.Image], c)
	}
	root, err := y.l.open()
	if err != nil {
		return err
	}
	defer root.Close()
	y.sweep(root, imgs)
	for _, img := range imgs {
		if ctx.Err() != nil {
			return nil
		}
		if img.State != store.ImageReady {
			continue
		}
		y.ensure(ctx, root, img, rows[img.Name])
	}
	return nil
}

// put writes this appliance's row of img in state state; edit fills in
// the rest. A row the store refuses because the image is gone or changed
// is dropped: the next reconcile sees the change.
//
// A row other than present is never written over a verified copy: an
// import here (placed) may verify the file while a reconcile that began
// before it is about to say it is verifying or fetching it. rowMu orders
// the check and the write against placed's own.
func (y *syncer) put(img store.Image, state store.CopyState, edit func(*store.ImageCopy)) error {
	c := store.ImageCopy{Image: img.Name, Appliance: y.cfg.Name, URL: y.cfg.URL, State: state, SHA256: img.SHA256}
	if edit != nil {
		edit(&c)
	}
	if c.Error != "" {
		c.Error = failReason(errors.New(c.Error)) // may quote a peer or a source
	}
	y.rowMu.Lock()
	defer y.rowMu.Unlock()
	if state != store.CopyPresent && y.isVerified(nil, img) {
		return nil
	}
	err := y.st.PutImageCopy(c)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrInvalid) {
			y.l.log.Warn("write this appliance's image copy row", "image", img.Name, "state", state, "err", err)
		}
		return err
	}
	// Not a change for changed's waiters: only a verified copy changes
	// what a machine is given.
	y.l.copies.mu.Lock()
	y.l.copies.rows[img.Name] = c
	y.l.copies.mu.Unlock()
	return nil
}

// sources lists where img can be fetched from, peers first: the other
// appliances whose rows say they have a verified copy (shuffled, so that
// a fleet does not all pull from one), then the image's own source URL
// when its bytes are the served file's (not a converted qcow2, not an
// upload).
func (y *syncer) sources(img store.Image, rows []store.ImageCopy) []source {
	var out []source
	for _, c := range rows {
		if c.Appliance != y.cfg.Name && c.State == store.CopyPresent && c.SHA256 == img.SHA256 {
			out = append(out, source{url: strings.TrimRight(c.URL, "/") + "/images/" + img.File, peer: true})
		}
	}
	shuffle(out)
	if img.Source != store.ImageUpload && img.SourceSHA256 == img.SHA256 {
		out = append(out, source{url: img.Source})
	}
	return out
}

// due says whether a fetch of img from srcs may start now, forgetting a
// back-off that a new checksum or a new source ends.
func (y *syncer) due(img store.Image, srcs []string) bool {
	r := y.retry[img.Name]
	if r == nil {
		return true
	}
	sorted := append([]string(nil), srcs...)
	sort.Strings(sorted)
	if r.sha != img.SHA256 || r.sources != strings.Join(sorted, " ") {
		delete(y.retry, img.Name)
		return true
	}
	return !time.Now().Before(r.next)
}

// failed backs img off after a fetch failed from every one of srcs.
func (y *syncer) failed(img store.Image, srcs []string) time.Duration {
	sorted := append([]string(nil), srcs...)
	sort.Strings(sorted)
	r := y.retry[img.Name]
	if r == nil || r.sha != img.SHA256 {
		r = &retryState{sha: img.SHA256}
		y.retry[img.Name] = r
	}
	r.sources = strings.Join(sorted, " ")
	if r.wait == 0 {
		r.wait = y.cfg.Retry
	} else {
		r.wait = min(2*r.wait, maxSyncRetry)
	}
	r.next = time.Now().Add(r.wait)
	return r.wait
}
