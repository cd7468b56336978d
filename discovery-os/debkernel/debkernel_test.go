package debkernel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	cases := []struct {
		name    string
		files   []string
		wantErr string
		wantMod string
	}{
		{name: "bookworm layout", files: []string{"boot/vmlinuz-6.1.0-57-amd64", "lib/modules/6.1.0-57-amd64/kernel/x.ko"}, wantMod: "lib/modules/6.1.0-57-amd64"},
		{name: "merged /usr", files: []string{"boot/vmlinuz-6.12.0-1-amd64", "usr/lib/modules/6.12.0-1-amd64/kernel/x.ko"}, wantMod: "usr/lib/modules/6.12.0-1-amd64"},
		{name: "no kernel", files: []string{"lib/modules/6.1.0-57-amd64/kernel/x.ko"}, wantErr: "found 0"},
		{name: "two kernels", files: []string{"boot/vmlinuz-a", "boot/vmlinuz-b"}, wantErr: "found 2"},
		{name: "modules of another release", files: []string{"boot/vmlinuz-6.1.0-57-amd64", "lib/modules/6.1.0-56-amd64/x.ko"}, wantErr: "no module directory for 6.1.0-57-amd64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range c.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			k, err := Find(Kernel{Package: "p"}, dir)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ModuleDir != filepath.Join(dir, c.wantMod) || k.Package != "p" || filepath.Base(k.Vmlinuz) != "vmlinuz-"+k.Release {
				t.Errorf("%+v", k)
			}
		})
	}
}

// Unpack on the kernel package the build downloaded (make images), when
// it is there: the real layout, read by the real dpkg-deb.
func TestUnpackReal(t *testing.T) {
	cur, err := os.ReadFile("../../build/kernel/current")
	if err != nil {
		t.Skip("no downloaded kernel package (make images fetches it)")
	}
	deb := strings.TrimSpace(string(cur))
	if !filepath.IsAbs(deb) {
		deb = filepath.Join("../..", deb)
	}
	k, err := Unpack(context.Background(), deb, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Package, "linux-image-") || k.Version == "" || !strings.HasSuffix(k.Package, k.Release) {
		t.Errorf("%+v", k)
	}
	if _, err := os.Stat(filepath.Join(k.ModuleDir, "kernel")); err != nil {
		t.Errorf("module directory: %v", err)
	}
	if _, err := Unpack(context.Background(), "/nonexistent.deb", t.TempDir()); err == nil || !strings.Contains(err.Error(), "/nonexistent.deb") {
		t.Errorf("missing package: %v", err)
	}
}
