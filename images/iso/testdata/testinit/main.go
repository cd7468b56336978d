// Command testinit is the /init of the ISO boot test (images/iso): it
// checks what the appliance's init will rely on — the kernel modules load
// (the disk by its modalias, ext4 with crc32c by name), the build host's
// mke2fs and e2fsck run with the libraries the ISO carries, a fresh ext4
// file system mounts — prints one line the test waits for on the serial
// console and powers the machine off.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

func main() {
	con, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		con = os.Stdout
	}
	say := func(format string, args ...any) { fmt.Fprintf(con, "testinit: "+format+"\n", args...) }
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			say("mount %s: %v", m.dst, err)
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	say("cmdline: %s", strings.TrimSpace(string(cmdline)))

	files := 0
	filepath.WalkDir("/lib/modules", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files++
		}
		return nil
	})
	mke2fs := result(say, "mke2fs -V", run("/sbin/mke2fs", "-V"))
	disk := result(say, "data disk", dataDisk(say))
	fmt.Fprintf(con, "FOUNDRY-ISO-TEST-INIT %d mke2fs=%s disk=%s\n", files, mke2fs, disk)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func result(say func(string, ...any), what string, err error) string {
	if err != nil {
		say("%s: %v", what, err)
		return "failed"
	}
	return "ok"
}

func run(prog string, args ...string) error {
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// dataDisk does what the appliance does with a blank data disk: load the
// drivers for the devices present and ext4's, format the disk (the test's
// virtio disk) with the ISO's mke2fs, mount it, write, unmount and check it
// with the ISO's e2fsck.
func dataDisk(say func(string, ...any)) error {
	var uts unix.Utsname
	unix.Uname(&uts)
	dir := "/lib/modules/" + unix.ByteSliceToString(uts.Release[:])
	ix, err := kmod.ReadIndex(dir)
	if err != nil {
		return err
	}
	l := &kmod.Loader{Dir: dir, Index: ix}
	if err := l.LoadForDevices("/sys"); err != nil {
		say("some device drivers did not load: %v", err)
	}
	// crc32c_intel needs SSE4.2, which an emulated CPU may lack; the
	// generic one always loads.
	for _, m := range []string{"crc32c_generic", "crc32c_intel", "ext4"} {
		if err := l.Load(m); err != nil {
			say("%v", err)
		}
	}
	say("modules loaded: %s", strings.Join(l.Loaded(), " "))
	var dev string
	for deadline := time.Now().Add(20 * time.Second); dev == "" && time.Now().Before(deadline); {
		// Only the virtio disk: the ISO itself may be an IDE disk here.
		if _, err := os.Stat("/dev/vda"); err == nil {
			dev = "/dev/vda"
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dev == "" {
		return errors.New("no /dev/vda")
	}
	if err := run("/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", "FOUNDRY-DATA", dev); err != nil {
		return err
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount(dev, "/mnt", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev, err)
	}
	werr := os.WriteFile("/mnt/written", []byte("foundry"), 0o644)
	if err := unix.Unmount("/mnt", 0); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	if werr != nil {
		return werr
	}
	return run("/sbin/e2fsck", "-f", "-n", dev)
}
