package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/foundry-appliance/foundry/names"
)

func TestApplianceName(t *testing.T) {
	for raw, want := range map[string]string{
		"http://10.77.0.1:8080":        "10.77.0.1-8080",
		"http://10.77.0.1":             "10.77.0.1-80",
		"https://foundry.example.org/": "foundry.example.org-443",
		"http://[fd00::1]:8080/":       "fd00--1-8080",
		"http://a234567890123456789012345678901234567890123456789012345678901234567890.example:1": "a2345678901234567890123456789012345678901234567890123456789012-1",
		"not a url": "",
		"":          "",
	} {
		got := applianceName(raw)
		if got != want {
			t.Errorf("applianceName(%q) = %q, want %q", raw, got, want)
		}
		if got != "" {
			if err := names.CheckName(got); err != nil {
				t.Errorf("applianceName(%q) = %q: %v", raw, got, err)
			}
		}
	}
}

func TestLibraryName(t *testing.T) {
	for f, want := range map[string]string{
		"deb.raw": "deb", "deb.raw.zst": "deb", "deb.raw.gz": "deb", "deb.raw.xz": "deb", "a.raw.raw": "a.raw",
		".sync-deb-0123": "", ".import-x": "", "notes.txt": "", ".raw": "", "deb.qcow2": "",
	} {
		got, ok := libraryName(f)
		if got != want || ok != (want != "") {
			t.Errorf("libraryName(%q) = %q, %t; want %q", f, got, ok, want)
		}
	}
}

// TestFetchAt: a resumed fetch takes a 206 only when its range starts at
// the offset asked for; a 200 is the whole file (start over); anything
// else fails.
func TestFetchAt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		rng       string
		wantStart int64
		ok        bool
	}{
		{"range from the offset", 206, "bytes 100-199/200", 100, true},
		{"whole file", 200, "", 0, true},
		{"range from elsewhere", 206, "bytes 0-199/200", 0, false},
		{"garbled range", 206, "bytes x-y/z", 0, false},
		{"range not satisfiable", 416, "", 0, false},
		{"not found", 404, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") != "bytes=100-" {
					t.Errorf("Range %q", r.Header.Get("Range"))
				}
				if tc.rng != "" {
					w.Header().Set("Content-Range", tc.rng)
				}
				w.WriteHeader(tc.status)
				w.Write(make([]byte, 100))
			}))
			defer ts.Close()
			l := &library{s: &Server{}}
			body, _, start, err := l.fetchAt(context.Background(), ts.Client(), ts.URL, 100)
			if (err == nil) != tc.ok || start != tc.wantStart {
				t.Fatalf("start %d, err %v", start, err)
			}
			if body != nil {
				body.Close()
			}
		})
	}
}
