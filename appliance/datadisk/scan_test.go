package datadisk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fakeDev describes one block device of a fake sysfs tree and its node.
type fakeDev struct {
	name          string
	size          int64 // bytes; the node is made this long (sparse)
	ro, removable bool
	model         string
	holders       []string
	parts         []fakeDev
	noNode        bool
	content       []byte   // written at offset 0 of the node
	tail          []byte   // written at the end of the node
	mkfs          []string // mke2fs arguments run on the node
}

// fakeTree lays out sysfs as the kernel does (class/block/<name> a
// symlink into devices/…/block/<disk>[/<partition>]) and /dev as regular
// files, and returns the two roots.
func fakeTree(t *testing.T, devs []fakeDev) (sys, dev string) {
	t.Helper()
	root := t.TempDir()
	sys, dev = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	class := filepath.Join(sys, "class", "block")
	for _, d := range []string{class, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var add func(d fakeDev, parentDir string)
	add = func(d fakeDev, parentDir string) {
		dir := filepath.Join(parentDir, d.name)
		if parentDir == "" {
			dir = filepath.Join(sys, "devices", "pci0000:00", "0000:00:0"+strconv.Itoa(len(d.name)), "block", d.name)
		}
		files := map[string]string{
			"size":    strconv.FormatInt(d.size/512, 10) + "\n",
			"ro":      map[bool]string{false: "0\n", true: "1\n"}[d.ro],
			"holders": "",
		}
		if parentDir == "" {
			files["removable"] = map[bool]string{false: "0\n", true: "1\n"}[d.removable]
			if d.model != "" {
				files["device/model"] = d.model + "   \n" // SCSI pads with spaces
			}
		} else {
			files["partition"] = "1\n"
		}
		for name, body := range files {
			p := filepath.Join(dir, name)
			if name == "holders" {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, h := range d.holders {
					if err := os.Symlink("../../"+h, filepath.Join(p, h)); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(dir, filepath.Join(class, d.name)); err != nil {
			t.Fatal(err)
		}
		if !d.noNode {
			node := filepath.Join(dev, strings.ReplaceAll(d.name, "!", "/"))
			writeNode(t, node, d)
		}
		for _, p := range d.parts {
			add(p, dir)
		}
	}
	for _, d := range devs {
		add(d, "")
	}
	return sys, dev
}

func writeNode(t *testing.T, node string, d fakeDev) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(node), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(node)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(d.size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(d.content, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(d.tail, d.size-int64(len(d.tail))); err != nil {
		t.Fatal(err)
	}
	if d.mkfs != nil {
		if _, err := exec.LookPath("mke2fs"); err != nil {
			t.Skipf("mke2fs is not installed (Debian package e2fsprogs): %v", err)
		}
		args := append(append([]string{"-q", "-F"}, d.mkfs...), node)
		if out, err := exec.Command("mke2fs", args...).CombinedOutput(); err != nil {
			t.Fatalf("mke2fs %v: %v\n%s", args, err, out)
		}
	}
}

const mib = 1 << 20

func TestScan(t *testing.T) {
	sys, dev := fakeTree(t, []fakeDev{
		{name: "sda", size: 64 * mib, model: "QEMU HARDDISK", content: mbrBytes(mbrEntry(0x83, 2048, 65536))[:512],
			parts: []fakeDev{{name: "sda1", size: 32 * mib, mkfs: []string{"-t", "ext4", "-L", Label}}}},
		{name: "sdb", size: 8 * mib, removable: true, model: "Flash Disk"},
		{name: "sdc", size: 0, removable: true, model: "Card Reader"},
		{name: "vdb", size: 8 * mib},
		{name: "vdc", size: 8 * mib, ro: true},
		{name: "vdd", size: 8 * mib, tail: []byte{1, 0, 0, 0}},
		{name: "vde", size: 8 * mib, holders: []string{"dm-0"}},
		{name: "vdf", size: 8 * mib, noNode: true},
		{name: "vdg", size: 8 * mib, parts: []fakeDev{{name: "vdg1", size: 4 * mib, ro: true}}},
		{name: "vdh", size: 3*mib + 512}, // not a whole number of MiB: the ends overlap
		{name: "nvme0n1", size: 16 * mib, content: isoBytes("FOUNDRY_1_0", 1)},
		{name: "cciss!c0d0", size: 8 * mib, mkfs: []string{"-t", "ext2", "-L", "other"}},
		{name: "mmcblk0", size: 8 * mib},
		{name: "mmcblk0boot0", size: 4 * mib},
		{name: "sr0", size: 8 * mib},
		{name: "loop0", size: 8 * mib},
		{name: "dm-0", size: 8 * mib},
	})
	devs, err := Scanner{SysRoot: sys, DevRoot: dev}.Scan()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Device{}
	var names []string
	for _, d := range devs {
		byName[d.Name] = d
		names = append(names, d.Name)
	}
	wantNames := []string{"cciss!c0d0", "mmcblk0", "nvme0n1", "sda", "sda1", "sdb", "sdc", "vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdg1", "vdh"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("scanned %v\nwant    %v (sr, loop, dm- and eMMC boot areas skipped)", names, wantNames)
	}
	tests := []struct {
		name string
		want Device
	}{
		{"sda", Device{Size: 64 * mib, Model: "QEMU HARDDISK", Partitions: 1, FSType: "mbr"}},
		{"sda1", Device{Size: 32 * mib, Partition: true, Parent: "sda", Model: "QEMU HARDDISK", FSType: "ext4", Label: Label}},
		{"sdb", Device{Size: 8 * mib, Removable: true, Model: "Flash Disk", Blank: true}},
		{"sdc", Device{Removable: true, Model: "Card Reader"}},
		{"vdb", Device{Size: 8 * mib, Blank: true}},
		{"vdc", Device{Size: 8 * mib, ReadOnly: true}},
		{"vdd", Device{Size: 8 * mib}},
		{"vde", Device{Size: 8 * mib, Holders: []string{"dm-0"}}},
		{"vdg", Device{Size: 8 * mib, Partitions: 1}},
		{"vdg1", Device{Size: 4 * mib, Partition: true, Parent: "vdg", ReadOnly: true}},
		{"vdh", Device{Size: 3*mib + 512, Blank: true}},
		{"nvme0n1", Device{Size: 16 * mib, FSType: "iso9660", Label: "FOUNDRY_1_0"}},
		{"cciss!c0d0", Device{Size: 8 * mib, FSType: "ext2", Label: "other"}},
		{"mmcblk0", Device{Size: 8 * mib, Blank: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := byName[tt.name]
			if !ok {
				t.Fatal("not scanned")
			}
			if got.Err != nil {
				t.Fatalf("Err = %v", got.Err)
			}
			tt.want.Name = tt.name
			tt.want.Path = dev + "/" + strings.ReplaceAll(tt.name, "!", "/")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
	if d := byName["vdf"]; d.Err == nil || !errors.Is(d.Err, os.ErrNotExist) || d.Blank {
		t.Errorf("vdf without a node: Err = %v, Blank = %v; want not-exist and not blank", d.Err, d.Blank)
	}

	found, err := Find(devs)
	if err != nil || found.Name != "sda1" {
		t.Errorf("Find = %v, %v; want sda1", found.Name, err)
	}
	var blanks []string
	for _, d := range Blanks(devs) {
		blanks = append(blanks, d.Name)
	}
	if want := []string{"mmcblk0", "sdb", "vdb", "vdh"}; !reflect.DeepEqual(blanks, want) {
		t.Errorf("Blanks = %v, want %v", blanks, want)
	}
}

func TestScanSkip(t *testing.T) {
	sys, dev := fakeTree(t, []fakeDev{{name: "loop0", size: mib}, {name: "sr0", size: mib, ro: true}, {name: "vda", size: mib}})
	tests := []struct {
		skip []string
		want []string
	}{
		{nil, []string{"vda"}},
		{[]string{}, []string{"loop0", "sr0", "vda"}},
		{[]string{"sr", "vd"}, []string{"loop0"}},
	}
	for _, tt := range tests {
		devs, err := Scanner{SysRoot: sys, DevRoot: dev, Skip: tt.skip}.Scan()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, d := range devs {
			names = append(names, d.Name)
		}
		if !reflect.DeepEqual(names, tt.want) {
			t.Errorf("Skip %q: scanned %v, want %v", tt.skip, names, tt.want)
		}
	}
	if _, err := (Scanner{SysRoot: filepath.Join(sys, "missing"), DevRoot: dev}).Scan(); err == nil {
		t.Error("Scan of a missing sysfs: no error")
	}
}

func TestScanTwoLabelled(t *testing.T) {
	sys, dev := fakeTree(t, []fakeDev{
		{name: "vdb", size: 16 * mib, mkfs: []string{"-t", "ext4", "-L", Label}},
		{name: "vdc", size: 32 * mib, parts: []fakeDev{{name: "vdc1", size: 16 * mib, mkfs: []string{"-t", "ext3", "-L", Label}}}},
	})
	devs, err := Scanner{SysRoot: sys, DevRoot: dev}.Scan()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Find(devs)
	if !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("Find = %v, want ErrAmbiguous", err)
	}
	for _, name := range []string{"vdb", "vdc1"} {
		if !strings.Contains(err.Error(), dev+"/"+name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestFind(t *testing.T) {
	ext := func(name, fstype, label string) Device {
		return Device{Name: name, Path: "/dev/" + name, Size: 8 << 30, FSType: fstype, Label: label}
	}
	tests := []struct {
		name    string
		devs    []Device
		want    string
		wantErr error
		errHas  string
	}{
		{"none", nil, "", ErrNotFound, ""},
		{"other labels", []Device{ext("sda1", "ext4", "root"), ext("sdb", "", "")}, "", ErrNotFound, ""},
		{"label on vfat", []Device{ext("sdb1", "vfat", Label)}, "", ErrNotFound, "/dev/sdb1 is labelled FOUNDRY-DATA but holds vfat"},
		{"label case matters", []Device{ext("sdb", "ext4", "foundry-data")}, "", ErrNotFound, ""},
		{"one ext4", []Device{ext("sda1", "ext4", "root"), ext("vdb", "ext4", Label)}, "vdb", nil, ""},
		{"one ext2", []Device{ext("vdb", "ext2", Label)}, "vdb", nil, ""},
		{"ext4 beats a vfat namesake", []Device{ext("sdb1", "vfat", Label), ext("vdb", "ext4", Label)}, "vdb", nil, ""},
		{"two", []Device{ext("vdb", "ext4", Label), ext("vdc", "ext4", Label)}, "", ErrAmbiguous, "/dev/vdb (8.0 GiB, ext4 \"FOUNDRY-DATA\"), /dev/vdc (8.0 GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Find(tt.devs)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Find = %v, want %v", err, tt.wantErr)
			}
			if got.Name != tt.want {
				t.Errorf("Find = %q, want %q", got.Name, tt.want)
			}
			if tt.errHas != "" && !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q lacks %q", err, tt.errHas)
			}
		})
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 64 << 20: "64.0 MiB", 8 << 30: "8.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
