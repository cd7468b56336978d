package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// qemuImg is the qemu-img program (Debian's qemu-utils).
func (s *Server) qemuImg() string {
	if s.QemuImg != "" {
		return s.QemuImg
	}
	return "qemu-img"
}

// qcow2Info is what convert reads of `qemu-img info --output=json`.
type qcow2Info struct {
	Format          string `json:"format"`
	VirtualSize     int64  `json:"virtual-size"`
	BackingFilename string `json:"backing-filename"`
	FormatSpecific  struct {
		Data struct {
			DataFile string `json:"data-file"`
		} `json:"data"`
	} `json:"format-specific"`
}

// convert turns the qcow2 image src (a file in root) into a raw image,
// stored zstd-compressed as dst, and returns dst's size and SHA-256. The
// image is hostile: it is opened as qcow2 only (never probed), refused
// when it names a backing or data file (qemu-img would read that file
// from the appliance's disk) or when its disk is above the size limit.
// qemu-img gets the files as descriptors opened through root, so no name
// it sees can lead elsewhere.
func (l *library) convert(ctx context.Context, root *os.Root, src, dst string) (int64, string, error) {
	in, err := root.Open(src)
	if err != nil {
		return 0, "", fmt.Errorf("convert qcow2: %w", err)
	}
	defer in.Close()
	out, err := l.qemu(ctx, []*os.File{in}, "info", "--output=json", "-f", "qcow2", "/dev/fd/3")
	if err != nil {
		if context.Cause(ctx) != nil {
			return 0, "", err
		}
		return 0, "", &badImage{loc: "body", msg: "not a readable qcow2 image: " + err.Error()}
	}
	var info qcow2Info
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, "", fmt.Errorf("convert qcow2: read qemu-img info: %w", err)
	}
	switch {
	case info.Format != "qcow2":
		return 0, "", &badImage{loc: "body", msg: "qemu-img does not read the image as qcow2"}
	case info.BackingFilename != "":
		return 0, "", &badImage{loc: "body", msg: "the qcow2 image has a backing file; import a standalone image (qemu-img convert it first)"}
	case info.FormatSpecific.Data.DataFile != "":
		return 0, "", &badImage{loc: "body", msg: "the qcow2 image has an external data file; import a standalone image"}
	case info.VirtualSize <= 0:
		return 0, "", &badImage{loc: "body", msg: "the qcow2 image's disk is empty"}
	case info.VirtualSize > l.s.imageMaxSize():
		return 0, "", fmt.Errorf("%w: the qcow2 image's disk is %d bytes, the limit is %d", errTooLarge, info.VirtualSize, l.s.imageMaxSize())
	}

	// The raw image, sparse: qemu-img writes only the data clusters into a
	// file of zeros of the disk's size.
	rawName := dst + ".tmp"
	raw, err := root.OpenFile(rawName, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("convert qcow2: %w", err)
	}
	defer root.Remove(rawName)
	defer raw.Close()
	if err := raw.Truncate(info.VirtualSize); err != nil {
		return 0, "", fmt.Errorf("convert qcow2: %w", err)
	}
	if _, err := l.qemu(ctx, []*os.File{in, raw}, "convert", "-q", "-n", "--target-is-zero",
		"-f", "qcow2", "-O", "raw", "/dev/fd/3", "/dev/fd/4"); err != nil {
		if context.Cause(ctx) != nil {
			return 0, "", err
		}
		if full := diskFull(err); full != err {
			return 0, "", fmt.Errorf("convert qcow2: %w", full)
		}
		return 0, "", &badImage{loc: "body", msg: "the qcow2 image could not be converted: " + err.Error()}
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("convert qcow2: %w", err)
	}
	zf, err := root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, "", fmt.Errorf("compress image: %w", err)
	}
	defer zf.Close()
	hw := &hashWriter{w: zf, h: sha256.New()}
	// One encoder goroutine: the appliance has other work than this.
	zw, err := zstd.NewWriter(hw, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return 0, "", fmt.Errorf("compress image: %w", err)
	}
	if _, err := io.CopyBuffer(zw, ctxReader{ctx, raw}, make([]byte, 1<<20)); err != nil {
		zw.Close()
		if cause := context.Cause(ctx); cause != nil {
			return 0, "", cause
		}
		return 0, "", fmt.Errorf("compress image: %w", diskFull(err))
	}
	if err := zw.Close(); err != nil {
		return 0, "", fmt.Errorf("compress image: %w", diskFull(err))
	}
	if err := zf.Sync(); err != nil {
		return 0, "", fmt.Errorf("compress image: %w", diskFull(err))
	}
	return hw.n, hex.EncodeToString(hw.h.Sum(nil)), nil
}

// qemu runs qemu-img with files as descriptors 3, 4, … and returns its
// standard output (at most 1 MiB is kept of each stream).
func (l *library) qemu(ctx context.Context, files []*os.File, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, l.s.qemuImg(), args...)
	cmd.ExtraFiles = files
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &capped{b: &stdout}, &capped{b: &stderr}
	err := cmd.Run()
	if cause := context.Cause(ctx); cause != nil {
		return nil, cause
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			msg = "qemu-img is not installed (Debian package qemu-utils): " + err.Error()
		}
		return nil, errors.New(msg)
	}
	return stdout.Bytes(), nil
}

// capped keeps the first MiB written to it and discards the rest.
type capped struct{ b *bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 1<<20 - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
