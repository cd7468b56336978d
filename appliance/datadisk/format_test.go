package datadisk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := lookTool("", n); err != nil {
			t.Skipf("%s is not installed (Debian package e2fsprogs): %v", n, err)
		}
	}
}

// blankFile makes a sparse file of size bytes and the Device a scan of
// it would give.
func blankFile(t *testing.T, size int64) Device {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return Device{Name: "disk", Path: path, Size: size, Blank: true}
}

func extUUID(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	uuid := make([]byte, 16)
	if _, err := f.ReadAt(uuid, extSuper+0x68); err != nil {
		t.Fatal(err)
	}
	return uuid
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFormatAndCheckFile(t *testing.T) {
	needTools(t, "mke2fs", "e2fsck")
	ctx := context.Background()
	d := blankFile(t, 64*mib)
	if err := (Tools{}).Format(ctx, d); err != nil {
		t.Fatal(err)
	}
	fstype, label, err := probeFile(t, d.Path)
	if fstype != "ext4" || label != Label || err != nil {
		t.Fatalf("after Format: Probe = %q, %q, %v", fstype, label, err)
	}
	if err := (Tools{}).Check(ctx, d); err != nil {
		t.Fatalf("Check of a fresh file system: %v", err)
	}
	// The caller's Device still says Blank: Format must look again.
	uuid := extUUID(t, d.Path)
	err = Tools{}.Format(ctx, d)
	if !errors.Is(err, ErrNotBlank) || !strings.Contains(err.Error(), `ext4 "FOUNDRY-DATA"`) {
		t.Errorf("second Format = %v, want ErrNotBlank naming the ext4 file system", err)
	}
	if !bytes.Equal(uuid, extUUID(t, d.Path)) {
		t.Error("the refused Format changed the file system")
	}
}

func TestFormatRefuses(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	tests := []struct {
		name    string
		dev     func(t *testing.T) Device
		notBlnk bool // the error wraps ErrNotBlank
		errHas  string
	}{
		{"scan did not say blank", func(t *testing.T) Device { d := blankFile(t, 8*mib); d.Blank = false; return d }, true, "did not find it blank"},
		{"partition", func(t *testing.T) Device { d := blankFile(t, 8*mib); d.Partition = true; return d }, true, "a partition"},
		{"size 0", func(t *testing.T) Device { return blankFile(t, 0) }, true, "size 0"},
		{"byte in the last MiB", func(t *testing.T) Device {
			d := blankFile(t, 8*mib)
			writeAt(t, d.Path, d.Size-mib, []byte{0x42})
			return d
		}, true, "not zeros"},
		{"byte in the first MiB", func(t *testing.T) Device {
			d := blankFile(t, 8*mib)
			writeAt(t, d.Path, mib-1, []byte{0x42})
			return d
		}, true, "not zeros"},
		{"size changed", func(t *testing.T) Device { d := blankFile(t, 8*mib); d.Size = 16 * mib; return d }, true, "size changed"},
		{"iso9660 on it now", func(t *testing.T) Device {
			d := blankFile(t, 8*mib)
			writeAt(t, d.Path, 0, isoBytes("CD", 1))
			return d
		}, true, "iso9660"},
		{"gpt on it now", func(t *testing.T) Device {
			d := blankFile(t, 8*mib)
			writeAt(t, d.Path, 0, gptBytes(512)[:4096])
			return d
		}, true, "gpt"},
		{"a directory", func(t *testing.T) Device { return Device{Path: t.TempDir(), Size: 4096, Blank: true} }, true, "neither a block device nor a file"},
		{"a character device", func(t *testing.T) Device { return Device{Path: "/dev/zero", Size: 8 * mib, Blank: true} }, true, "neither a block device nor a file"},
		{"missing node", func(t *testing.T) Device { return Device{Path: "/nonexistent/vdz", Size: 8 * mib, Blank: true} }, false, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			mkfs := script(t, "touch "+marker)
			d := tt.dev(t)
			err := Tools{Mke2fs: mkfs}.Format(context.Background(), d)
			if err == nil || errors.Is(err, ErrNotBlank) != tt.notBlnk || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("Format = %v; want an error with %q (ErrNotBlank: %v)", err, tt.errHas, tt.notBlnk)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("mke2fs ran")
			}
		})
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestFormatArgsAndFailure(t *testing.T) {
	ctx := context.Background()
	d := blankFile(t, 8*mib)
	args := filepath.Join(t.TempDir(), "args")
	if err := (Tools{Mke2fs: script(t, `echo "$@" > `+args)}).Format(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(args)
	want := strings.Join(append(MkfsArgs(), d.Path), " ") + "\n"
	if string(got) != want {
		t.Errorf("mke2fs ran with %q, want %q", got, want)
	}
	err := Tools{Mke2fs: script(t, "echo 'mke2fs: No space left' >&2; exit 1")}.Format(ctx, d)
	if err == nil || !strings.Contains(err.Error(), "No space left") {
		t.Errorf("failing mke2fs: Format = %v, want its output in the error", err)
	}
	if err := (Tools{Mke2fs: "/nonexistent/mke2fs"}).Format(ctx, d); err == nil {
		t.Error("Format with a missing mke2fs: no error")
	}
}

func TestCheckExitCodes(t *testing.T) {
	tests := []struct {
		code int
		ok   bool
	}{{0, true}, {1, true}, {2, true}, {4, false}, {8, false}, {12, false}, {32, false}}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			args := filepath.Join(t.TempDir(), "args")
			e2fsck := script(t, `echo "$@" > `+args+`; echo "disk: UNEXPECTED INCONSISTENCY"; exit `+strconv.Itoa(tt.code))
			err := Tools{E2fsck: e2fsck}.Check(context.Background(), Device{Path: "/dev/vdz", FSType: "ext4"})
			if (err == nil) != tt.ok {
				t.Errorf("Check with exit %d = %v, want ok %v", tt.code, err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "UNEXPECTED INCONSISTENCY") {
				t.Errorf("error %q lacks e2fsck's output", err)
			}
			if got, _ := os.ReadFile(args); string(got) != "-p /dev/vdz\n" {
				t.Errorf("e2fsck ran with %q", got)
			}
		})
	}
	err := Tools{E2fsck: script(t, "exit 0")}.Check(context.Background(), Device{Path: "/dev/sdb1", FSType: "vfat"})
	if err == nil {
		t.Error("Check of a vfat device: no error")
	}
}

