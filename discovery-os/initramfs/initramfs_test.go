package initramfs

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
	"github.com/klauspost/compress/gzip"
	"github.com/u-root/u-root/pkg/cpio"
)

func spec(t *testing.T) Spec {
	t.Helper()
	dir := t.TempDir()
	modDir := kmodtest.Tree(t, filepath.Join(dir, "lib/modules/6.1.0-99-amd64"), kmodtest.Debian)
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("\x7fELF fake agent"), 0o755)
	ids := filepath.Join(dir, "pci.ids")
	os.WriteFile(ids, []byte("8086  Intel Corporation\n"), 0o644)
	return Spec{Init: agent, ModuleDir: modDir, Modules: []string{"e1000", "ata_piix", "af_packet"},
		Optional: []string{"af_packet"}, PCIIDs: ids}
}

// readBack decompresses an image and returns its records with contents.
func readBack(t *testing.T, img []byte) (map[string]cpio.Record, map[string]string, []string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	byName, content := map[string]cpio.Record{}, map[string]string{}
	var order []string
	for _, r := range recs {
		if _, dup := byName[r.Name]; dup {
			t.Errorf("duplicate entry %s", r.Name)
		}
		byName[r.Name] = r
		order = append(order, r.Name)
		b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		content[r.Name] = string(b)
	}
	return byName, content, order
}

