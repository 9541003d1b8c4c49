package files

import "os"

// SetRename replaces the rename a commit uses to move a staged file over
// its target, so that tests can fail a commit half way.
func SetRename(w *Writer, f func(oldpath, newpath string) error) { w.rename = f }

// SetSync replaces the fsync a Write applies to every new file and every
// directory it changes, so that tests can fail any one of them.
func SetSync(w *Writer, f func(*os.File) error) { w.sync = f }
