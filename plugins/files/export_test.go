package files

// SetRename replaces the rename a commit uses to move a staged file over
// its target, so that tests can fail a commit half way.
func SetRename(w *Writer, f func(oldpath, newpath string) error) { w.rename = f }