func TestBuild(t *testing.T) {
	s := spec(t)
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatal(err)
	}
	recs, content, order := readBack(t, buf.Bytes())
	if !slices.IsSorted(order) {
		t.Errorf("entries not sorted: %v", order)
	}
	const mods = "lib/modules/6.1.0-99-amd64/"
	want := []struct {
		name string
		mode uint64
	}{
		{"dev", cpio.S_IFDIR | 0o755},
		{"dev/console", cpio.S_IFCHR | 0o600},
		{"dev/null", cpio.S_IFCHR | 0o666},
		{"etc", cpio.S_IFDIR | 0o755},
		{"init", cpio.S_IFREG | 0o755},
		{"lib", cpio.S_IFDIR | 0o755},
		{"lib/modules", cpio.S_IFDIR | 0o755},
		{mods + "kernel/drivers/ata/ata_piix.ko", cpio.S_IFREG | 0o644},
		{mods + "kernel/drivers/ata/libata.ko", cpio.S_IFREG | 0o644},
		{mods + "kernel/drivers/net/ethernet/intel/e1000/e1000.ko", cpio.S_IFREG | 0o644},
		{mods + "kernel/drivers/scsi/scsi_common.ko", cpio.S_IFREG | 0o644},
		{mods + "kernel/drivers/scsi/scsi_mod.ko", cpio.S_IFREG | 0o644},
		{mods + "modules.alias", cpio.S_IFREG | 0o644},
		{mods + "modules.dep", cpio.S_IFREG | 0o644},
		{"proc", cpio.S_IFDIR | 0o755},
		{"run", cpio.S_IFDIR | 0o755},
		{"sys", cpio.S_IFDIR | 0o755},
		{"tmp", cpio.S_IFDIR | 0o1777},
		{"usr/share/misc/pci.ids", cpio.S_IFREG | 0o644},
	}
	for _, w := range want {
		r, ok := recs[w.name]
		if !ok {
			t.Errorf("missing %s", w.name)
			continue
		}
		if r.Mode != w.mode {
			t.Errorf("%s: mode %#o, want %#o", w.name, r.Mode, w.mode)
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d", w.name, r.MTime, r.UID, r.GID)
		}
	}
	for name := range recs {
		if strings.Contains(name, "snd") || strings.Contains(name, "amdgpu") || strings.Contains(name, "virtio") {
			t.Errorf("unrequested module %s included", name)
		}
		if strings.HasSuffix(name, ".ko") {
			img := content[name]
			if mi, err := kmod.ParseModinfo([]byte(img)); err != nil || mi.Name != kmod.NameOf(name) {
				t.Errorf("%s: content does not parse as that module: %v", name, err)
			}
		}
	}
	if r := recs["dev/console"]; r.Rmajor != 5 || r.Rminor != 1 {
		t.Errorf("dev/console is %d:%d", r.Rmajor, r.Rminor)
	}
	if recs["init"].Mode&0o111 != 0o111 || content["init"] != "\x7fELF fake agent" {
		t.Errorf("init: mode %#o content %q", recs["init"].Mode, content["init"])
	}
	ix, err := kmod.ParseDep(strings.NewReader(content[mods+"modules.dep"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Deps["ata_piix"]; !slices.Equal(got, []string{"libata", "scsi_mod", "scsi_common"}) {
		t.Errorf("ata_piix deps %v", got)
	}
	if !strings.Contains(content[mods+"modules.alias"], "alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000\n") {
		t.Errorf("modules.alias:\n%s", content[mods+"modules.alias"])
	}

	var again bytes.Buffer
	if err := Build(&again, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two builds of the same spec differ")
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"no agent", func(s *Spec) { s.Init = "/nonexistent/agent" }, "read agent"},
		{"required module missing", func(s *Spec) { s.Optional = nil }, "af_packet is not a module file"},
		{"no pci.ids", func(s *Spec) { s.PCIIDs = "/nonexistent/pci.ids" }, "read pci.ids"},
		{"no module directory", func(s *Spec) { s.ModuleDir = "/nonexistent/modules" }, "add kernel modules: open module tree /nonexistent/modules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(t)
			tt.modify(&s)
			err := Build(io.Discard, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// filesSpec is spec plus two extra files: a program whose mode comes from
// its source and a configuration file with a mode of its own.
func filesSpec(t *testing.T) Spec {
	t.Helper()
	s := spec(t)
	dir := t.TempDir()
	prog := filepath.Join(dir, "mke2fs")
	os.WriteFile(prog, []byte("\x7fELF mke2fs"), 0o750)
	conf := filepath.Join(dir, "mke2fs.conf")
	os.WriteFile(conf, []byte("[defaults]\n"), 0o600)
	// Reached through a symbolic link, as the host's /lib64 loader is.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(prog, link); err != nil {
		t.Fatal(err)
	}
	s.Files = []File{
		{Src: conf, Dst: "/etc/mke2fs.conf", Mode: 0o644},
		{Src: link, Dst: "/sbin/mke2fs"},
		{Src: prog, Dst: "/usr/share/foundry/images/discovery/initrd"},
	}
	return s
}

func TestBuildFiles(t *testing.T) {
	s := filesSpec(t)
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatal(err)
	}
	recs, content, order := readBack(t, buf.Bytes())
	if !slices.IsSorted(order) {
		t.Errorf("entries not sorted: %v", order)
	}
	want := []struct {
		name    string
		mode    uint64
		content string
	}{
		{"etc/mke2fs.conf", cpio.S_IFREG | 0o644, "[defaults]\n"},
		{"sbin", cpio.S_IFDIR | 0o755, ""},
		{"sbin/mke2fs", cpio.S_IFREG | 0o750, "\x7fELF mke2fs"},
		{"usr/share/foundry", cpio.S_IFDIR | 0o755, ""},
		{"usr/share/foundry/images", cpio.S_IFDIR | 0o755, ""},
		{"usr/share/foundry/images/discovery", cpio.S_IFDIR | 0o755, ""},
		{"usr/share/foundry/images/discovery/initrd", cpio.S_IFREG | 0o750, "\x7fELF mke2fs"},
		// The spec's own entries are still there.
		{"init", cpio.S_IFREG | 0o755, "\x7fELF fake agent"},
		{"usr/share/misc/pci.ids", cpio.S_IFREG | 0o644, "8086  Intel Corporation\n"},
	}
	for _, w := range want {
		r, ok := recs[w.name]
		if !ok {
			t.Errorf("missing %s", w.name)
			continue
		}
		if r.Mode != w.mode || content[w.name] != w.content || r.MTime != 0 {
			t.Errorf("%s: mode %#o mtime %d content %q; want %#o, %q", w.name, r.Mode, r.MTime, content[w.name], w.mode, w.content)
		}
	}

	// The order of Files does not change a byte.
	slices.Reverse(s.Files)
	var again bytes.Buffer
	if err := Build(&again, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same files in another order give another image")
	}
}

func TestBuildFilesErrors(t *testing.T) {
	tests := []struct {
		name string
		file func(s Spec) File
		want string
	}{
		{"duplicate destination", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/sbin/mke2fs"} },
			"add /sbin/mke2fs: the image already has /sbin/mke2fs"},
		{"same destination spelled otherwise", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "//sbin/./mke2fs"} },
			"the image already has /sbin/mke2fs"},
		{"over /init", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/init"} }, "the image already has /init"},
		{"over pci.ids", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/usr/share/misc/pci.ids"} },
			"the image already has /usr/share/misc/pci.ids"},
		{"over a module", func(s Spec) File {
			return File{Src: s.Files[0].Src, Dst: "/lib/modules/6.1.0-99-amd64/modules.dep"}
		}, "the image already has /lib/modules/6.1.0-99-amd64/modules.dep"},
		{"over a directory", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/etc"} }, "the image already has /etc"},
		{"under a file", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/init/x"} }, "parent /init is not a directory"},
		{"relative destination", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "etc/x"} }, `destination "etc/x" is not an absolute path`},
		{"root", func(s Spec) File { return File{Src: s.Files[0].Src, Dst: "/"} }, "is the root directory"},
		{"missing source", func(s Spec) File { return File{Src: "/nonexistent/x", Dst: "/x"} }, "add /x: source: stat /nonexistent/x"},
		{"directory source", func(s Spec) File { return File{Src: t.TempDir(), Dst: "/x"} }, "is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := filesSpec(t)
			s.Files = append(s.Files, tt.file(s))
			err := Build(io.Discard, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// A multi-call binary can be its own init: /init links to it.
func TestBuildInitLink(t *testing.T) {
	s := filesSpec(t)
	s.Init, s.InitLink = "", "/sbin/mke2fs"
	var buf bytes.Buffer
	if err := Build(&buf, s); err != nil {
		t.Fatal(err)
	}
	recs, content, _ := readBack(t, buf.Bytes())
	if r := recs["init"]; r.Mode&cpio.S_IFMT != cpio.S_IFLNK || content["init"] != "/sbin/mke2fs" {
		t.Errorf("/init: mode %#o target %q, want a link to /sbin/mke2fs", r.Mode, content["init"])
	}
	for name, mutate := range map[string]func(*Spec){
		"dangling":     func(s *Spec) { s.InitLink = "/usr/bin/nothing" },
		"not a file":   func(s *Spec) { s.InitLink = "/sbin" },
		"not runnable": func(s *Spec) { s.InitLink = "/etc/mke2fs.conf" },
		"relative":     func(s *Spec) { s.InitLink = "sbin/mke2fs" },
		"both":         func(s *Spec) { s.Init = s.Files[0].Src },
	} {
		t.Run(name, func(t *testing.T) {
			s := filesSpec(t)
			s.Init, s.InitLink = "", "/sbin/mke2fs"
			mutate(&s)
			if err := Build(io.Discard, s); err == nil {
				t.Errorf("built an image whose /init is %s", s.InitLink)
			}
		})
	}
}
