package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkDirs refuses an image directory that would publish the appliance's
// secrets. Everything under image_dir is served without authentication at
// /images/, and data_dir holds the admin token, the generated TLS key and
// the database: so image_dir may be neither data_dir nor a directory that
// contains it, and inside data_dir only the images/ subdirectory (the
// default, where the appliance writes nothing of its own) may be served.
// A configured TLS key must not be served either. Paths are compared
// after cleaning and resolving symlinks, as far as they exist.
func checkDirs(errs *configErrors, c config) {
	data, err := resolvePath(c.DataDir)
	if err != nil {
		errs.add("data_dir", "%v", err)
		return
	}
	images, err := resolvePath(c.ImageDir)
	if err != nil {
		errs.add("image_dir", "%v", err)
		return
	}
	const served = "everything in it is served at /images/ without authentication"
	reserved := filepath.Join(data, "images")
	switch {
	case images == data:
		errs.add("image_dir", "%s is data_dir (%s): %s, the admin token and TLS key included", c.ImageDir, c.DataDir, served)
	case within(data, images):
		errs.add("image_dir", "%s contains data_dir (%s): %s, the admin token and TLS key included", c.ImageDir, c.DataDir, served)
	case within(images, data) && images != reserved && !within(images, reserved):
		errs.add("image_dir", "%s is inside data_dir (%s), which holds the admin token and TLS key: use %s or a directory outside data_dir",
			c.ImageDir, c.DataDir, filepath.Join(c.DataDir, "images"))
	}
	if c.TLSKey != "" {
		if key, err := resolvePath(c.TLSKey); err == nil && within(key, images) {
			errs.add("http.tls.key", "%s is inside image_dir (%s): %s", c.TLSKey, c.ImageDir, served)
		}
	}
}

// within reports whether path lies strictly below dir; both are clean and
// absolute.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// resolvePath makes p absolute and clean and resolves the symlinks of its
// longest existing prefix; the part that does not exist yet (the appliance
// creates its directories at start) is appended as written.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	var rest []string
	for cur := abs; ; {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		parent := filepath.Dir(cur)
		if !errors.Is(err, fs.ErrNotExist) || parent == cur {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		// A dangling symlink is followed by the appliance when it creates
		// the directory: resolve its target rather than its name.
		if target, lerr := os.Readlink(cur); lerr == nil {
			if !filepath.IsAbs(target) {
				target = filepath.Join(parent, target)
			}
			resolved, err := resolvePath(target)
			if err != nil {
				return "", err
			}
			return filepath.Join(append([]string{resolved}, rest...)...), nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
		cur = parent
	}
}
