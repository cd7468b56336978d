// Package kmod reads Linux kernel module trees: module metadata from the
// ELF .modinfo section, the modules.dep and modules.alias files that depmod
// writes (and that this package writes for a chosen subset, since Debian's
// kernel package ships no depmod output), modalias matching, and loading a
// module with its dependencies through finit_module(2).
//
// The initramfs builder uses the tree side; the discovery agent uses the
// index and loader side, with no kmod tools in the image.
package kmod

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// maxModule bounds a decompressed module; the largest Linux modules are a
// few tens of megabytes.
const maxModule = 256 << 20

// Module is one kernel module.
type Module struct {
	// Name uses underscores, as the kernel does ("virtio_net").
	Name string
	// Path is relative to the module directory
	// ("kernel/drivers/net/virtio_net.ko").
	Path string
	// Depends names the modules that must be loaded first.
	Depends []string
	// Aliases are the modalias patterns the module handles.
	Aliases []string
	// SoftPre and SoftPost are the modules its softdep entry asks to be
	// loaded before and after it (r8169 needs the realtek PHY driver, which
	// only request_module would otherwise load); their failure does not
	// stop the module. In a Tree they may still be aliases ("crc32c"); in
	// an Index and in Tree.Closure's result they are module names.
	SoftPre, SoftPost []string
	// Firmware names the files the module may ask the kernel for,
	// relative to /lib/firmware.
	Firmware []string
}

// NameOf returns the module name for a file name or path:
// "kernel/fs/fat/vfat.ko.xz" → "vfat", "snd-hda.ko" → "snd_hda".
func NameOf(path string) string {
	base := path[strings.LastIndex(path, "/")+1:]
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if s, ok := strings.CutSuffix(base, ext); ok {
			base = s
			break
		}
	}
	return Normalize(base)
}

// Normalize maps dashes to underscores: the kernel treats them as equal in
// module names.
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// IsModuleFile reports whether a file name is a kernel module, compressed
// or not.
func IsModuleFile(name string) bool {
	return strings.HasSuffix(name, ".ko") || strings.HasSuffix(name, ".ko.xz") ||
		strings.HasSuffix(name, ".ko.zst") || strings.HasSuffix(name, ".ko.gz")
}

// ReadFile returns the uncompressed ELF image of the module file at path,
// decompressing .ko.xz and .ko.zst (gzip-compressed modules do not occur in
// Debian and are refused).
func ReadFile(path string) ([]byte, error) { return ReadFileDict(path, nil) }

// DictFile is the zstd dictionary an image's .ko.zst modules were
// compressed with, in the module directory (Foundry's images train one on
// their module set: it makes the modules as small as xz would, and they
// decompress many times faster).
const DictFile = "modules.zstd-dict"

// ReadFileDict is ReadFile for .ko.zst files compressed with a zstd
// dictionary (nil: none).
func ReadFileDict(path string, dict []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(path, ".ko.xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		r = xr
	case strings.HasSuffix(path, ".ko.zst"):
		opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModule)}
		if dict != nil {
			opts = append(opts, zstd.WithDecoderDicts(dict))
		}
		zr, err := zstd.NewReader(f, opts...)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(path, ".ko"):
	default:
		return nil, fmt.Errorf("%s: unsupported module compression", path)
	}
	b, err := io.ReadAll(io.LimitReader(r, maxModule+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxModule {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxModule)
	}
	return b, nil
}

// Modinfo is the content of a module's .modinfo section.
type Modinfo struct {
	Name     string
	Depends  []string
	Aliases  []string
	SoftPre  []string
	SoftPost []string
	Firmware []string
}

// ParseModinfo reads the .modinfo section of an ELF module image: a run of
// NUL-terminated key=value strings.
func ParseModinfo(image []byte) (Modinfo, error) {
	f, err := elf.NewFile(bytes.NewReader(image))
	if err != nil {
		return Modinfo{}, fmt.Errorf("parse ELF: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return Modinfo{}, errors.New("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("read .modinfo: %w", err)
	}
	var mi Modinfo
	for kv := range strings.SplitSeq(string(data), "\x00") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.Name = Normalize(v)
		case "alias":
			mi.Aliases = append(mi.Aliases, v)
		case "depends":
			for d := range strings.SplitSeq(v, ",") {
				if d != "" {
					mi.Depends = append(mi.Depends, Normalize(d))
				}
			}
		case "firmware":
			if v != "" && !slices.Contains(mi.Firmware, v) {
				mi.Firmware = append(mi.Firmware, v)
			}
		case "softdep":
			pre, post := ParseSoftdep(v)
			mi.SoftPre = append(mi.SoftPre, pre...)
			mi.SoftPost = append(mi.SoftPost, post...)
		}
	}
	return mi, nil
}

// ParseSoftdep reads a softdep value, "pre: a b post: c" (either part may
// be missing), as modprobe.d and MODULE_SOFTDEP write it. Words before any
// "pre:" or "post:" are ignored, as modprobe does.
func ParseSoftdep(v string) (pre, post []string) {
	var into *[]string
	for _, w := range strings.Fields(v) {
		switch w {
		case "pre:":
			into = &pre
		case "post:":
			into = &post
		default:
			if into != nil {
				*into = append(*into, Normalize(w))
			}
		}
	}
	return pre, post
}