func TestCheckReal(t *testing.T) {
	needTools(t, "mke2fs", "e2fsck", "debugfs")
	ctx := context.Background()
	tests := []struct {
		name   string
		damage string // a debugfs -w request
		ok     bool
	}{
		{"clean", "", true},
		{"not cleanly unmounted, wrong free count", "ssv state 0\nssv free_blocks_count 7", true},
		{"root inode cleared", "clri <2>\nssv state 0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := blankFile(t, 32*mib)
			if err := (Tools{}).Format(ctx, d); err != nil {
				t.Fatal(err)
			}
			if tt.damage != "" {
				debugfs, _ := lookTool("", "debugfs")
				cmd := exec.Command(debugfs, "-w", "-f", "-", d.Path)
				cmd.Stdin = strings.NewReader(tt.damage + "\n")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("debugfs: %v\n%s", err, out)
				}
			}
			err := Tools{}.Check(ctx, d)
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "RUN fsck MANUALLY") {
				t.Errorf("error %q lacks e2fsck's advice", err)
			}
		})
	}
}

func TestLookToolWithoutPath(t *testing.T) {
	needTools(t, "e2fsck")
	t.Setenv("PATH", t.TempDir()) // as the kernel starts init: nothing useful
	p, err := lookTool("", "e2fsck")
	if err != nil || !strings.HasSuffix(p, "sbin/e2fsck") {
		t.Errorf("lookTool = %q, %v; want e2fsck from an sbin directory", p, err)
	}
	if _, err := lookTool("", "no-such-tool"); err == nil {
		t.Error("lookTool of a missing program: no error")
	}
}

// TestFormatLarge measures Format on an 8 GiB sparse file: with the lazy
// options mke2fs writes a few MiB, not the 64 MiB journal and 128 MiB of
// inode tables, which is what keeps the first boot short under TCG.
func TestFormatLarge(t *testing.T) {
	needTools(t, "mke2fs", "e2fsck")
	if testing.Short() {
		t.Skip("-short")
	}
	ctx := context.Background()
	d := blankFile(t, 8<<30)
	start := time.Now()
	if err := (Tools{}).Format(ctx, d); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	fi, err := os.Stat(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	written := fi.Sys().(*syscall.Stat_t).Blocks * 512
	t.Logf("Format of 8 GiB: %v, %s written", took.Round(time.Millisecond), HumanSize(written))
	if written > 32*mib {
		t.Errorf("Format wrote %s; the lazy options should keep it to a few MiB", HumanSize(written))
	}
	if err := (Tools{}).Check(ctx, d); err != nil {
		t.Fatal(err)
	}
}
