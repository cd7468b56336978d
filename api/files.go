package api

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
)

// imageServer serves files under dir read-only. It opens dir through
// os.Root on every request, so a symlink inside the image directory cannot
// lead outside it and the directory may appear after the server starts.
// Directories are not listed: only files are served.
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

// filesOnly hides directories, so that FileServer never renders a listing.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		// Whatever the reason (missing, a symlink leading out of the
		// root, a permission), the answer is 404, never a 500.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	st, err := file.Stat()
	if err != nil || st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.Join(fs.ErrNotExist, err)}
	}
	return file, nil
}
