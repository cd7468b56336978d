// Package ui serves Foundry's web dashboard: the single-page application
// built by Vite from this directory (package.json, src/) into dist/, embedded
// in the binary with go:embed.
//
// dist/ is build output and is not committed, yet `go build` must work on a
// fresh checkout without npm. The embed pattern "dist*" therefore matches
// both dist/ (when `npm run build` has run) and dist-placeholder/ (committed,
// always there), so the pattern never matches nothing. Handler serves dist/
// when it holds an index.html and the placeholder page otherwise. (An empty
// dist/, left by an interrupted build, still fails `go build` with "contains
// no embeddable files": build the dashboard again or remove the directory.)
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist*
var embedded embed.FS

// Directories inside embedded.
const (
	builtDir       = "dist"
	placeholderDir = "dist-placeholder"
)

// Built reports whether the binary holds the built dashboard rather than
// the placeholder page.
func Built() bool {
	_, err := fs.Stat(embedded, builtDir+"/index.html")
	return err == nil
}

// Handler serves the dashboard. Files are served with their content type
// and a strong ETag; Vite's content-hashed files under /assets/ are cached
// for a year, everything else is revalidated on every load. Any other GET
// path without a file extension is a client-side route and gets
// index.html. Paths under /api/ never get the application: an unknown API
// path is a 404, not a page.
func Handler() http.Handler {
	root := placeholderDir
	if Built() {
		root = builtDir
	}
	return newHandler(embedded, root)
}

// asset is one file, read once at start-up.
type asset struct {
	name  string
	data  []byte
	etag  string
	ctype string
}

// handler serves a fixed set of files; it is immutable after newHandler.
type handler struct {
	files map[string]*asset // by URL path, e.g. "/assets/index-abc.js"
	index *asset
}

// newHandler serves the files under root in fsys.
func newHandler(fsys fs.FS, root string) *handler {
	h := &handler{files: map[string]*asset{}}
	// Errors cannot happen on an embed.FS; a file that could not be read
	// would simply not be served.
	_ = fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(data)
		ctype := contentType(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(data)
		}
		a := &asset{
			name:  path.Base(p),
			data:  data,
			etag:  `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
			ctype: ctype,
		}
		h.files[strings.TrimPrefix(p, root)] = a
		return nil
	})
	h.index = h.files["/index.html"]
	return h
}

// contentType fixes the types of what Vite emits, whatever the host's
// /etc/mime.types says (some map .js to application/x-javascript); other
// extensions fall back to the mime package.
func contentType(ext string) string {
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return mime.TypeByExtension(ext)
}

// csp allows only the appliance's own origin: the dashboard loads nothing
// from elsewhere (it must work on an isolated network) and has no inline
// scripts or styles.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if p == "/api" || strings.HasPrefix(p, "/api/") {
		http.NotFound(w, r)
		return
	}
	a, ok := h.files[p]
	switch {
	case ok && p == "/index.html":
		// The application's address is /, not /index.html.
		http.Redirect(w, r, "/", http.StatusMovedPermanently)
		return
	case ok:
	case isRoute(p) && h.index != nil:
		a = h.index
	default:
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(p, "/assets/") {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	if a == h.index {
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers If-None-Match with 304 and handles Range and HEAD.
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}

// isRoute reports whether p looks like a client-side route rather than a
// file: its last element has no extension.
func isRoute(p string) bool {
	return path.Ext(path.Base(p)) == ""
}
