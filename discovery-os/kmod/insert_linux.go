package kmod

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// insertModule loads a module file into the running kernel. Uncompressed
// modules go through finit_module so the kernel can check them by file;
// compressed ones are decompressed here and passed to init_module, which
// works whether or not the kernel could decompress them itself.
func insertModule(path string, dict []byte) error {
	var err error
	if strings.HasSuffix(path, ".ko") {
		var f *os.File
		f, err = os.Open(path)
		if err != nil {
			return fmt.Errorf("open module: %w", err)
		}
		defer f.Close()
		err = unix.FinitModule(int(f.Fd()), "", 0)
	} else {
		var img []byte
		img, err = ReadFileDict(path, dict)
		if err != nil {
			return fmt.Errorf("read module: %w", err)
		}
		err = unix.InitModule(img, "")
	}
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("insert %s: %w", path, err)
	}
	return nil
}
