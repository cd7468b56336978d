package api

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
)

// imageServer serves regular files under dir read-only. It opens dir
// through os.Root on every request, so a symlink inside the image
// directory cannot lead outside it and the directory may appear after the
// server starts. Directories are not listed, and dotfiles (any path
// element starting with '.') are never served: they are where editors,
// rsync and version control keep what was never meant to be published.
// Everything refused is a 404, so that a client cannot tell a refused
// file from a missing one.
func imageServer(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer root.Close()
		http.FileServerFS(filesOnly{root.FS()}).ServeHTTP(w, r)
	})
}

// filesOnly lets through regular files that are not dotfiles, so that
// FileServer never renders a listing, never blocks opening a FIFO and
// never serves a hidden file.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	notFound := func(err error) error {
		return &fs.PathError{Op: "open", Path: name, Err: errors.Join(fs.ErrNotExist, err)}
	}
	if hidden(name) {
		return nil, notFound(nil)
	}
	// Stat before Open: opening a FIFO or a device can block or act.
	// Whatever the reason it fails (missing, a symlink leading out of the
	// root, a permission), the answer is 404, never a 500.
	if st, err := fs.Stat(f.FS, name); err != nil || !st.Mode().IsRegular() {
		return nil, notFound(err)
	}
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, notFound(err)
	}
	if st, err := file.Stat(); err != nil || !st.Mode().IsRegular() {
		file.Close()
		return nil, notFound(err)
	}
	return file, nil
}

// hidden reports whether a slash-separated fs name has an element that
// starts with '.' ("." alone is the root, which is a directory anyway).
func hidden(name string) bool {
	if name == "." {
		return false
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return true
		}
	}
	return false
}
