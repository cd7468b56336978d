//go:build linux

package datadisk

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loopDevice attaches a sparse file of size bytes to a free loop device
// and detaches it when the test ends. It skips without root or losetup.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: attaches loop devices and mounts them")
	}
	needTools(t, "mke2fs", "e2fsck")
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skipf("losetup is not installed (Debian package mount): %v", err)
	}
	d := blankFile(t, size)
	out, err := exec.Command("losetup", "--find", "--show", d.Path).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device on this machine: losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", loop, err, out)
		}
	})
	return loop
}

// scanOne scans the machine's real sysfs, loop devices included, and
// returns the device at path.
func scanOne(t *testing.T, path string) Device {
	t.Helper()
	skip := slices.DeleteFunc(slices.Clone(DefaultSkip), func(p string) bool { return p == "loop" })
	devs, err := Scanner{Skip: skip}.Scan()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Path == path {
			return d
		}
	}
	t.Fatalf("%s not in the scan", path)
	return Device{}
}

func TestLoopFormatMount(t *testing.T) {
	loop := loopDevice(t, 64*mib)
	ctx := context.Background()
	tools := Tools{}

	d := scanOne(t, loop)
	if !d.Blank || d.Partition || d.ReadOnly || d.Size != 64*mib || d.Err != nil {
		t.Fatalf("fresh loop device: %#v; want a blank 64 MiB whole disk", d)
	}
	if err := tools.Format(ctx, d); err != nil {
		t.Fatal(err)
	}
	formatted := scanOne(t, loop)
	if formatted.Blank || formatted.FSType != "ext4" || formatted.Label != Label {
		t.Fatalf("after Format: %#v", formatted)
	}
	// Find among our device only: other loop devices on a shared machine
	// may carry the label too.
	if got, err := Find([]Device{formatted}); err != nil || got.Path != loop {
		t.Fatalf("Find = %v, %v", got.Path, err)
	}
	if err := tools.Check(ctx, formatted); err != nil {
		t.Fatal(err)
	}
	if err := tools.Format(ctx, d); !errors.Is(err, ErrNotBlank) {
		t.Fatalf("Format of the formatted device (stale Blank) = %v, want ErrNotBlank", err)
	}

	dir := filepath.Join(t.TempDir(), "data")
	if err := Mount(formatted, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(dir) })
	opts := mountOptions(t, dir)
	for _, want := range []string{"noatime", "nosuid", "nodev", "errors=remount-ro"} {
		if !strings.Contains(opts, want) {
			t.Errorf("mount options %q lack %s", opts, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "machines.db"), []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tools.Format(ctx, d); !errors.Is(err, ErrNotBlank) {
		t.Errorf("Format while mounted = %v, want ErrNotBlank", err)
	}
	if err := Unmount(dir); err != nil {
		t.Fatal(err)
	}
	if opts := mountOptions(t, dir); opts != "" {
		t.Fatalf("still mounted after Unmount: %s", opts)
	}
	if err := Unmount(dir); err != nil {
		t.Errorf("Unmount of what is not mounted = %v, want nil", err)
	}
	if err := tools.Check(ctx, formatted); err != nil {
		t.Fatalf("Check after a clean unmount: %v", err)
	}
	if err := Mount(formatted, dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "machines.db"))
	if err != nil || string(got) != "kept\n" {
		t.Fatalf("after remount: %q, %v", got, err)
	}

	// A process still holding a file: Unmount waits for it to let go.
	f, err := os.Open(filepath.Join(dir, "machines.db"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Unmount(dir) }()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Unmount returned %v while a file was open", err)
	default:
	}
	f.Close()
	if err := <-done; err != nil {
		t.Fatalf("Unmount after the file closed: %v", err)
	}
	if err := Mount(Device{Path: "/nonexistent/vdz"}, dir); err == nil || !strings.Contains(err.Error(), "mount /nonexistent/vdz (ext4) on "+dir) {
		t.Errorf("Mount of a missing device = %v, want an error saying what it did", err)
	}
}

// TestLoopFormatRefusesHeld: a blank disk that something holds open
// exclusively (as a mount or an md array would) is not formatted.
func TestLoopFormatRefusesHeld(t *testing.T) {
	loop := loopDevice(t, 8*mib)
	d := scanOne(t, loop)
	if !d.Blank {
		t.Fatalf("fresh loop device not blank: %#v", d)
	}
	f, err := os.OpenFile(loop, os.O_RDONLY|os.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Tools{}.Format(context.Background(), d)
	if !errors.Is(err, ErrNotBlank) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Format of a held device = %v, want ErrNotBlank (in use)", err)
	}
}

// TestLoopFormatLarge measures Format on an 8 GiB block device.
func TestLoopFormatLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	loop := loopDevice(t, 8<<30)
	d := scanOne(t, loop)
	start := time.Now()
	if err := (Tools{}).Format(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	t.Logf("Format of an 8 GiB loop device: %v", time.Since(start).Round(time.Millisecond))
}

// mountOptions returns the options of the mount at dir in
// /proc/self/mountinfo, or "" when nothing is mounted there.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 10 && fields[4] == dir {
			return fields[5] + " " + fields[len(fields)-1]
		}
	}
	return ""
}
