package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/api"
)

// TestCLIImages drives the image library from the CLI: an import from a
// web server on loopback with --wait, an upload of a file, a profile that
// names the image, the in-use refusal and the delete.
func TestCLIImages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	var srv *api.Server
	e := newCLIEnv(t, func(s *api.Server) { s.ImageDir = dir; srv = s })
	t.Cleanup(srv.Close)
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)

	disk := bytes.Repeat([]byte("foundry-disk-image\n"), 1<<16) // 1.2 MiB
	sum := sha256.Sum256(disk)
	hexSum := hex.EncodeToString(sum[:])
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/disk.raw" {
			http.NotFound(w, r)
			return
		}
		w.Write(disk)
	}))
	defer web.Close()
	file := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(file, disk, 0o644); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		args []string
		exit int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{"import needs a URL", []string{"images", "import", "web"}, 2, "", "--url"},
		{"import bad scheme", []string{"images", "import", "web", "--url", "file:///etc/passwd"}, 4, "", "body.url"},
		{"import", []string{"images", "import", "web", "--url", web.URL + "/disk.raw", "--sha256", hexSum, "--wait"}, 0, "ready", ""},
		{"import fails", []string{"images", "import", "gone", "--url", web.URL + "/nothing", "--wait"}, 4, "", "import of gone failed"},
		{"upload", []string{"images", "upload", "up", file}, 0, hexSum, "up: sent 1.2 MiB of 1.2 MiB (100%)"},
		{"upload mismatch", []string{"images", "upload", "bad", file, "--sha256", strings.Repeat("0", 64)}, 4, "", "checksum mismatch"},
		{"upload missing file", []string{"images", "upload", "x", filepath.Join(dir, "nope")}, 2, "", "no such file"},
		{"upload taken", []string{"images", "upload", "up", file}, 4, "", "already exists"},
		{"ls", []string{"images", "ls"}, 0, "1.2 MiB", ""},
		{"show", []string{"images", "show", "web"}, 0, "/images/library/web.raw", ""},
		{"show unknown", []string{"images", "show", "ghost"}, 3, "", "not found"},
		{"profile names an importing or missing image", []string{"profiles", "create", "p", "--kind", "image", "--image", "ghost"}, 4, "", "body.image"},
		{"profile names the image", []string{"profiles", "create", "p", "--kind", "image", "--image", "web"}, 0, "web", ""},
		{"profile list shows it", []string{"profiles", "ls"}, 0, "image web", ""},
		{"in use", []string{"images", "rm", "web"}, 4, "", "used by profile p"},
		{"viewer cannot delete", []string{"images", "rm", "up", "--token", e.viewer}, 5, "", ""},
		{"profile moves to the other image", []string{"profiles", "update", "p", "--image", "up"}, 0, "up", ""},
		{"rm", []string{"images", "rm", "web"}, 0, "deleted image web", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, errOut, exit := e.run(ctx, s.args...)
			if exit != s.exit || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.err) {
				t.Fatalf("foundry %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), exit, s.exit, out, errOut)
			}
		})
	}
	out, _, exit := e.run(ctx, "images", "ls", "-o", "json")
	var imgs []api.Image
	if exit != 0 || json.Unmarshal([]byte(out), &imgs) != nil || len(imgs) != 3 {
		t.Fatalf("ls -o json: %d %s", exit, out)
	}
	for _, img := range imgs {
		if img.Name == "up" && (img.State != "ready" || img.SHA256 != hexSum || img.Size != int64(len(disk))) {
			t.Errorf("uploaded image: %+v", img)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "library", "web.raw")); !os.IsNotExist(err) {
		t.Errorf("the deleted image's file: %v", err)
	}
}

func TestImageMaxSizeConfig(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want int64
		bad  bool
	}{
		{"", 0, false},
		{"1048576", 1 << 20, false},
		{"64GiB", 64 << 30, false},
		{"2 TiB", 2 << 40, false},
		{"512KiB", 512 << 10, false},
		{"0", 0, true},
		{"-1GiB", 0, true},
		{"64GB", 0, true},
		{"9000000TiB", 0, true},
	} {
		t.Run(tc.v, func(t *testing.T) {
			yaml := "http: {advertise: 'http://192.0.2.1:8080'}\n"
			if tc.v != "" {
				yaml += "image_max_size: " + tc.v + "\n"
			}
			c, err := parseConfig([]byte(yaml), fakeHost)
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), "image_max_size") {
					t.Fatalf("accepted: %v", err)
				}
				return
			}
			if err != nil || c.ImageMaxSize != tc.want {
				t.Fatalf("got %d, %v; want %d", c.ImageMaxSize, err, tc.want)
			}
		})
	}
}
