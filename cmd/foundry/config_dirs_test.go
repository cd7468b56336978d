package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageDirMayNotServeData: check-config and serve refuse, with one
// message naming the key, every image_dir that would publish data_dir, by
// path or through a symlink; the default <data_dir>/images stays legal.
func TestImageDirMayNotServeData(t *testing.T) {
	top := t.TempDir()
	data := filepath.Join(top, "data")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(data, "tls"), 0o700))
	must(os.MkdirAll(filepath.Join(top, "srv", "images"), 0o755))
	must(os.Symlink(data, filepath.Join(top, "data-link")))                      // another name for data_dir
	must(os.Symlink("..", filepath.Join(top, "srv", "up")))                      // srv/up is top
	must(os.Symlink(filepath.Join(data, "new"), filepath.Join(top, "dangling"))) // data/new does not exist yet
	must(os.Symlink(filepath.Join(top, "srv", "images"), filepath.Join(top, "img-link")))

	tests := []struct {
		name, data, images, key string // key "" = legal
		extra                   string
	}{
		{"default images under data_dir", data, "", "", ""},
		{"data_dir/images written out", data, data + "/images", "", ""},
		{"below data_dir/images", data, data + "/images/x", "", ""},
		{"outside data_dir", data, top + "/srv/images", "", ""},
		{"through a symlink to outside", data, top + "/img-link", "", ""},
		{"sibling with a common prefix", data, data + "-images", "", ""},

		{"image_dir is data_dir", data, data, "image_dir", ""},
		{"image_dir is data_dir, unclean", data, data + "/./tls/..//", "image_dir", ""},
		{"image_dir is data_dir through a symlink", data, top + "/data-link", "image_dir", ""},
		{"image_dir inside data_dir", data, data + "/tls", "image_dir", ""},
		{"image_dir inside data_dir, not created yet", data, data + "/pub", "image_dir", ""},
		{"image_dir inside data_dir through a dangling symlink", data, top + "/dangling", "image_dir", ""},
		{"image_dir inside data_dir by escaping images/", data, data + "/images/../tls", "image_dir", ""},
		{"data_dir inside image_dir", data, top, "image_dir", ""},
		{"data_dir inside image_dir through a symlink", data, top + "/srv/up", "image_dir", ""},
		{"data_dir inside image_dir, relative", "data", ".", "image_dir", ""},
		{"image_dir is /", data, "/", "image_dir", ""},
		{"tls key inside image_dir", data, top + "/srv/images", "http.tls.key",
			"  tls: {cert: " + top + "/srv/cert.pem, key: " + top + "/srv/images/key.pem}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == "data" { // relative paths are taken from the working directory
				t.Chdir(top)
			}
			raw := "data_dir: " + tc.data + "\nhttp:\n  advertise: http://10.99.0.1:8080\n" + tc.extra
			if tc.images != "" {
				raw += "image_dir: " + tc.images + "\n"
			}
			checkErr, serveErr := checkConfig(raw, nil), serveSetup(t, raw, nil)
			if tc.key == "" {
				if checkErr != nil || serveErr != nil {
					t.Fatalf("refused a legal configuration:\ncheck-config: %v\nserve: %v", checkErr, serveErr)
				}
				return
			}
			if checkErr == nil || serveErr == nil || checkErr.Error() != serveErr.Error() {
				t.Fatalf("check-config and serve disagree:\ncheck-config: %v\nserve: %v", checkErr, serveErr)
			}
			if !strings.Contains(checkErr.Error(), "\n  "+tc.key+": ") {
				t.Fatalf("the error does not name %s:\n%v", tc.key, checkErr)
			}
		})
	}
}
