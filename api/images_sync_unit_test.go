package api

import (
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
