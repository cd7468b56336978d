package datadisk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// MkfsArgs returns the options Format gives mke2fs before the device path.
//
// The file system goes on the whole disk, without a partition table: the
// disk has no other use; a table would need sfdisk in the initramfs and a
// wait for the kernel to re-read it and devtmpfs to make the node, with no
// udev to say when; and growing a virtual disk later is one resize2fs.
// (A FOUNDRY-DATA partition an operator made is found all the same.)
//
// lazy_itable_init and lazy_journal_init leave the inode tables and the
// journal unzeroed, so mke2fs writes about 4 MiB on an 8 GiB disk instead
// of 200 MiB (both are protected by metadata checksums and the kernel
// zeroes the inode tables in the background, throttled): under QEMU's TCG
// the first boot does not wait for it. nodiscard: discarding a disk that
// is already zeros buys nothing and takes minutes on some USB sticks and
// SSDs. -m 0: everything on the appliance runs as root, for whom reserved
// blocks are no reserve. -i 65536: the database and images are few large
// files; a quarter of the default inodes still gives 131072 on 8 GiB and
// a quarter of the inode-table space to zero and to check.
func MkfsArgs() []string {
	return []string{"-q", "-F", "-t", "ext4", "-L", Label, "-m", "0", "-i", "65536",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"}
}

// Tools runs e2fsprogs' programs.
type Tools struct {
	// Mke2fs is the mke2fs program; default "mke2fs", looked up in PATH,
	// then /sbin, /usr/sbin, /bin and /usr/bin.
	Mke2fs string
	// E2fsck is the e2fsck program; default "e2fsck", looked up likewise.
	E2fsck string
}

// Format makes the data file system (see MkfsArgs) on d, a whole disk
// that Scan found Blank. Right before, it opens d.Path exclusively (the
// kernel refuses while it is mounted or held) and checks again that it is
// d.Size bytes long, that Probe finds nothing on it and that its first and
// last MiB are zeros; otherwise it refuses with an error wrapping
// ErrNotBlank and writes nothing. The caller decides whether to format at
// all; Format only makes formatting anything but a blank disk impossible.
func (t Tools) Format(ctx context.Context, d Device) error {
	if err := recheckBlank(d); err != nil {
		return fmt.Errorf("format %s: %w", d.Path, err)
	}
	prog, err := lookTool(t.Mke2fs, "mke2fs")
	if err != nil {
		return fmt.Errorf("format %s: %w", d.Path, err)
	}
	args := append(MkfsArgs(), d.Path)
	if out, err := run(ctx, prog, args...); err != nil {
		return fmt.Errorf("format %s: mke2fs: %w%s", d.Path, err, out)
	}
	return nil
}

func recheckBlank(d Device) error {
	switch {
	case d.Partition:
		return fmt.Errorf("%w: a partition, not a whole disk", ErrNotBlank)
	case !d.Blank:
		return fmt.Errorf("%w: the scan did not find it blank", ErrNotBlank)
	case d.Size <= 0:
		return fmt.Errorf("%w: size %d", ErrNotBlank, d.Size)
	}
	// O_EXCL on a block device (Linux) fails with EBUSY while it is
	// mounted, a partition of it is, or a holder (md, dm) claims it.
	f, err := os.OpenFile(d.Path, os.O_RDONLY|os.O_EXCL, 0)
	if errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("%w: in use (mounted or held)", ErrNotBlank)
	}
	if err != nil {
		return fmt.Errorf("open for the blank check: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat for the blank check: %w", err)
	}
	m := fi.Mode()
	blockDev := m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0
	if !blockDev && !m.IsRegular() { // a regular file is what tests format
		return fmt.Errorf("%w: %s is neither a block device nor a file", ErrNotBlank, m.Type())
	}
	fstype, label, blank, err := inspect(f, d.Size)
	switch {
	case err != nil:
		return err
	case fstype != "":
		return fmt.Errorf("%w: it holds %s %q now", ErrNotBlank, fstype, label)
	case !blank:
		return fmt.Errorf("%w: its size changed or its first or last MiB is not zeros now", ErrNotBlank)
	}
	return nil
}

// Check runs e2fsck in preen mode (-p) on d, which fixes what is safe to
// fix without a person. e2fsck's exit codes 0 (clean), 1 (fixed) and 2
// (fixed, reboot advised: harmless, nothing is mounted yet) are success;
// 4 and above (errors left, or e2fsck itself failed) are an error that
// carries e2fsck's output.
func (t Tools) Check(ctx context.Context, d Device) error {
	if d.FSType != "" && !IsExt(d.FSType) {
		return fmt.Errorf("check %s: holds %s, not ext4", d.Path, d.FSType)
	}
	prog, err := lookTool(t.E2fsck, "e2fsck")
	if err != nil {
		return fmt.Errorf("check %s: %w", d.Path, err)
	}
	out, err := run(ctx, prog, "-p", d.Path)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 && exit.ExitCode() < 4 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s: e2fsck: %w%s", d.Path, err, out)
	}
	return nil
}

// lookTool finds prog (default def) in PATH or, for a bare name, in the
// usual directories: the kernel starts init without PATH.
func lookTool(prog, def string) (string, error) {
	if prog == "" {
		prog = def
	}
	p, err := exec.LookPath(prog)
	if err == nil || strings.ContainsRune(prog, '/') {
		return p, err
	}
	for _, dir := range []string{"/sbin", "/usr/sbin", "/bin", "/usr/bin"} {
		if fi, serr := os.Stat(filepath.Join(dir, prog)); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return filepath.Join(dir, prog), nil
		}
	}
	return "", err
}

// run runs prog and returns its combined output's tail, formatted to
// follow an error message (": <output>"), or "" when there was none.
func run(ctx context.Context, prog string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := strings.TrimSpace(buf.String())
	if len(out) > 4096 {
		out = "…" + out[len(out)-4096:]
	}
	if out == "" {
		return "", err
	}
	return ": " + out, err
}
