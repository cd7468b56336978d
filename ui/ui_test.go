package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func testFS() fstest.MapFS {
	return fstest.MapFS{
		"dist/index.html":              {Data: []byte(`<!doctype html><div id="app"></div><script type="module" src="/assets/index-abc123.js"></script>`)},
		"dist/assets/index-abc123.js":  {Data: []byte(`console.log("app")`)},
		"dist/assets/index-def456.css": {Data: []byte(`body{}`)},
		"dist/favicon.svg":             {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"></svg>`)},
		"dist-placeholder/index.html":  {Data: []byte(`<p>dashboard not built</p>`)},
	}
}

func TestHandler(t *testing.T) {
	h := newHandler(testFS(), "dist")
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		ctype, cache, body string
		csp                bool
	}{
		{name: "root is the app", path: "/", status: 200, ctype: "text/html; charset=utf-8", cache: "no-cache", body: `<div id="app">`, csp: true},
		{name: "client route gets index.html", path: "/machines/52:54:00:12:34:56/approve", status: 200, ctype: "text/html; charset=utf-8", cache: "no-cache", body: `<div id="app">`, csp: true},
		{name: "route with a query", path: "/audit?mac=52:54:00:12:34:56", status: 200, body: `<div id="app">`},
		{name: "hashed script is cached for a year", path: "/assets/index-abc123.js", status: 200, ctype: "text/javascript; charset=utf-8", cache: "public, max-age=31536000, immutable", body: `console.log`},
		{name: "hashed style", path: "/assets/index-def456.css", status: 200, ctype: "text/css; charset=utf-8"},
		{name: "unhashed file is revalidated", path: "/favicon.svg", status: 200, ctype: "image/svg+xml", cache: "no-cache"},
		{name: "missing asset is 404, not the app", path: "/assets/index-gone.js", status: 404},
		{name: "missing file with extension", path: "/robots.txt", status: 404},
		{name: "unknown API path is 404, not the app", path: "/api/v1/nothing", status: 404},
		{name: "bare /api", path: "/api", status: 404},
		{name: "index.html redirects to /", path: "/index.html", status: 301},
		{name: "dot-dot stays inside", path: "/assets/../../../etc/passwd", status: 200, body: `<div id="app">`},
		{name: "POST is refused", method: "POST", path: "/", status: 405},
		{name: "HEAD works", method: "HEAD", path: "/", status: 200, ctype: "text/html; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.method
			if m == "" {
				m = http.MethodGet
			}
			req := httptest.NewRequest(m, tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, tc.status, rec.Body.String())
			}
			if tc.ctype != "" && rec.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.ctype)
			}
			if tc.cache != "" && rec.Header().Get("Cache-Control") != tc.cache {
				t.Errorf("Cache-Control %q, want %q", rec.Header().Get("Cache-Control"), tc.cache)
			}
			if tc.body != "" && !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("body %q does not contain %q", rec.Body.String(), tc.body)
			}
			if got := rec.Header().Get("Content-Security-Policy"); tc.csp && !strings.Contains(got, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q", got)
			}
			if tc.status == 200 && rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no nosniff header")
			}
		})
	}
}

func TestHandlerETag(t *testing.T) {
	h := newHandler(testFS(), "dist")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/assets/index-abc123.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
	req := httptest.NewRequest("GET", "/assets/index-abc123.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Errorf("revalidation: status %d, %d bytes; want 304 and none", rec.Code, rec.Body.Len())
	}
	// Another file has another tag.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/assets/index-def456.css", nil))
	if rec.Header().Get("ETag") == etag {
		t.Error("two files share an ETag")
	}
}

func TestPlaceholder(t *testing.T) {
	h := newHandler(testFS(), placeholderDir)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/machines", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "dashboard not built") {
		t.Errorf("placeholder: %d %q", rec.Code, rec.Body.String())
	}
}

// TestEmbedded checks what this binary really carries: the built dashboard
// when `npm run build` ran before `go build`, else the placeholder page.
func TestEmbedded(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	want := "dashboard is not built"
	if Built() {
		want = `<div id="app">`
	}
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("GET / (built=%t) does not contain %q:\n%s", Built(), want, rec.Body.String())
	}
	t.Logf("dashboard built into this binary: %t", Built())
}
