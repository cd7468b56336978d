package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestImageServerRefuses: only regular, non-hidden files inside the image
// directory are served; every refusal is a 404 whose body leaks nothing.
func TestImageServerRefuses(t *testing.T) {
	top := t.TempDir()
	images, data := filepath.Join(top, "images"), filepath.Join(top, "data")
	for _, d := range []string{filepath.Join(images, "discovery"), filepath.Join(images, ".git"), data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(images, "discovery", "vmlinuz"), "kernel")
	write(filepath.Join(images, ".htpasswd"), "secret")
	write(filepath.Join(images, ".git", "config"), "secret")
	write(filepath.Join(data, "admin-token"), "secret")
	for link, target := range map[string]string{
		"data":            data,                  // absolute, out of the root
		"up":              "../data/admin-token", // relative, out of the root
		"kernel":          "discovery/vmlinuz",   // inside the root: allowed
		"hidden-via-link": ".htpasswd",           // a visible name for a dotfile
		"root":            "/",                   // the whole file system
		"loop":            "loop",                // a symlink loop
	} {
		if err := os.Symlink(target, filepath.Join(images, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(images, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/images/", imageServer(images)))
	defer ts.Close()

	tests := []struct {
		path string
		code int
		body string
	}{
		{"/images/discovery/vmlinuz", 200, "kernel"},
		{"/images/kernel", 200, "kernel"},
		// The rule is about names: a visible link that the administrator
		// made publishes the file it names.
		{"/images/hidden-via-link", 200, "secret"},
		{"/images/.htpasswd", 404, ""},
		{"/images/.git/config", 404, ""},
		{"/images/discovery/../.git/config", 404, ""},
		{"/images/%2egit/config", 404, ""},
		{"/images/data/admin-token", 404, ""},
		{"/images/up", 404, ""},
		{"/images/../data/admin-token", 404, ""},
		{"/images/%2e%2e/data/admin-token", 404, ""},
		{"/images/root/etc/passwd", 404, ""},
		{"/images/loop", 404, ""},
		{"/images/fifo", 404, ""},
		{"/images/discovery/", 404, ""},
		{"/images/", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequest("GET", ts.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The client would clean "..": send the path as written.
			req.URL.Opaque = tc.path
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || (tc.code == 200 && string(b) != tc.body) {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, b, tc.code, tc.body)
			}
			if (string(b) == "secret" && tc.body != "secret") || (tc.code != 200 && string(b) != "404 page not found\n") {
				t.Fatalf("refusal leaks: %q", b)
			}
		})
	}
}

func TestHidden(t *testing.T) {
	for name, want := range map[string]bool{
		".": false, "a": false, "a/b.c": false, "a./b": false,
		".a": true, "a/.b": true, "a/..b/c": true, "..": true,
	} {
		if got := hidden(name); got != want {
			t.Errorf("hidden(%q) = %t, want %t", name, got, want)
		}
	}
}
